#!/usr/bin/env bash
# bridge + host-local + dnsname (our cni-dnsd) driven by cnictl in a throwaway host netns: a
# container resolves another by name, alias, FQDN and reverse, right after ADD returns; a
# container of another network cannot; other names go to a fake upstream the test runs in a
# namespace of its own (never a real one), the search domain and single labels never do; after
# DEL the name is NXDOMAIN; the responder exits with the last network.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs bridge host-local portmap dnsname
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-dnh; H=$TB_LAST
tb_netns swcni-dnu; U=$TB_LAST
tb_netns swcni-dna; A=$TB_LAST
tb_netns swcni-dnb; B=$TB_LAST
tb_netns swcni-dnc; C=$TB_LAST
# The fake upstream: 192.0.2.53 in U, reached from H over a veth.
ip -n "$H" link add up0 type veth peer name eth0 netns "$U"
ip -n "$H" addr add 192.0.2.1/24 dev up0; ip -n "$H" link set up0 up
ip -n "$U" addr add 192.0.2.53/24 dev eth0; ip -n "$U" link set eth0 up
tb_bg "$U" /usr/bin/python3 "$here/../lib/fake-dns.py" 192.0.2.53 203.0.113.7 "$D/upstream.log"
for i in $(seq 1 50); do ip netns exec "$U" ss -Hlun 'sport = :53' | grep -q . && break; sleep 0.05; done

net() {  # net NAME BRIDGE SUBNET4 SUBNET6
    cat > "$D/net.d/$1.conflist" <<JSON
{"cniVersion":"1.0.0","name":"$1","plugins":[
  {"type":"bridge","bridge":"$2","isGateway":true,"isDefaultGateway":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"$3"}],[{"subnet":"$4"}]],"dataDir":"$D/ipam"}},
  {"type":"dnsname","domainName":"dns.podman","runDir":"$D/dns","upstreams":["192.0.2.53"],"capabilities":{"aliases":true},
   "rateLimit":50,"metricsAddress":"127.0.0.1:9153"}]}
JSON
}
net web "swdw$TB_ID" 10.93.0.0/24 fd00:93::/64
net other "swdo$TB_ID" 10.94.0.0/24 fd00:94::/64
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
q() { ip netns exec "$1" dig +time=2 +tries=1 "${@:2}"; }  # q NETNS dig-args...

echo "dnsname: ADD and resolve"
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=alpha" CAP_ARGS='{"aliases":{"web":["alpha-alias"]}}' \
    ctl add web "/run/netns/$A" > "$D/a.json" 2>"$D/err"
rc=$?
check_eq "add A exits 0 $(head -c 300 "$D/err")" 0 "$rc"
a4=$(jq -r '.ips[] | select(.address | contains(".")) | .address' "$D/a.json" | cut -d/ -f1)
a6=$(jq -r '.ips[] | select(.address | contains(":")) | .address' "$D/a.json" | cut -d/ -f1)
check_eq "result: the gateways as nameservers" "10.93.0.1 fd00:93::1" "$(jq -r '.dns.nameservers | join(" ")' "$D/a.json")"
check_eq "result: the search domain" "dns.podman" "$(jq -r '.dns.search | join(" ")' "$D/a.json")"
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=beta" ctl add web "/run/netns/$B" >/dev/null 2>"$D/err"
rc=$?
check_eq "add B exits 0 $(head -c 300 "$D/err")" 0 "$rc"
# No sleep anywhere: ADD returned after the responder loaded the names.
check_eq "B resolves alpha by name" "$a4" "$(q "$B" +short @10.93.0.1 alpha)"
check_eq "... by alias" "$a4" "$(q "$B" +short @10.93.0.1 alpha-alias)"
check_eq "... by FQDN, any case" "$a4" "$(q "$B" +short @10.93.0.1 ALPHA.dns.podman)"
check_eq "... AAAA over the IPv6 gateway" "$a6" "$(q "$B" +short @fd00:93::1 alpha AAAA)"
check_eq "... over TCP" "$a4" "$(q "$B" +tcp +short @10.93.0.1 alpha)"
check_eq "... reverse" "alpha.dns.podman." "$(q "$B" +short @10.93.0.1 -x "$a4")"
q "$B" +noall +comments +answer @10.93.0.1 alpha > "$D/full"
check "... authoritative" grep -qE 'flags:[a-z ]* aa' "$D/full"
check "... TTL 0" grep -qE '^alpha\.[[:space:]]+0[[:space:]]+IN[[:space:]]+A' "$D/full"
check_eq "A resolves beta" "10.93.0.3" "$(q "$A" +short @10.93.0.1 beta)"
check_eq "TCP: 3 pipelined queries, 3 answers" 3 "$(ip netns exec "$B" /usr/bin/python3 "$here/../lib/dns-tcp.py" pipeline 10.93.0.1 alpha beta example.test)"
check_eq "TCP: a zero-length message closes the connection" closed "$(ip netns exec "$B" /usr/bin/python3 "$here/../lib/dns-tcp.py" zero 10.93.0.1)"
check_eq "another type of a known name (TXT) is NODATA, not NXDOMAIN" "NOERROR" \
    "$(q "$B" @10.93.0.1 alpha TXT | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"

echo "dnsname: isolation"
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=gamma" ctl add other "/run/netns/$C" >/dev/null 2>"$D/err"
rc=$?
check_eq "add C (network other) exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "C resolves itself on its own gateway" "10.94.0.2" "$(q "$C" +short @10.94.0.1 gamma)"
check_eq "C cannot resolve alpha on its gateway" "NXDOMAIN" "$(q "$C" @10.94.0.1 alpha | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"
ip -n "$H" route get 10.93.0.1 >/dev/null 2>&1   # C reaches web's gateway through the host (routing)
check_eq "nor by asking web's gateway" "NXDOMAIN" "$(q "$C" @10.93.0.1 alpha | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"
check_eq "B cannot resolve gamma" "NXDOMAIN" "$(q "$B" @10.93.0.1 gamma | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"

echo "dnsname: forwarding"
check_eq "other names come from the (fake) upstream" "203.0.113.7" "$(q "$B" +short @10.93.0.1 example.test)"
check_eq "the search domain is not forwarded" "NXDOMAIN" "$(q "$B" @10.93.0.1 nobody.dns.podman | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"
check_eq "a single label is not forwarded" "NXDOMAIN" "$(q "$B" @10.93.0.1 nobody | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"
check_eq "the upstream saw example.test only" "example.test" "$(sort -u "$D/upstream.log" | tr '\n' ' ' | sed 's/ $//')"

echo "dnsname: counters, metrics, rate limit"
stats() { ip netns exec "$H" "$BIN/cnictl" dns stats --dir "$D/dns" "$@"; }
stats > "$D/stats"; check_eq "cnictl dns stats exits 0" 0 "$?"
check "... a row per network" bash -c "grep -q '^web ' $D/stats && grep -q '^other ' $D/stats"
stats --json > "$D/stats.json"
check_eq "web counted queries, NXDOMAINs and a forward" true \
    "$(jq '.networks.web.queries > 10 and .networks.web.rcodes.NXDOMAIN >= 3 and .networks.web.forwarded >= 1' "$D/stats.json")"
check_eq "other counted C's queries" true "$(jq '.networks.other.queries >= 2' "$D/stats.json")"
metrics=$(ip netns exec "$H" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9153/metrics", timeout=3).read().decode())')
check "Prometheus text on 127.0.0.1:9153/metrics" grep -qE '^cni_dnsd_queries_total\{network="web"\} [0-9]+$' <<<"$metrics"
check "... with answers by RCODE" grep -qE '^cni_dnsd_responses_total\{network="web",rcode="NXDOMAIN"\} [0-9]+$' <<<"$metrics"
answered=$(ip netns exec "$B" /usr/bin/python3 "$here/../lib/dns-tcp.py" burst 10.93.0.1 alpha 300)
check "a burst of 300 from one source: the rate limit (50/s, bursts of 100) answers about 100 ($answered)" \
    test "$answered" -ge 60 -a "$answered" -le 160
check_eq "another source is answered meanwhile" "10.94.0.2" "$(q "$C" +short @10.94.0.1 gamma)"
check_eq "the dropped queries are counted" true "$(stats --json | jq '.networks.web.rateLimited >= 100')"

echo "dnsname: CHECK, DEL"
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=alpha" CAP_ARGS='{"aliases":{"web":["alpha-alias"]}}' ctl check web "/run/netns/$A"
check_eq "check A exits 0" 0 "$?"
pid=$(cat "$D/dns/dnsd.pid")
check "one responder for both networks" test "$(pgrep -f "cni-dnsd --dir $D/dns" | wc -l)" -eq 1
CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=alpha" ctl del web "/run/netns/$A"; check_eq "del A exits 0" 0 "$?"
check_eq "alpha is NXDOMAIN right after DEL" "NXDOMAIN" "$(q "$B" @10.93.0.1 alpha | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"
ctl del web "/run/netns/$A"; check_eq "repeated del exits 0" 0 "$?"
ctl del web "/run/netns/$B"; check_eq "del B exits 0" 0 "$?"
check "the web records file is gone" test ! -e "$D/dns/web.net"
check_eq "gamma still resolves" "10.94.0.2" "$(q "$C" +short @10.94.0.1 gamma)"
ctl del other "/run/netns/$C"; check_eq "del C exits 0" 0 "$?"
for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
check "the responder exited with the last network" bash -c "! kill -0 $pid 2>/dev/null"
check_eq "no records file left" "" "$(ls "$D/dns" | grep '\.net$')"

echo "dnsname: a responder that cannot start now"
# Its metrics port taken: cni-dnsd exits at start; the ADD is "try again later" (11), undone.
tb_bg "$H" /usr/bin/python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 9153)); s.listen(); time.sleep(120)'
for i in $(seq 1 50); do ip netns exec "$H" ss -Hltn 'sport = :9153' | grep -q . && break; sleep 0.05; done
ctl add web "/run/netns/$A" > "$D/fail.json" 2>&1
check_eq "ADD fails with code 11 $(head -c 300 "$D/fail.json")" 11 "$(grep -oE '\(code [0-9]+\)' "$D/fail.json" | head -1 | grep -oE '[0-9]+')"
check_eq "... and leaves no records" "" "$(ls "$D/dns" | grep '\.net$')"
check_eq "... and no address" "" "$(ls "$D/ipam/web" 2>/dev/null | grep -E '^[0-9a-f.:]+$')"
tb_finish
