#!/usr/bin/env bash
# Our bridge + host-local + portmap driven by cnictl in a throwaway host netns with an "outside"
# netns on its eth0: TCP through 127.0.0.1, the host's address (IPv4 and IPv6), from another
# container and hairpin (a container to its own host port: with br_netfilter, as on Kubernetes
# nodes and here, the bridge must send the frame back out its port, so hairpinMode is on); UDP (with the stale conntrack flow flushed); a hostIP mapping that does
# not answer on another address; a conflicting host port refused; nothing of ours after DEL.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
NC="/usr/bin/python3 $here/../lib/netcheck.py"
tb_cni_dirs bridge host-local portmap
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-pmh; H=$TB_LAST
tb_netns swcni-pmo; O=$TB_LAST
tb_netns swcni-pma; A=$TB_LAST
tb_netns swcni-pmb; B=$TB_LAST
tb_netns swcni-pmc; C=$TB_LAST
# The host's uplink: eth0 in H, its peer in the outside namespace O.
ip -n "$H" link add eth0 type veth peer name up0 netns "$O"
ip -n "$H" addr add 192.0.2.1/24 dev eth0; ip -n "$H" addr add 192.0.2.11/24 dev eth0
ip -n "$H" addr add 2001:db8::1/64 dev eth0 nodad
ip -n "$O" addr add 192.0.2.2/24 dev up0; ip -n "$O" addr add 2001:db8::2/64 dev up0 nodad
ip -n "$H" link set eth0 up; ip -n "$O" link set up0 up

cat > "$D/net.d/10-web.conflist" <<JSON
{"cniVersion":"1.1.0","name":"web","plugins":[
  {"type":"bridge","bridge":"swpm$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.97.0.0/24"}],[{"subnet":"fd00:97::/64"}]],
           "routes":[{"dst":"::/0"}],"dataDir":"$D/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
ask() { ip netns exec "$1" $NC ask "$2" "$3" "$4" 2>/dev/null; }
elements() { ip netns exec "$H" nft -j list ruleset | jq '[.nftables[] | select(.element? or .map?) | (.map.elem // []) | length] | add // 0'; }

for n in "$A" "$B" "$C"; do
    tb_bg "$n" $NC serve tcp 80 "$n"
    tb_bg "$n" $NC serve udp 5353 "$n"
done
tb_wait_tcp "$A" 0.0.0.0 80; tb_wait_tcp "$B" 0.0.0.0 80; tb_wait_tcp "$C" 0.0.0.0 80

echo "portmap: ADD with TCP, UDP and a hostIP mapping"
CAP_ARGS='{"portMappings":[{"hostPort":8081,"containerPort":80}]}' ctl add web "/run/netns/$B" >/dev/null 2>"$D/err"
rc=$?
check_eq "add B exits 0 $(head -c 300 "$D/err")" 0 "$rc"
# A UDP flow to host port 5300 before A maps it: conntrack ties it to the host itself, and would
# keep sending the same client's datagrams there after the ADD unless the flow is flushed.
r=$(ask "$O" udp 192.0.2.1 5300 40000); check_eq "before the mapping, 5300/udp has no answer" "" "$r"
check "... and the flow is tracked" bash -c "ip netns exec $H conntrack -L -p udp --dport 5300 2>/dev/null | grep -q 5300"
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
  {"hostPort":5300,"containerPort":5353,"protocol":"udp"},
  {"hostPort":9090,"containerPort":80,"protocol":"tcp","hostIP":"192.0.2.11"}]}' \
    ctl add web "/run/netns/$A" >"$D/a.json" 2>"$D/err"
rc=$?
check_eq "add A exits 0 $(head -c 300 "$D/err")" 0 "$rc"
a4=$(jq -r '.ips[] | select(.address | contains(".")) | .address' "$D/a.json" | cut -d/ -f1)
check "the stale flow of host port 5300 was flushed" bash -c \
    "! ip netns exec $H conntrack -L -p udp --dport 5300 2>/dev/null | grep -q 5300"
r=$(ask "$O" udp 192.0.2.1 5300 40000); check_eq "the same client's next datagram reaches A" "$A 192.0.2.2" "$r"
check_eq "route_localnet on the bridge" 1 "$(ip netns exec "$H" sysctl -n "net.ipv4.conf.swpm$TB_ID.route_localnet")"

r=$(ask "$O" tcp 192.0.2.1 8080); check_eq "outside -> host:8080 reaches A, client address kept" "$A 192.0.2.2" "$r"
r=$(ask "$O" tcp 2001:db8::1 8080); check_eq "outside -> [host v6]:8080 reaches A" "$A 2001:db8::2" "$r"
r=$(ask "$H" tcp 127.0.0.1 8080); check_eq "host -> 127.0.0.1:8080 reaches A (masqueraded)" "$A 10.97.0.1" "$r"
r=$(ask "$H" tcp 192.0.2.1 8080); check_eq "host -> its own address:8080 reaches A" "$A 192.0.2.1" "$r"
r=$(ask "$O" udp 192.0.2.1 5300); check_eq "outside -> host:5300/udp reaches A" "$A 192.0.2.2" "$r"
r=$(ask "$O" tcp 192.0.2.11 9090); check_eq "hostIP mapping answers on 192.0.2.11" "$A 192.0.2.2" "$r"
r=$(ask "$O" tcp 192.0.2.1 9090); check_eq "hostIP mapping does not answer on 192.0.2.1" "" "$r"
r=$(ask "$A" tcp 10.97.0.1 8080); check_eq "hairpin: A -> gateway:8080 reaches A" "$A 10.97.0.1" "$r"
r=$(ask "$O" tcp 10.97.0.77 8080); check_eq "no translation for a non-local destination" "" "$r"

r=$(ask "$B" tcp 192.0.2.1 8080); check_eq "B -> host:8080 reaches A" "$A 10.97.0.1" "$r"
r=$(ask "$A" tcp 192.0.2.1 8081); check_eq "A -> host:8081 reaches B" "$B 10.97.0.1" "$r"

echo "portmap: conflicts"
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80}]}' ctl add web "/run/netns/$C" >/dev/null 2>"$D/err"
rc=$?
check "a host port held by A is refused (exit $rc)" test "$rc" -ne 0
check "code 107 (conflict) naming the port and its owner: $(cat "$D/err")" \
    grep -q '8080/tcp is already mapped to container cnitool-.*(eth0) on network "web".*(code 107)' "$D/err"
check_eq "the refused ADD left C without interface" 0 "$(ip -n "$C" -j link show type veth | jq length)"
r=$(ask "$O" tcp 192.0.2.1 8080); check_eq "A still owns 8080" "$A 192.0.2.2" "$r"
CAP_ARGS='{"portMappings":[{"hostPort":9090,"containerPort":80}]}' ctl add web "/run/netns/$C" >/dev/null 2>"$D/err"
check "\"any address\" over A's hostIP port 9090 is refused" grep -q '9090/tcp is already mapped.*(code 107)' "$D/err"
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":5353,"protocol":"udp"}]}' ctl add web "/run/netns/$C" >/dev/null 2>"$D/err"
check_eq "the same port over UDP is free" 0 "$?"
r=$(ask "$O" udp 192.0.2.1 8080); check_eq "... and reaches C" "$C 192.0.2.2" "$r"

echo "portmap: CHECK, DEL, GC"
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
  {"hostPort":5300,"containerPort":5353,"protocol":"udp"},
  {"hostPort":9090,"containerPort":80,"protocol":"tcp","hostIP":"192.0.2.11"}]}' ctl check web "/run/netns/$A"
check_eq "check A exits 0" 0 "$?"
ip netns exec "$H" nft delete element inet swift_cni_portmap dnat4 "{ udp . 5300 }"
CAP_ARGS='{"portMappings":[{"hostPort":5300,"containerPort":5353,"protocol":"udp"}]}' ctl check web "/run/netns/$A" >/dev/null 2>&1
check "check A fails once a mapping is gone" test "$?" -ne 0
# The rules flushed by someone else (the table and its maps intact): CHECK fails; DEL and ADD
# of the container put them back and the port answers again.
ip netns exec "$H" nft flush chain inet swift_cni_portmap hostports
AM='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
CAP_ARGS="$AM" ctl check web "/run/netns/$A" >/dev/null 2>"$D/err"
check "check A fails once the DNAT rules are flushed" grep -q 'chain hostports has 0 of its 4 rules' "$D/err"
ctl del web "/run/netns/$A" && CAP_ARGS="$AM" ctl add web "/run/netns/$A" >/dev/null 2>"$D/err"
check_eq "del and add A exit 0 $(head -c 300 "$D/err")" 0 "$?"
r=$(ask "$O" tcp 192.0.2.1 8080); check_eq "... and 8080 reaches A again" "$A 192.0.2.2" "$r"
CAP_ARGS="$AM" ctl check web "/run/netns/$A"; check_eq "... and check A exits 0" 0 "$?"
ctl del web "/run/netns/$A"; check_eq "del A exits 0" 0 "$?"
ctl del web "/run/netns/$A"; check_eq "repeated del exits 0" 0 "$?"
r=$(ask "$O" tcp 192.0.2.1 8080); check_eq "8080 no longer answers" "" "$r"
# C vanishes without DEL: GC removes its mapping; B's stays.
ip netns del "$C"
ctl gc web; check_eq "gc exits 0" 0 "$?"
count() { ip netns exec "$H" nft -j list map inet swift_cni_portmap "$1" | jq '[.nftables[].map.elem // [] | length] | add'; }
check_eq "B's mappings (IPv4 and IPv6) are all that is left" 2 "$(( $(count dnat4) + $(count dnat6) ))"
ctl del web "/run/netns/$B"; check_eq "del B exits 0" 0 "$?"
check_eq "no element of ours left in the ruleset" 0 "$(elements)"
check_eq "no subnet chain left (masquerade, snat)" "" "$(ip netns exec "$H" nft list ruleset | grep -Eo 'chain (masq|snat)-[0-9a-f]+' | tr '\n' ' ')"
check_eq "no cache entry left" 0 "$(ls "$D/cache/results" | wc -l)"
tb_finish
