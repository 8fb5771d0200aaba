#!/usr/bin/env bash
# Security properties, on a bridge + portmap + dnsname network in a throwaway host netns with an
# outside client X and a remote server Y routed through the host:
# - cni-dnsd listens only on the gateway addresses, and forwards only for the network's
#   containers (never an open resolver for whoever can route to a gateway);
# - no state file or socket is writable by others;
# - portmap translates only traffic to the host's own addresses: a routed connection to another
#   machine's port 8080 reaches that machine, not the container.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
NC="/usr/bin/python3 $here/../lib/netcheck.py"
tb_cni_dirs bridge host-local portmap dnsname
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-seh; H=$TB_LAST
tb_netns swcni-sea; A=$TB_LAST
tb_netns swcni-sex; X=$TB_LAST     # an outside client, routed through the host
tb_netns swcni-sey; Y=$TB_LAST     # a remote server, routed through the host
tb_netns swcni-seu; U=$TB_LAST     # the fake upstream DNS server
link() {  # link NS NAME HOSTADDR PEERADDR: a veth NAME from the host to NS, NS's default route via the host
    ip -n "$H" link add "$2" type veth peer name eth0 netns "$1"
    ip -n "$H" addr add "$3/24" dev "$2"; ip -n "$H" link set "$2" up
    ip -n "$1" addr add "$4/24" dev eth0; ip -n "$1" link set eth0 up
    ip -n "$1" route add default via "$3"
}
link "$X" tox 198.51.100.1 198.51.100.2
link "$Y" toy 203.0.113.1 203.0.113.80
link "$U" tou 192.0.2.1 192.0.2.53
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1
tb_bg "$U" /usr/bin/python3 "$here/../lib/fake-dns.py" 192.0.2.53 203.0.113.7 "$D/upstream.log"
tb_bg "$Y" $NC serve tcp 8080 remote
tb_bg "$A" $NC serve tcp 80 container
for i in $(seq 1 50); do ip netns exec "$U" ss -Hlun 'sport = :53' | grep -q . && break; sleep 0.05; done
tb_wait_tcp "$Y" 203.0.113.80 8080; tb_wait_tcp "$A" 0.0.0.0 80
cat > "$D/net.d/10-sec.conflist" <<JSON
{"cniVersion":"1.1.0","name":"sec","plugins":[
  {"type":"bridge","bridge":"swse$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.87.0.0/24"}],[{"subnet":"fd00:87::/64"}]],"dataDir":"$D/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true}},
  {"type":"dnsname","domainName":"dns.podman","runDir":"$D/dns","upstreams":["192.0.2.53"]}]}
JSON
ip netns exec "$H" env CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=alpha" CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80}]}' \
    "$BIN/cnictl" add sec "/run/netns/$A" --cache-dir "$D/cache" >/dev/null 2>"$D/err"
rc=$?
check_eq "add A exits 0 $(head -c 300 "$D/err")" 0 "$rc"
q() { ip netns exec "$1" dig +time=2 +tries=1 "${@:2}"; }
status() { q "$@" | grep -o 'status: [A-Z]*' | cut -d' ' -f2; }

echo "security: the responder"
listening=$(ip netns exec "$H" ss -Hlnup -A inet 2>/dev/null | grep cni-dnsd | awk '{print $1, $5}' | sort | tr '\n' ' ')
check_eq "cni-dnsd sockets: UDP and TCP on the two gateways, port 53, nothing else" \
    "tcp 10.87.0.1:53 tcp [fd00:87::1]:53 udp 10.87.0.1:53 udp [fd00:87::1]:53 " "$listening"
check_eq "a container gets forwarding (the control)" "203.0.113.7" "$(q "$A" +short @10.87.0.1 example.test)"
check_eq "an outside client routed to the gateway: REFUSED" "REFUSED" "$(status "$X" @10.87.0.1 outside.test)"
check_eq "... over TCP too" "REFUSED" "$(status "$X" +tcp @10.87.0.1 outside.test)"
check_eq "the host itself is no container either" "REFUSED" "$(status "$H" @10.87.0.1 host.test)"
check "... and without recursion available" bash -c "! ip netns exec $X dig +time=2 +tries=1 @10.87.0.1 outside.test | grep -qE 'flags:[a-z ]* ra'"
check_eq "the upstream only ever saw the container's query" "example.test" "$(sort -u "$D/upstream.log" | tr '\n' ' ' | sed 's/ $//')"
check_eq "the outside client gets no answer on the host's other address" "" "$(q "$X" +short @198.51.100.1 example.test 2>/dev/null | grep -v '^;')"

echo "security: state files"
check_eq "nothing writable by others under the state directories" "" \
    "$(find "$D/ipam" "$D/dns" "$D/cache" \( -type f -o -type d -o -type s \) -perm -o+w)"
check_eq "address reservations: 0600" "600" "$(stat -c %a "$D/ipam/sec"/10.87.0.2)"
check_eq "the result cache directory: 0700" "700" "$(stat -c %a "$D/cache/results")"
check_eq "the responder's control socket: 0600" "600" "$(stat -c %a "$D/dns/dnsd.sock")"
check_eq "the responder's lock and pid file: not world-writable" "" "$(find "$D/dns" -maxdepth 1 -name 'dnsd.*' -perm -o+w)"

echo "security: portmap translates only local destinations"
r=$(ip netns exec "$X" $NC ask tcp 198.51.100.1 8080 2>/dev/null); check_eq "X -> host:8080 reaches the container (the control)" "container 198.51.100.2" "$r"
r=$(ip netns exec "$X" $NC ask tcp 203.0.113.80 8080 2>/dev/null); check_eq "X -> a remote machine's :8080, routed by the host, reaches that machine" "remote 198.51.100.2" "$r"
r=$(ip netns exec "$A" $NC ask tcp 203.0.113.80 8080 2>/dev/null); check_eq "the container -> the remote :8080 reaches the remote (masqueraded)" "remote 203.0.113.1" "$r"
r=$(ip netns exec "$H" $NC ask tcp 203.0.113.80 8080 2>/dev/null); check_eq "the host -> the remote :8080 reaches the remote" "remote 203.0.113.1" "$r"

ip netns exec "$H" "$BIN/cnictl" del sec "/run/netns/$A" --cache-dir "$D/cache"; check_eq "del A exits 0" 0 "$?"
tb_finish
