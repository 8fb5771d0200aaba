#!/usr/bin/env bash
# The reference client runs our plugins unchanged: cnitool (built from Debian's source package,
# Scripts/lib/cnitool.sh) runs ADD, CHECK and DEL of every file in netconf-examples/ with our
# binaries on CNI_PATH, in a throwaway host netns. libcni's result cache (/var/lib/cni) is a
# private directory bind-mounted in a private mount namespace, so nothing lands on the machine.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
EXAMPLES="$here/../../netconf-examples"
cd "$here/../.."
. Scripts/lib/cnitool.sh
if ! build_cnitool; then
    echo "cnitool: 0 passed, 1 failed (cnitool could not be built; reason above)"
    exit 1
fi
had_var_lib_cni=$([ -d /var/lib/cni ] && echo yes || echo no)
tb_cni_dirs all
tb_netns swcni-cth; H=$TB_LAST
ip -n "$H" link add eth0 type veth peer name eth0-wire && ip -n "$H" link set eth0 up && ip -n "$H" link set eth0-wire up
# The device the host-device example moves into its container (and back).
ip -n "$H" link add eth1 type veth peer name eth1-wire
# cnitool CMD NETWORK NETNS: as a runtime calls it, with the cache directory private.
cnitool() {
    ip netns exec "$H" "$here/../lib/with-cni-cache" "$D/cache" \
        env NETCONFPATH="$D/net.d" CNI_PATH="$D/bin" CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' \
        "$CNITOOL" "$@"
}
echo "cnitool $(basename "$CNITOOL") from golang-github-appc-cni 1.1.2, our plugins only"
tb_subnet_env
i=0
for f in "$EXAMPLES"/*; do
    i=$((i + 1))
    name=$(jq -r .name "$f")
    kind=$(tb_example_missing_kind "$f")
    if [ -n "$kind" ]; then
        skip "$(basename "$f"): this kernel has no $kind driver"
        continue
    fi
    tb_private_conf "$f" "swct$i-$TB_ID" > "$D/net.d/$(basename "$f")"
    tb_netns "swcni-ct$i"; C=$TB_LAST
    echo "$(basename "$f") (network $name)"
    out=$(cnitool add "$name" "/run/netns/$C" 2>"$D/err"); rc=$?
    check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    check "the result has an address" test -n "$(jq -r '.ips[0].address // empty' <<<"$out")"
    if printf '%s\n' 0.4.0 "$(jq -r '.cniVersion // "0.1.0"' "$f")" | sort -V -C; then
        cnitool check "$name" "/run/netns/$C" 2>"$D/err"; rc=$?
        check_eq "check exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    fi
    cnitool del "$name" "/run/netns/$C" 2>"$D/err"; rc=$?
    check_eq "del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    check_eq "no address left" "" "$(ls "$D/ipam/$name" 2>/dev/null | grep -Ev '^(lock|last_reserved_ip\..*)$')"
    check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
    check_eq "no cached result left" "" "$(find "$D/cache" -type f)"
done
check_eq "no veth left on the host" 0 "$(ip -n "$H" -j link show type veth | jq '[.[] | select(.ifname | IN("eth0", "eth0-wire", "eth1", "eth1-wire") | not)] | length')"
check "nothing written to the machine's /var/lib/cni" bash -c "[ ! -d /var/lib/cni ] || [ -z \"\$(ls -A /var/lib/cni)\" ]"
check_eq "... which does not exist unless it did before" "$had_var_lib_cni" "$([ -d /var/lib/cni ] && echo yes || echo no)"
tb_finish
