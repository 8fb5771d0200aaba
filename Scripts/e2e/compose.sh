#!/usr/bin/env bash
# The founding document's compose topology with cnictl and our plugins only, from
# netconf-examples/compose-{frontend,backend}.conflist (dual-stack): web on frontend with a
# published port; api on frontend (eth0) and backend (eth1), publishing one port on both as podman
# does; db and cache on backend. Routes: api has a default route per interface, eth0's preferred.
# Names: every pair that should resolve does, on either of api's nameservers; the others are
# NXDOMAIN (no timeout). Connections by name. The shared port keeps serving while any of api's
# attachments lives. DEL of api removes its names from both networks; nothing is left at the end.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
EXAMPLES="$here/../../netconf-examples"
tb_cni_dirs all
mkdir -p "$D/www"
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
for n in frontend backend; do  # private state and bridge names for the run
    jq --arg d "$D/ipam" --arg dns "$D/dns" --arg br "swc${n:0:1}$TB_ID" \
        '.plugins |= map(if .ipam then .ipam.dataDir = $d | .bridge = $br else . end | if .type == "dnsname" then .runDir = $dns else . end)' \
        "$EXAMPLES/compose-$n.conflist" > "$D/net.d/$n.conflist"
done
tb_netns swcni-coh; H=$TB_LAST
declare -A NS
for c in web api db cache; do tb_netns "swcni-co$c"; NS[$c]=$TB_LAST; done
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
# attach CONTAINER NETWORK IFNAME [PORTS-JSON]: ADD with the container's name and its published ports.
attach() {
    local caps='{}'
    [ -n "${4:-}" ] && caps="{\"portMappings\":$4}"
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$1" CAP_ARGS="$caps" \
        ctl add "$2" "/run/netns/${NS[$1]}" --ifname "$3" --container-id "$1" > "$D/$1-$2.json" 2>"$D/err"
}
detach() {
    local caps='{}'
    [ -n "${4:-}" ] && caps="{\"portMappings\":$4}"
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=$1" CAP_ARGS="$caps" \
        ctl del "$2" "/run/netns/${NS[$1]}" --ifname "$3" --container-id "$1" 2>"$D/err"
}
# status CONTAINER NAME [NAMESERVER]: the rcode of an A query (NXDOMAIN comes back at once).
status() { ip netns exec "${NS[$1]}" dig +time=2 +tries=1 ${3:+@$3} "$2" | grep -o 'status: [A-Z]*' | cut -d' ' -f2; }
addr() { ip netns exec "${NS[$1]}" dig +time=2 +tries=1 +short ${3:+@$3} "$2"; }
# resolv.conf as a runtime writes it from the results (ip netns exec mounts it for the commands).
resolv() {
    mkdir -p "/etc/netns/${NS[$1]}"; TB_DIRS+=("/etc/netns/${NS[$1]}")
    jq -rs '[.[].dns.nameservers[]] | unique_by(.)[] | "nameserver \(.)"' "${@:2}" > "/etc/netns/${NS[$1]}/resolv.conf"
    echo "search $(jq -rs '[.[].dns.search[]] | unique | join(" ")' "${@:2}")" >> "/etc/netns/${NS[$1]}/resolv.conf"
}
serve() {  # a web server in the container on port 80 (both families) saying its name
    mkdir -p "$D/www/$1" && echo "hello from $1" > "$D/www/$1/index.html"
    tb_bg "${NS[$1]}" /usr/bin/python3 "$D/serve.py" "$D/www/$1" >/dev/null 2>&1
    tb_wait_tcp "${NS[$1]}" :: 80
}
cat > "$D/serve.py" <<'PY'
import functools, http.server, socket, sys
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
Server(("::", 80), functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])).serve_forever()
PY
get() { ip netns exec "$1" timeout 5 python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())' "$2" 2>/dev/null; }

echo "compose: the topology (cnictl, bridge + host-local + portmap + firewall + dnsname)"
API_PORTS='[{"hostPort":8081,"containerPort":80,"protocol":"tcp"}]'
attach db backend eth0; rc=$?; check_eq "db joins backend $(head -c 300 "$D/err")" 0 "$rc"
attach cache backend eth0; rc=$?; check_eq "cache joins backend $(head -c 300 "$D/err")" 0 "$rc"
# api: backend first (eth1), then frontend (eth0), as podman may order them; the same ports on both.
attach api backend eth1 "$API_PORTS"; rc=$?; check_eq "api joins backend as eth1, -p 8081:80 $(head -c 300 "$D/err")" 0 "$rc"
attach api frontend eth0 "$API_PORTS"; rc=$?; check_eq "api joins frontend as eth0 with the same port $(head -c 300 "$D/err")" 0 "$rc"
attach web frontend eth0 '[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]'; rc=$?; check_eq "web joins frontend, -p 8080:80 $(head -c 300 "$D/err")" 0 "$rc"
attach db frontend eth1 "$API_PORTS"; rc=$?
check_eq "db asking for api's host port 8081 on frontend fails" 1 "$rc"
check "... naming api (its backend attachment, added first) as the owner, code 107" \
    grep -q 'host port 8081/tcp is already mapped to container api (eth1) on network "backend".*code 107' "$D/err"
check_eq "... and leaves db without eth1" "" "$(ip -n "${NS[db]}" -br link show eth1 2>/dev/null)"

echo "compose: routes"
defaults() { ip -n "${NS[api]}" -j "$1" route show default | jq -r '[.[] | "\(.dev) \(.metric)"] | sort | join(", ")'; }
check_eq "api: an IPv4 default route per interface, eth0 preferred" "eth0 100, eth1 101" "$(defaults -4)"
check_eq "api: the same for IPv6" "eth0 100, eth1 101" "$(defaults -6)"
check_eq "api's traffic leaves by eth0" eth0 "$(ip -n "${NS[api]}" -j route get 192.0.2.1 | jq -r '.[0].dev')"
check_eq "the result says the metric (1.0.0 results have no field: none)" "null" "$(jq -c '.routes[0].priority' "$D/api-backend.json")"
for n in frontend backend; do
    ctl check "$n" "/run/netns/${NS[api]}" --ifname "$([ $n = frontend ] && echo eth0 || echo eth1)" --container-id api 2>"$D/err"
    rc=$?; check_eq "CHECK of api on $n $(head -c 300 "$D/err")" 0 "$rc"
done
check_eq "api's backend result: its nameserver, the domain once" "10.252.0.1 fd00:252::1 | dns.podman" \
    "$(jq -r '"\(.dns.nameservers | join(" ")) | \(.dns.search | join(" "))"' "$D/api-backend.json")"

echo "compose: names"
F=10.251.0.1; B=10.252.0.1
web=$(jq -r '.ips[0].address' "$D/web-frontend.json" | cut -d/ -f1)
apiF=$(jq -r '.ips[0].address' "$D/api-frontend.json" | cut -d/ -f1); apiB=$(jq -r '.ips[0].address' "$D/api-backend.json" | cut -d/ -f1)
db=$(jq -r '.ips[0].address' "$D/db-backend.json" | cut -d/ -f1); cache=$(jq -r '.ips[0].address' "$D/cache-backend.json" | cut -d/ -f1)
check_eq "web resolves api (frontend)" "$apiF" "$(addr web api $F)"
for ns in $F $B fd00:251::1 fd00:252::1; do
    check_eq "api resolves web, db and cache asking $ns" "$web $db $cache" "$(echo $(addr api web "$ns") $(addr api db "$ns") $(addr api cache "$ns"))"
done
check_eq "api resolves db's AAAA on the frontend nameserver" "$(jq -r '.ips[1].address' "$D/db-backend.json" | cut -d/ -f1)" \
    "$(ip netns exec "${NS[api]}" dig +short +time=2 +tries=1 @$F db AAAA)"
check_eq "db resolves api (backend)" "$apiB" "$(addr db api $B)"
check_eq "cache resolves db" "$db" "$(addr cache db $B)"
for pair in "web db $F" "web cache $F" "web db $B" "db web $B" "cache web $B" "web db.dns.podman $F"; do
    set -- $pair
    check_eq "$1 cannot resolve $2 (asking $3): NXDOMAIN" NXDOMAIN "$(status "$1" "$2" "$3")"
done

echo "compose: connections by name"
for c in web api db cache; do serve "$c"; done
resolv web "$D/web-frontend.json"; resolv api "$D/api-frontend.json" "$D/api-backend.json"
resolv db "$D/db-backend.json"; resolv cache "$D/cache-backend.json"
check_eq "web -> http://api/" "hello from api" "$(get "${NS[web]}" http://api/)"
check_eq "api -> http://db/ and http://cache/" "hello from db hello from cache" "$(echo $(get "${NS[api]}" http://db/) $(get "${NS[api]}" http://cache/))"
check_eq "api -> http://web/" "hello from web" "$(get "${NS[api]}" http://web/)"
check_eq "db -> http://api/" "hello from api" "$(get "${NS[db]}" http://api/)"
check_eq "web -> http://db/ fails: no such name" "" "$(get "${NS[web]}" http://db/)"

echo "compose: published ports"
check_eq "host 127.0.0.1:8080 -> web" "hello from web" "$(get "$H" http://127.0.0.1:8080/)"
check_eq "host 127.0.0.1:8081 -> api" "hello from api" "$(get "$H" http://127.0.0.1:8081/)"
check_eq "host [fd00:251::1]:8081 -> api (IPv6)" "hello from api" "$(get "$H" 'http://[fd00:251::1]:8081/')"
detach api frontend eth0 "$API_PORTS"; rc=$?; check_eq "api leaves frontend $(head -c 300 "$D/err")" 0 "$rc"
check_eq "8081 still reaches api, now through backend" "hello from api" "$(get "$H" http://127.0.0.1:8081/)"
check_eq "... over IPv6 too" "hello from api" "$(get "$H" 'http://[fd00:252::1]:8081/')"
check_eq "web no longer resolves api" NXDOMAIN "$(status web api $F)"
attach api frontend eth0 "$API_PORTS"; rc=$?; check_eq "api joins frontend again $(head -c 300 "$D/err")" 0 "$rc"
detach api backend eth1 "$API_PORTS"; rc=$?; check_eq "api leaves backend $(head -c 300 "$D/err")" 0 "$rc"
check_eq "8081 reaches api through frontend" "hello from api" "$(get "$H" http://127.0.0.1:8081/)"
check_eq "api's default route is eth0's alone" "eth0 100" "$(defaults -4)"
check_eq "db no longer resolves api" NXDOMAIN "$(status db api $B)"
attach api backend eth1 "$API_PORTS"; rc=$?; check_eq "api joins backend again $(head -c 300 "$D/err")" 0 "$rc"

echo "compose: api removed (both networks)"
detach api frontend eth0 "$API_PORTS" && detach api backend eth1 "$API_PORTS"
rc=$?; check_eq "DEL of api on both networks exits 0" 0 "$rc"
check_eq "web: api is gone" NXDOMAIN "$(status web api $F)"
check_eq "db: api is gone" NXDOMAIN "$(status db api $B)"
check_eq "8081 is free: no element left for it" "" "$(ip netns exec "$H" nft list table inet swift_cni_portmap | grep 8081)"
check_eq "web still serves on 8080" "hello from web" "$(get "$H" http://127.0.0.1:8080/)"
for c in web:frontend:eth0 db:backend:eth0 cache:backend:eth0; do
    IFS=: read -r name net ifn <<<"$c"
    detach "$name" "$net" "$ifn" "$([ "$name" = web ] && echo '[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]')"
done
check_eq "no address left" "" "$(ls "$D/ipam"/* 2>/dev/null | grep -Ev '^(lock|last_reserved_ip\..*)$|:$' | grep .)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
check_eq "no veth left" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no DNS records left" "" "$(ls "$D/dns" 2>/dev/null | grep '\.net$')"
check_eq "no cached result left" 0 "$(ls "$D/cache/results" 2>/dev/null | wc -l)"
tb_finish
