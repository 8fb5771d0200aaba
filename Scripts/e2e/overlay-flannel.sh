#!/usr/bin/env bash
# cni-overlayd as flannel's agent: two hosts (namespaces on an underlay bridge) with etcd, each
# agent writing flanneld's subnet file (--subnet-file), and kube-flannel's conflist (flannel ->
# portmap, delegate keys as kube-flannel.yml writes them) run by cnictl on each host with our
# binaries only. Pods ping across hosts, keep their own source address between nodes, reach a
# server outside the cluster's network with their node's address; the agent's exit with
# --release-on-exit removes the subnet file.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
. "$here/../lib/overlay.sh"
tb_cni_dirs flannel bridge host-local portmap
ov_underlay 76
ov_etcd || { bad "etcd did not start: $(tail -c 400 "$D/etcd.log")"; tb_finish; exit 1; }
for i in 1 2; do
    ov_host "$i"
    mkdir -p "$D/net.d$i"
    cat > "$D/net.d$i/10-flannel.conflist" <<CONF
{"name":"cbr0","cniVersion":"0.3.1","plugins":[
 {"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true},
  "subnetFile":"$D/subnet$i.env","dataDir":"$D/flannel$i","ipam":{"dataDir":"$D/ipam$i"}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
CONF
done
ctl() {  # ctl HOST-INDEX args...
    local i=$1; shift
    ip netns exec "${OV_H[$i]}" env NETCONFPATH="$D/net.d$i" CNI_PATH="$D/bin" "$BIN/cnictl" "$@" --cache-dir "$D/cache$i"
}
served_peer() {  # served_peer NS PORT FILE: a one-shot TCP server in NS printing its peer's address to FILE
    ip netns exec "$1" timeout 5 python3 -c "
import socket; s = socket.socket(); s.bind(('0.0.0.0', $2)); s.listen(); c, a = s.accept(); print(a[0])" >"$3" 2>/dev/null &
    SERVER=$!
    until_ok bash -c "ip netns exec $1 ss -Hltn 'sport = :$2' | grep -q ."
}

echo "overlay-flannel: the agents write flanneld's subnet file"
for i in 1 2; do
    ov_agent "$i" --network 10.247.0.0/16 --vni 7 --underlay eth0 --resync 60 --lease-ttl 5 --release-on-exit \
        --subnet-file "$D/subnet$i.env"
done
for i in 1 2; do check "host$i: the agent wrote $D/subnet$i.env" until_ok test -s "$D/subnet$i.env" || cat "$D/agent$i.log"; done
check "it is in flanneld's format (network, the subnet's first address, MTU, ipmasq)" \
    grep -Eqz '^FLANNEL_NETWORK=10\.247\.0\.0/16
FLANNEL_SUBNET=10\.247\.[0-9]+\.1/24
FLANNEL_MTU=1450
FLANNEL_IPMASQ=false
$' "$D/subnet1.env"

echo "overlay-flannel: kube-flannel's conflist on both hosts"
for i in 1 2; do
    ctl "$i" add cbr0 "/run/netns/${OV_C[$i]}" >"$D/res$i.json" 2>"$D/err"; rc=$?
    check_eq "host$i: add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
done
A=(); for i in 1 2; do A[$i]=$(ov_addr "${OV_C[$i]}"); done
check "each pod's address is in its node's subnet" bash -c "
    [ \"\$(sed -n 's|^FLANNEL_SUBNET=\(.*\)\.1/24|\1|p' '$D/subnet1.env')\" = \"\${0%.*}\" ] &&
    [ \"\$(sed -n 's|^FLANNEL_SUBNET=\(.*\)\.1/24|\1|p' '$D/subnet2.env')\" = \"\${1%.*}\" ]" "${A[1]}" "${A[2]}"
check "the pod on host1 pings the pod on host2 (${A[2]})" until_ok bash -c "ip netns exec ${OV_C[1]} ping -c1 -W1 ${A[2]} >/dev/null"
check "... and back" until_ok bash -c "ip netns exec ${OV_C[2]} ping -c1 -W1 ${A[1]} >/dev/null"
served_peer "${OV_C[2]}" 7002 "$D/peer.txt"
ip netns exec "${OV_C[1]}" python3 -c "import socket; socket.create_connection(('${A[2]}', 7002), timeout=2).close()"
wait "$SERVER" 2>/dev/null
check "between nodes the pod keeps its own source address (${A[1]})" grep -qx "${A[1]}" "$D/peer.txt"
served_peer "$OV_E" 7003 "$D/outside.txt"
ip netns exec "${OV_C[1]}" python3 -c "import socket; socket.create_connection(('192.168.76.254', 7003), timeout=2).close()"
wait "$SERVER" 2>/dev/null
check "outside the cluster's network it has its node's address (192.168.76.1)" grep -qx "192.168.76.1" "$D/outside.txt"
for i in 1 2; do
    ctl "$i" del cbr0 "/run/netns/${OV_C[$i]}" 2>"$D/err"; rc=$?
    check_eq "host$i: del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
done
check_eq "nothing kept, nothing reserved" "" "$(find "$D/flannel1" "$D/flannel2" "$D/ipam1" "$D/ipam2" -type f -not -path '*/.swift-cni/*' | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"

echo "overlay-flannel: the agent leaves"
kill -TERM "${OV_AGENT[1]}"; wait "${OV_AGENT[1]}" 2>/dev/null
check "with --release-on-exit its subnet file goes" test ! -e "$D/subnet1.env"
tb_finish
