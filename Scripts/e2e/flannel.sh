#!/usr/bin/env bash
# The flannel meta plugin with k3s's conflist (flannel -> portmap -> bandwidth, delegate keys as
# k3s writes them), run by cnictl in a throwaway host namespace with a subnet file as flanneld
# writes it: the delegate (bridge + host-local in the node's subnet, routes to the cluster
# network, the MTU, ipMasq as flannel derives it) is kept under dataDir and used by DEL after the
# subnet file went; STATUS while there is no subnet file; dual-stack; GC of kept delegates.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs flannel bridge host-local portmap bandwidth
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-flh; H=$TB_LAST
tb_netns swcni-fla; A=$TB_LAST
tb_netns swcni-flb; B=$TB_LAST
BR="swfl$TB_ID"
tb_private_conf "$here/../../netconf-examples/k3s-flannel.conflist" "$BR" > "$D/net.d/10-k3s.conflist"
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
subnet_env() {  # subnet_env IPMASQ [EXTRA-LINE]
    printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=%s\n%s' "$1" "${2:-}" > "$D/subnet.env"
}
kept() { echo "$D/flannel/$1"; }
masq_elements() { ip netns exec "$H" nft -j list ruleset | jq '[.nftables[] | .map? // empty | select(.name | startswith("masq")) | (.elem // []) | length] | add // 0'; }

echo "flannel: no subnet file yet"
rm -f "$D/subnet.env"
# STATUS is 1.1.0 (k3s's list is 1.0.0): the plugin as a 1.1.0 runtime calls it.
jq -c '.plugins[0] + {cniVersion:"1.1.0", name:"cbr0"}' "$D/net.d/10-k3s.conflist" > "$D/status.json"
tb_plugin "$H" "$D/bin/flannel" STATUS st "" eth0 "$D/status.json"
echo "$TB_OUT" > "$D/out.json"
check "STATUS fails (code 50) naming the subnet file" jq -e '.code == 50 and (.msg | contains("subnet.env"))' "$D/out.json"
ctl add cbr0 "/run/netns/$A" >/dev/null 2>"$D/err"; rc=$?
check "ADD fails with 11 (try again later) naming the subnet file" bash -c "[ $rc -ne 0 ] && grep -q 'code 11' '$D/err' && grep -q subnet.env '$D/err'"
check "... and keeps nothing, makes no bridge" bash -c "[ ! -e '$(kept cnitool-a)' ] && ! ip -n $H link show $BR 2>/dev/null"
printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_IPMASQ=true\n' > "$D/subnet.env"
ctl add cbr0 "/run/netns/$A" >/dev/null 2>"$D/err"; rc=$?
check "a subnet file without FLANNEL_MTU: 11 naming it" bash -c "[ $rc -ne 0 ] && grep -q 'code 11' '$D/err' && grep -q FLANNEL_MTU '$D/err'"

echo "flannel: ADD with k3s's conflist"
subnet_env true
tb_plugin "$H" "$D/bin/flannel" STATUS st "" eth0 "$D/status.json"
check_eq "STATUS exits 0 with the subnet file ($TB_OUT)" 0 "$TB_RC"
ctl add cbr0 "/run/netns/$A" > "$D/a.json" 2>"$D/err"; rc=$?
check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "the address is in the node's subnet" "10.244.7.2/24" "$(jq -r '.ips[0].address' "$D/a.json")"
check_eq "the gateway is the bridge's, .1" "10.244.7.1" "$(jq -r '.ips[0].gateway' "$D/a.json")"
check_eq "the container routes the cluster network via the gateway" "10.244.7.1" \
    "$(ip -n "$A" -j route show 10.244.0.0/16 | jq -r '.[0].gateway')"
check_eq "... and has a default route via it (isDefaultGateway)" "10.244.7.1" "$(ip -n "$A" -j route show default | jq -r '.[0].gateway')"
check_eq "eth0 has FLANNEL_MTU" "1450" "$(ip -n "$A" -j link show eth0 | jq -r '.[0].mtu')"
port=$(jq -r '[.interfaces[] | select(.sandbox == null and (.name | startswith("veth")))][0].name' "$D/a.json")
check_eq "the port hairpins (delegate hairpinMode)" "true" "$(bridge -n "$H" -j -d link show dev "$port" | jq -r '.[0].hairpin')"
check_eq "no masquerade: the agent does it (FLANNEL_IPMASQ=true)" 0 "$(masq_elements)"
K=$(kept cnitool-a)
[ -e "$K" ] || K=$(ls "$D/flannel"/* 2>/dev/null | head -1)
check "the delegate's configuration is kept under dataDir by container ID (0600, directory 0700)" \
    bash -c "[ \"\$(stat -c %a '$K')\" = 600 ] && [ \"\$(stat -c %a '$D/flannel')\" = 700 ]"
check_eq "... as flannel makes it" "bridge cbr0 true true 1450 false host-local 10.244.7.0/24 10.244.0.0/16" \
    "$(jq -r '[.type, .name, .isGateway, .hairpinMode, .mtu, .ipMasq, .ipam.type, .ipam.ranges[0][0].subnet, .ipam.routes[-1].dst] | join(" ")' "$K")"
ctl check cbr0 "/run/netns/$A" 2>"$D/err"; rc=$?; check_eq "check exits 0 $(head -c 300 "$D/err")" 0 "$rc"

echo "flannel: DEL after the subnet file went"
rm -f "$D/subnet.env"
ctl del cbr0 "/run/netns/$A" 2>"$D/err"; rc=$?; check_eq "del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "no veth left" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no address left reserved" "" "$(find "$D/ipam" -type f 2>/dev/null | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
check_eq "the kept configuration is gone" "" "$(ls "$D/flannel")"
ctl del cbr0 "/run/netns/$A" 2>"$D/err"; rc=$?; check_eq "a second del exits 0 $(head -c 300 "$D/err")" 0 "$rc"

echo "flannel: dual-stack, ipMasq from FLANNEL_IPMASQ=false"
subnet_env false 'FLANNEL_IPV6_NETWORK=fd00:244::/56
FLANNEL_IPV6_SUBNET=fd00:244:0:7::1/64
'
ctl add cbr0 "/run/netns/$A" > "$D/a.json" 2>"$D/err"; rc=$?
check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check "an address of each subnet" bash -c "jq -r '[.ips[].address] | join(\" \")' '$D/a.json' | grep -Eq '^10\.244\.7\.[0-9]+/24 fd00:244:0:7::[0-9a-f]+/64$'"
check_eq "the container routes the IPv6 cluster network" "fd00:244:0:7::1" "$(ip -n "$A" -6 -j route show fd00:244::/56 | jq -r '.[0].gateway')"
check "the bridge masquerades (the agent does not)" test "$(masq_elements)" -gt 0
check_eq "... leaving the cluster's networks alone (ipMasqExclude)" "10.244.0.0/16 fd00:244::/56" \
    "$(jq -r '.ipMasqExclude | join(" ")' "$(ls "$D/flannel"/* | head -1)")"

echo "flannel: GC"
ctl add cbr0 "/run/netns/$B" > "$D/b.json" 2>"$D/err"; rc=$?; check_eq "add of a second container exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "two kept configurations" 2 "$(ls "$D/flannel" | wc -l)"
jq -c '.plugins[0] + {cniVersion:"1.1.0", name:"cbr0"}' "$D/net.d/10-k3s.conflist" > "$D/gc.json"
# GC as the runtime calls it, with only the first container valid.
first=$(ls "$D/flannel" | head -1); second=$(ls "$D/flannel" | tail -1)
jq -c --arg id "$first" '. + {"cni.dev/valid-attachments":[{containerID:$id, ifname:"eth0"}]}' "$D/gc.json" > "$D/gc1.json"
tb_plugin "$H" "$D/bin/flannel" GC gc "" eth0 "$D/gc1.json"
check_eq "GC exits 0 ($TB_OUT)" 0 "$TB_RC"
check_eq "... keeps the valid container's configuration only" "$first" "$(ls "$D/flannel" | tr -d '\n')"
owners() { find "$D/ipam" -type f -not -path '*/.swift-cni/*' | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$' | xargs -r head -qn1 | tr -d '\r' | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' '; }
check_eq "... and the delegate released the other's addresses (host-local GC)" "$first=2 " "$(owners)"
for c in "$A" "$B"; do ctl del cbr0 "/run/netns/$c" 2>/dev/null; done
check_eq "nothing left: veths, kept configurations, reservations" "0  " \
    "$(ip -n "$H" -j link show type veth | jq length) $(ls "$D/flannel") $(find "$D/ipam" -type f | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
tb_finish
