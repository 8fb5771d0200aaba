#!/usr/bin/env bash
# The founding document's compose topology again, with podman 4.3 (network backend cni) on our
# plugins and netconf-examples/compose-{frontend,backend}.conflist: web on frontend (-p 8080:80),
# api on frontend and backend (-p 8081:80, which podman passes to both networks), db and cache on
# backend. Names that should resolve do, the others are NXDOMAIN at once; connections by name;
# `podman network connect`/`disconnect` of a second network keeps a published port; `podman rm -f
# api` removes api's names from both networks; nothing is left once the networks are removed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/podman.sh"
podman_bed "$@"
for n in frontend backend; do
    jq --arg d "$D/ipam" --arg dns "$D/dns" --arg br "swp${n:0:1}$TB_ID" \
        '.plugins |= map(if .ipam then .ipam.dataDir = $d | .bridge = $br else . end | if .type == "dnsname" then .runDir = $dns else . end)' \
        "$here/../../netconf-examples/compose-$n.conflist" > "$D/net.d/$n.conflist"
done
netns_before=$(ls /run/netns | sort)
IMG=localhost/swcni-bb:latest
# run NAME [podman run options]: a detached container serving "hello from NAME" on port 80.
run() {
    local name="$1"; shift
    pm run -d --name "$name" "$@" "$IMG" sh -c "mkdir -p /tmp/w && echo hello from $name > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w" \
        >/dev/null 2>"$D/err"
}
err() { grep -v 'level=warning\|PIDs limit' "$D/err" | head -c 300; }
# lookup CONTAINER NAME: the IPv4 address busybox's resolver gets, or the failure it prints.
lookup() {
    local out
    out=$(timeout 5 nsenter --net="/run/netns/$H" podman exec "$1" nslookup -type=a "$2" 2>&1)
    case "$out" in
        *NXDOMAIN*) echo NXDOMAIN ;;
        *) awk '/^Address/ && $2 !~ /:53$/ && $2 ~ /^[0-9.]+$/ {a=$2} END {print a}' <<<"$out" ;;
    esac
}
fetch() { timeout 5 nsenter --net="/run/netns/$H" podman exec "$1" wget -q -O - "http://$2/" 2>/dev/null; }
host_get() { ip netns exec "$H" timeout 5 python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())' "$1" 2>/dev/null; }
ip_of() { pm inspect "$1" --format "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}"; }

echo "compose-podman: podman $(pm --version | awk '{print $3}'), networks frontend and backend (ours)"
run db --network backend; rc=$?; check_eq "podman run db --network backend $(err)" 0 "$rc"
run cache --network backend; rc=$?; check_eq "podman run cache --network backend $(err)" 0 "$rc"
run api --network frontend --network backend -p 8081:80; rc=$?; check_eq "podman run api --network frontend --network backend -p 8081:80 $(err)" 0 "$rc"
run web --network frontend -p 8080:80; rc=$?; check_eq "podman run web --network frontend -p 8080:80 $(err)" 0 "$rc"
sandbox=$(pm inspect api --format '{{.NetworkSettings.SandboxKey}}')
check_eq "api: an IPv4 default route per network, with metrics of their own" "100 101" \
    "$(nsenter --net="$sandbox" ip -j -4 route show default | jq -r '[.[].metric] | sort | map(tostring) | join(" ")')"

echo "compose-podman: names"
check_eq "web resolves api" "$(ip_of api frontend)" "$(lookup web api)"
check_eq "api resolves web" "$(ip_of web frontend)" "$(lookup api web)"
check_eq "api resolves db" "$(ip_of db backend)" "$(lookup api db)"
check_eq "api resolves cache" "$(ip_of cache backend)" "$(lookup api cache)"
check_eq "db resolves api" "$(ip_of api backend)" "$(lookup db api)"
check_eq "web cannot resolve db: NXDOMAIN" NXDOMAIN "$(lookup web db)"
check_eq "web cannot resolve cache: NXDOMAIN" NXDOMAIN "$(lookup web cache)"
check_eq "db cannot resolve web: NXDOMAIN" NXDOMAIN "$(lookup db web)"

echo "compose-podman: connections by name and published ports"
check_eq "web -> http://api/" "hello from api" "$(fetch web api)"
check_eq "api -> http://db/" "hello from db" "$(fetch api db)"
check_eq "api -> http://cache/" "hello from cache" "$(fetch api cache)"
check_eq "api -> http://web/" "hello from web" "$(fetch api web)"
check_eq "web -> http://db/ fails" "" "$(fetch web db)"
for i in $(seq 1 50); do host_get http://127.0.0.1:8080/ >/dev/null && break; sleep 0.1; done
check_eq "host 127.0.0.1:8080 -> web" "hello from web" "$(host_get http://127.0.0.1:8080/)"
check_eq "host 127.0.0.1:8081 -> api" "hello from api" "$(host_get http://127.0.0.1:8081/)"

echo "compose-podman: network connect and disconnect with a published port"
pm network connect backend web 2>"$D/err"; rc=$?; check_eq "podman network connect backend web (it publishes 8080) $(err)" 0 "$rc"
check_eq "8080 still serves web" "hello from web" "$(host_get http://127.0.0.1:8080/)"
check_eq "web now resolves db" "$(ip_of db backend)" "$(lookup web db)"
pm network disconnect backend web 2>"$D/err"; rc=$?; check_eq "podman network disconnect backend web $(err)" 0 "$rc"
check_eq "8080 still serves web" "hello from web" "$(host_get http://127.0.0.1:8080/)"
check_eq "web no longer resolves db" NXDOMAIN "$(lookup web db)"
pm network disconnect frontend api 2>"$D/err"; rc=$?; check_eq "podman network disconnect frontend api $(err)" 0 "$rc"
check_eq "8081 still serves api, through backend" "hello from api" "$(host_get http://127.0.0.1:8081/)"
check_eq "web no longer resolves api" NXDOMAIN "$(lookup web api)"
pm network connect frontend api 2>"$D/err"; rc=$?; check_eq "podman network connect frontend api $(err)" 0 "$rc"
check_eq "web resolves api again" "$(ip_of api frontend)" "$(lookup web api)"
check_eq "8081 serves api" "hello from api" "$(host_get http://127.0.0.1:8081/)"

echo "compose-podman: podman rm -f api"
pm rm -f api >/dev/null 2>&1; rc=$?; check_eq "podman rm -f api exits 0" 0 "$rc"
check_eq "web: api is gone (NXDOMAIN)" NXDOMAIN "$(lookup web api)"
check_eq "db: api is gone (NXDOMAIN)" NXDOMAIN "$(lookup db api)"
check_eq "no element of port 8081 left" "" "$(ip netns exec "$H" nft list table inet swift_cni_portmap | grep 8081)"
pm rm -f web db cache >/dev/null 2>&1; rc=$?; check_eq "podman rm -f web db cache exits 0" 0 "$rc"
pm network rm frontend backend >/dev/null 2>"$D/err"; rc=$?; check_eq "podman network rm frontend backend $(err)" 0 "$rc"
check_eq "no address left" "" "$(ls "$D/ipam"/* 2>/dev/null | grep -Ev '^(lock|last_reserved_ip\..*)$|:$' | grep .)"
check_eq "no veth left in the host netns" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
check_eq "no DNS records left" "" "$(ls "$D/dns" 2>/dev/null | grep '\.net$')"
check_eq "no container netns left" "$netns_before" "$(ls /run/netns | sort)"
tb_finish
