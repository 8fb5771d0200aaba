#!/usr/bin/env bash
# Every file in netconf-examples/ is a fixture: cnictl runs ADD, CHECK and DEL with it in a
# throwaway host netns, with our plugins first on CNI_PATH and the reference set after them for
# plugins we do not ship yet. dataDir, dnsname's runDir and bridge names are made private to the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
EXAMPLES="$here/../../netconf-examples"
tb_cni_dirs all
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin:/usr/lib/cni"
tb_netns swcni-exh; H=$TB_LAST
# The host's NIC, as the macvlan example names it: one end of a veth pair (no dummy links here).
ip -n "$H" link add eth0 type veth peer name eth0-wire && ip -n "$H" link set eth0 up && ip -n "$H" link set eth0-wire up
# The device the host-device example moves into its container (and back).
ip -n "$H" link add eth1 type veth peer name eth1-wire
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
    # Private state: the store under $D, the bridge named for this run.
    tb_private_conf "$f" "swex$i-$TB_ID" > "$D/net.d/$(basename "$f")"
    tb_netns "swcni-ex$i"; C=$TB_LAST
    echo "$(basename "$f") (network $name)"
    out=$(ip netns exec "$H" "$BIN/cnictl" add "$name" "/run/netns/$C" --cache-dir "$D/cache" 2>"$D/err"); rc=$?
    check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    check "the result has an address" test -n "$(jq -r '.ips[0].address // empty' <<<"$out")"
    if printf '%s\n' 0.4.0 "$(jq -r '.cniVersion // "0.1.0"' "$f")" | sort -V -C; then  # CHECK needs >= 0.4.0
        ip netns exec "$H" "$BIN/cnictl" check "$name" "/run/netns/$C" --cache-dir "$D/cache" 2>"$D/err"
        rc=$?
        check_eq "check exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    fi
    ip netns exec "$H" "$BIN/cnictl" del "$name" "/run/netns/$C" --cache-dir "$D/cache" 2>"$D/err"
    rc=$?
    check_eq "del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
    check_eq "no address left" "" "$(ls "$D/ipam/$name" 2>/dev/null | grep -Ev '^(lock|last_reserved_ip\..*)$')"
    check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
done
tb_finish
