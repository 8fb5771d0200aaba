#!/usr/bin/env bash
# podman 4.3 (Debian) with network_backend "cni" runs our plugins unchanged: a podman-style
# conflist (bridge, portmap, firewall, tuning, dnsname; all ours) in a private CNI directory;
# `podman run -d -p 8080:80` serves through 127.0.0.1:8080, a second container reaches the first
# by name, and `podman rm -f` leaves no address, link, nft element, DNS record or netns.
# The test bed (a private mount namespace, a throwaway host netns, runc): Scripts/lib/podman.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/podman.sh"
podman_bed "$@"
cat > "$D/net.d/swpod.conflist" <<CONF
{"cniVersion":"0.4.0","name":"swpod","plugins":[
 {"type":"bridge","bridge":"swpd$TB_ID","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"10.83.0.0/24","gateway":"10.83.0.1"}]],"dataDir":"$D/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"firewall","backend":""},
 {"type":"tuning"},
 {"type":"dnsname","domainName":"dns.podman","runDir":"$D/dns","capabilities":{"aliases":true}}]}
CONF
netns_before=$(ls /run/netns | sort)

echo "podman $(pm --version | awk '{print $3}'), network backend cni, our plugins only"
pm run -d --name web --network swpod -p 8080:80 localhost/swcni-bb:latest httpd -f -p 80 -h /www >/dev/null 2>"$D/err"
rc=$?
check_eq "podman run -d --network swpod -p 8080:80 exits 0 $(grep -v 'level=warning\|PIDs limit' "$D/err" | head -c 300)" 0 "$rc"
web=$(pm inspect web --format '{{.NetworkSettings.Networks.swpod.IPAddress}}')
check "web has an address on the network ($web)" grep -qE '^10\.83\.0\.[0-9]+$' <<<"$web"
for i in $(seq 1 50); do ip netns exec "$H" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8080), 1)' 2>/dev/null && break; sleep 0.1; done
check_eq "the host's 127.0.0.1:8080 serves web" "hello from web" \
    "$(ip netns exec "$H" python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/", timeout=3).read().decode().strip())' 2>&1)"
check_eq "a second container resolves web by name" "$web" \
    "$(pm run --rm --network swpod localhost/swcni-bb:latest nslookup web 2>/dev/null | awk '/^Address/ {a=$2} END {print a}')"
check_eq "... and fetches from it by name" "hello from web" \
    "$(pm run --rm --network swpod localhost/swcni-bb:latest wget -q -O - http://web/ 2>/dev/null)"
check "the firewall accepts web's address" bash -c "ip netns exec $H nft list map inet swift_cni_firewall from4 | grep -q '$web'"

echo "podman rm -f"
pm rm -f web >/dev/null 2>&1
check_eq "podman rm -f web exits 0" 0 "$?"
check_eq "no address left" "last_reserved_ip.0 lock" "$(ls "$D/ipam/swpod" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "no veth left in the host netns" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
check_eq "no DNS records left" "" "$(ls "$D/dns" 2>/dev/null | grep '\.net$')"
check_eq "no container netns left" "$netns_before" "$(ls /run/netns | sort)"
tb_finish
