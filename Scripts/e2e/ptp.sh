#!/usr/bin/env bash
# The ptp plugin, run as a runtime runs it (cnictl), in a throwaway host namespace: two containers
# routed through the host (no bridge), dual-stack, laid out as the reference's ptp lays it out
# (compared with the reference's own ADD in the same host), ipMasq towards an "outside"
# namespace, CHECK, DEL (also with CNI_NETNS empty) and GC leaving nothing; a failed ADD that
# leaves nothing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs ptp host-local portmap
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-pth; H=$TB_LAST
tb_netns swcni-pto; O=$TB_LAST
tb_netns swcni-pta; A=$TB_LAST
tb_netns swcni-ptb; B=$TB_LAST
tb_netns swcni-ptr; R=$TB_LAST
# The outside: 192.0.2.2 in O, reached from H over a veth.
ip -n "$H" link add up0 type veth peer name eth0 netns "$O"
ip -n "$H" addr add 192.0.2.1/24 dev up0 && ip -n "$H" link set up0 up
ip -n "$O" addr add 192.0.2.2/24 dev eth0 && ip -n "$O" link set eth0 up
tb_private_conf "$here/../../netconf-examples/ptp.conflist" unused > "$D/net.d/10-routed.conflist"
jq '.name = "ref" | .plugins = [.plugins[0] | .ipam.ranges = [[{"subnet":"10.89.11.0/24"}],[{"subnet":"fd00:89:11::/64"}]]
    | .ipam.dataDir += "-ref"]' "$D/net.d/10-routed.conflist" > "$D/net.d/20-ref.conflist"
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
layout() {  # layout NS: the container's routes with the addresses made generic
    { ip -n "$1" route; ip -n "$1" -6 route | grep -v '^fe80'; } | sed -E 's/10\.89\.1[01]\./N./g; s/fd00:89:1[01]:/M:/g; s/ metric [0-9]+//; s/ +$//' | sort
}

echo "ptp: ADD"
ctl add routed "/run/netns/$A" > "$D/a.json" 2>"$D/err"; rc=$?
check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
ctl add routed "/run/netns/$B" > "$D/b.json" 2>"$D/err"; rc=$?
check_eq "a second add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
a4=$(jq -r '.ips[0].address | split("/")[0]' "$D/a.json"); a6=$(jq -r '.ips[1].address | split("/")[0]' "$D/a.json")
b4=$(jq -r '.ips[0].address | split("/")[0]' "$D/b.json"); b6=$(jq -r '.ips[1].address | split("/")[0]' "$D/b.json")
check_eq "the result: the host end, then the container's interface (its addresses on it)" "1 1 eth0" \
    "$(jq -r '"\(.ips[0].interface) \(.ips[1].interface) \(.interfaces[1].name)"' "$D/a.json")"
check_eq "the container's MTU is the configured one" 1400 "$(ip -n "$A" -j link show eth0 | jq '.[0].mtu')"
check_eq "no bridge on the host" 0 "$(ip -n "$H" -j link show type bridge | jq length)"
veth=$(jq -r '.interfaces[0].name' "$D/a.json")
check_eq "the host end carries the gateways as /32 and /128" "10.89.10.1/32 fd00:89:10::1/128" \
    "$(ip -n "$H" -j addr show dev "$veth" | jq -r '[.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | join(" ")')"
check "... and routes the container's addresses through it" bash -c \
    "ip -n $H route show $a4 | grep -q 'dev $veth' && ip -n $H -6 route show $a6 | grep -q 'dev $veth'"
ip netns exec "$H" env CNI_PATH=/usr/lib/cni "$BIN/cnictl" add ref "/run/netns/$R" --cache-dir "$D/cache" >/dev/null 2>"$D/err"
check "the reference's ADD in the same host works" test -s "$D/cache/results/ref-"*
check_eq "the container's routes are laid out as the reference lays them out (metrics aside)" "$(layout "$R")" "$(layout "$A")"

echo "ptp: traffic"
check "A pings B over IPv4 (through the host)" bash -c "ip netns exec $A ping -c1 -W1 $b4 >/dev/null"
check "A pings B over IPv6" bash -c "ip netns exec $A ping -c1 -W2 $b6 >/dev/null"
ip netns exec "$O" timeout 5 python3 -c "
import socket; s = socket.socket(); s.bind(('0.0.0.0', 7004)); s.listen(); c, a = s.accept(); print(a[0])" > "$D/peer.txt" 2>/dev/null &
srv=$!
until_ready() { local i; for i in $(seq 1 50); do ip netns exec "$O" ss -Hltn 'sport = :7004' | grep -q . && return 0; sleep 0.05; done; return 1; }
until_ready
ip netns exec "$A" python3 -c "import socket; socket.create_connection(('192.0.2.2', 7004), timeout=2).close()"
wait "$srv" 2>/dev/null
check_eq "ipMasq: the outside sees the host's address, not the container's" "192.0.2.1" "$(cat "$D/peer.txt")"

echo "ptp: CHECK"
ctl check routed "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "check exits 0 $(head -c 300 "$D/err")" 0 "$rc"
ip -n "$A" route del 10.89.10.0/24
ctl check routed "/run/netns/$A" 2>"$D/err"; rc=$?
check "check after a route was deleted by hand fails naming it" bash -c "[ $rc -ne 0 ] && grep -q 'route to 10.89.10.0/24' '$D/err'"

echo "ptp: DEL and GC"
ctl del routed "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check "the host end and its routes went with the container's interface" bash -c "! ip -n $H link show $veth 2>/dev/null && ! ip -n $H route show $a4 | grep -q ."
ctl del routed "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "a second del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
rm -f "$D/cache/results/routed-"*   # B forgotten by the runtime: GC collects its address and ipMasq elements
jq '.cniVersion = "1.1.0"' "$D/net.d/10-routed.conflist" > "$D/gc.conflist"; mkdir -p "$D/gc.d"; mv "$D/gc.conflist" "$D/gc.d/"
ip netns exec "$H" env NETCONFPATH="$D/gc.d" "$BIN/cnictl" gc routed --cache-dir "$D/cache" 2>"$D/err"; rc=$?
check_eq "GC exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "no address of ours left reserved" "" "$(find "$D/ipam" -type f -not -path '*/.swift-cni/*' | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
check_eq "no ipMasq element of ours left" 0 "$(ip netns exec "$H" nft -j list map inet swift_cni masq4 2>/dev/null | jq '[.nftables[] | .map? // empty | (.elem // []) | length] | add // 0')"
ip netns exec "$H" env CNI_PATH=/usr/lib/cni "$BIN/cnictl" del ref "/run/netns/$R" --cache-dir "$D/cache" 2>/dev/null

echo "ptp: a failed ADD leaves nothing"
jq '.plugins[0].ipam.ranges = [[{"subnet":"10.89.12.0/30"}]] | .name = "tiny"' "$D/net.d/10-routed.conflist" > "$D/net.d/30-tiny.conflist"
tb_netns swcni-ptd; E=$TB_LAST
ctl add tiny "/run/netns/$E" >/dev/null 2>&1   # takes the range's only address
before=$(ip -n "$H" -br link | wc -l)
tb_netns swcni-ptc; C=$TB_LAST
ctl add tiny "/run/netns/$C" >/dev/null 2>"$D/err"; rc=$?
check "an ADD whose range is exhausted fails (106)" bash -c "[ $rc -ne 0 ] && grep -q 'code 106' '$D/err'"
check_eq "... and leaves no veth on the host or in the container" "$before 1" "$(ip -n "$H" -br link | wc -l) $(ip -n "$C" -br link | wc -l)"
tb_finish
