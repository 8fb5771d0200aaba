#!/usr/bin/env bash
# Our bridge + host-local driven by cnictl in a throwaway host netns: two containers ping each
# other and the gateway, CHECK/STATUS/GC work, and after DEL no veth, allocation or rule of ours
# remains. Then the other mix: the reference bridge with our host-local.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
tb_tmpdir D
mkdir -p "$D/net.d" "$D/ours" "$D/mixed" "$D/cache"
for p in bridge host-local; do ln -s "$BIN/cni-plugins" "$D/ours/$p"; done
ln -s "$BIN/cni-plugins" "$D/mixed/host-local"; ln -s /usr/lib/cni/bridge "$D/mixed/bridge"
export NETCONFPATH="$D/net.d"
tb_netns swcni-brh; H=$TB_LAST
tb_netns swcni-bra; A=$TB_LAST
tb_netns swcni-brb; B=$TB_LAST
cat > "$D/net.d/10-ours.conflist" <<JSON
{"cniVersion":"1.1.0","name":"ours","plugins":[
  {"type":"bridge","bridge":"swbr$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.95.0.0/24"}],[{"subnet":"fd00:95::/64"}]],"dataDir":"$D/ipam"}}]}
JSON
cat > "$D/net.d/20-mixed.conflist" <<JSON
{"cniVersion":"1.0.0","name":"mixed","plugins":[
  {"type":"bridge","bridge":"swbm$TB_ID","isGateway":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.96.0.0/24"}]],"dataDir":"$D/ipam"}}]}
JSON
ctl() { ip netns exec "$H" env CNI_PATH="$CNI_PATH" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
masq() { ip netns exec "$H" nft list map inet swift_cni masq4 2>/dev/null | grep -o 'comment' | wc -l; }

echo "our bridge + host-local"
export CNI_PATH="$D/ours"
out=$(ctl add ours "/run/netns/$A" 2>"$D/err"); rc=$?
check_eq "add A exits 0 $(head -c 200 "$D/err")" 0 "$rc"
a4=$(jq -r '.ips[] | select(.address | contains(".")) | .address' <<<"$out" | cut -d/ -f1)
a6=$(jq -r '.ips[] | select(.address | contains(":")) | .address' <<<"$out" | cut -d/ -f1)
check_eq "result: bridge, host veth, container interface" "swbr$TB_ID veth eth0" \
    "$(jq -r '[.interfaces[].name] | join(" ")' <<<"$out" | sed -E 's/veth[0-9a-f]{8}/veth/')"
ctl add ours "/run/netns/$B" >/dev/null; check_eq "add B exits 0" 0 "$?"
check "B pings A over IPv4" bash -c "ip netns exec $B ping -c1 -W2 $a4 >/dev/null"
check "B pings A over IPv6" bash -c "ip netns exec $B ping -6 -c1 -W2 $a6 >/dev/null"
check "A pings the gateway" bash -c "ip netns exec $A ping -c1 -W2 10.95.0.1 >/dev/null"
check_eq "default route via the gateway" "10.95.0.1" "$(ip -n "$A" -j route show default | jq -r '.[0].gateway')"
check_eq "two masquerade elements (one per container, IPv4)" 2 "$(masq)"
ctl check ours "/run/netns/$A"; check_eq "check exits 0" 0 "$?"
ctl status ours >/dev/null; check_eq "status exits 0" 0 "$?"
ctl del ours "/run/netns/$A"; check_eq "del A exits 0" 0 "$?"
ctl del ours "/run/netns/$A"; check_eq "repeated del exits 0" 0 "$?"
check_eq "one veth left on the host (B's)" 1 "$(ip -n "$H" -j link show type veth | jq length)"
# B's namespace vanishes without a DEL; gc removes its interface state, address and rule.
ip netns del "$B"
ctl gc ours; check_eq "gc exits 0" 0 "$?"
check_eq "no veth left" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no allocation left" "last_reserved_ip.0 last_reserved_ip.1 lock" "$(ls "$D/ipam/ours" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "no masquerade element left" 0 "$(masq)"
check_eq "no cache entry left" 0 "$(ls "$D/cache/results" | wc -l)"

echo "reference bridge + our host-local"
export CNI_PATH="$D/mixed:/usr/lib/cni"
ctl add mixed "/run/netns/$A" >/dev/null; check_eq "add exits 0" 0 "$?"
check "A pings the reference bridge's gateway" bash -c "ip netns exec $A ping -c1 -W2 10.96.0.1 >/dev/null"
check "our host-local's reservation file" test -f "$D/ipam/mixed/10.96.0.2"
ctl check mixed "/run/netns/$A"; check_eq "check exits 0" 0 "$?"
ctl del mixed "/run/netns/$A"; check_eq "del exits 0" 0 "$?"
check_eq "address released" "last_reserved_ip.0 lock" "$(ls "$D/ipam/mixed" | sort | tr '\n' ' ' | sed 's/ $//')"
tb_finish
