#!/usr/bin/env bash
# go-cni, the library containerd's CRI plugin (so every containerd kubelet node) calls CNI with,
# runs our plugins unchanged: Scripts/lib/gocni-client (built offline against Debian's
# golang-github-containerd-go-cni-dev) loads the loopback network and the first conflist of a
# directory as the CRI does, with pod labels as CNI_ARGS and a port mapping capability. Two pods:
# lo up, eth0 addressed, the host port reaches the pod, one pod resolves the other by name;
# Remove leaves nothing. libcni's cache is private (Scripts/lib/with-cni-cache).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
ROOT=$(cd "$here/../.." && pwd)

# The client: go-cni from Debian, GOPATH mode (offline), cached in .build-gocni/.
client="$ROOT/.build-gocni/gocni-client"
if [ ! -x "$client" ] || [ "$here/../lib/gocni-client/main.go" -nt "$client" ]; then
    w="$ROOT/.build-gocni/gopath"
    rm -rf "$w" && mkdir -p "$w/src/swiftcni/gocni-client"
    cp "$here/../lib/gocni-client/main.go" "$w/src/swiftcni/gocni-client/"
    if ! (cd "$w/src/swiftcni/gocni-client" && GO111MODULE=off GOPROXY=off GOPATH="$w:/usr/share/gocode" GOCACHE="$w/cache" go build -o "$client" .); then
        echo "go-cni: 0 passed, 1 failed (the client does not build)"
        exit 1
    fi
    rm -rf "$w"
fi

tb_cni_dirs all
cat > "$D/net.d/10-pods.conflist" <<CONF
{"cniVersion":"1.0.0","name":"pods","plugins":[
 {"type":"bridge","bridge":"swgc$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.82.0.0/24"}]],"dataDir":"$D/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"dnsname","domainName":"cluster.test","runDir":"$D/dns"}]}
CONF
tb_netns swcni-gch; H=$TB_LAST
tb_netns swcni-gca; A=$TB_LAST
tb_netns swcni-gcb; B=$TB_LAST
ip -n "$A" link set lo down; ip -n "$B" link set lo down   # as a fresh pod sandbox: the loopback plugin brings it up
gc() { ip netns exec "$H" "$here/../lib/with-cni-cache" "$D/cache" "$client" "$1" "$D/net.d" "$D/bin" "${@:2}"; }

echo "go-cni $(dpkg-query -W -f='${Version}' golang-github-containerd-go-cni-dev), as containerd's CRI calls it"
out=$(gc setup "pod-a-$TB_ID" "/run/netns/$A" web 8080:80 2>"$D/err"); rc=$?
check_eq "Setup of pod A exits 0 $(head -c 300 "$D/err")" 0 "$rc"
a4=$(awk '$1 == "eth0" {print $2}' <<<"$out")
check "the result has lo and eth0 ($(tr '\n' ';' <<<"$out"))" bash -c "grep -q '^lo 127.0.0.1' <<<'$out' && grep -qE '^eth0 10\.82\.0\.[0-9]+' <<<'$out'"
check "lo is up in pod A" bash -c "ip -n $A -j link show lo | jq -e '.[0].flags | index(\"UP\")' >/dev/null"
check "eth0 of pod A has its address" bash -c "ip -n $A -o addr show dev eth0 | grep -q 'inet $a4/'"
gc setup "pod-b-$TB_ID" "/run/netns/$B" client >/dev/null 2>"$D/err"; rc=$?
check_eq "Setup of pod B exits 0 $(head -c 300 "$D/err")" 0 "$rc"
tb_bg "$A" /usr/bin/python3 "$here/../lib/netcheck.py" serve tcp 80 web
tb_wait_tcp "$A" 0.0.0.0 80
check_eq "the host port 8080 reaches pod A" "web 10.82.0.1" "$(ip netns exec "$H" /usr/bin/python3 "$here/../lib/netcheck.py" ask tcp 127.0.0.1 8080 2>/dev/null)"
check_eq "pod B resolves pod A by its pod name" "$a4" "$(ip netns exec "$B" dig +short +time=2 +tries=1 @10.82.0.1 web.cluster.test)"
# (No Check: go-cni's loopback network is cniVersion 0.3.1, which has no CHECK; the CRI never calls it.)

echo "go-cni Remove"
gc remove "pod-a-$TB_ID" "/run/netns/$A" web 8080:80 2>"$D/err"; rc=$?
check_eq "Remove of pod A exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check "lo is down again in pod A" bash -c "! ip -n $A -j link show lo | jq -e '.[0].flags | index(\"UP\")' >/dev/null"
# The CRI removes a sandbox whose netns is already gone: Remove must still clean up.
ip netns del "$B"
gc remove "pod-b-$TB_ID" "" client 2>"$D/err"; rc=$?
check_eq "Remove of pod B after its netns is gone exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "no address left" "last_reserved_ip.0 lock" "$(ls "$D/ipam/pods" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "no veth left on the host" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
check_eq "no DNS records left" "" "$(ls "$D/dns" 2>/dev/null | grep '\.net$')"
check_eq "no cached result left" "" "$(find "$D/cache" -type f)"
tb_finish
