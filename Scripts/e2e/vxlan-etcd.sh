#!/usr/bin/env bash
# The vxlan overlay with the etcd store: three hosts (namespaces on an underlay bridge), one etcd
# (Debian's etcd-server, TLS with client certificates, on the underlay only), cni-overlayd on each
# host holding its lease and writing the node file the vxlan plugin reads. Every container pair
# pings across hosts; a host joins and is reached with nothing restarted; a host that leaves
# (lease revoked) and one whose agent dies (lease expired) vanish from the others' tables; an
# underlay address change, a deleted VTEP and an etcd restart heal; the MTU is 1450.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
. "$here/../lib/overlay.sh"
tb_cni_dirs vxlan bridge host-local
TTL=3
ov_underlay 73
ov_etcd || { bad "etcd did not start: $(tail -c 400 "$D/etcd.log")"; tb_finish; exit 1; }
conf() {  # conf I: host I's conflist (store etcd: the plugin reads the agent's node file)
    mkdir -p "$D/net.d$1"
    cat > "$D/net.d$1/10-overlay.conflist" <<CONF
{"cniVersion":"1.1.0","name":"overlay","plugins":[
 {"type":"vxlan","network":"10.246.0.0/16","subnetLen":24,"vni":9,"underlay":"eth0","ipMasq":true,
  "store":{"type":"etcd","nodeFile":"$D/node$1.json"},"dataDir":"$D/ipam$1"}]}
CONF
}
ctl() {  # ctl HOST-INDEX args...
    local i=$1; shift
    ip netns exec "${OV_H[$i]}" env NETCONFPATH="$D/net.d$i" CNI_PATH="$D/bin" "$BIN/cnictl" "$@" --cache-dir "$D/cache$i"
}
agent() { ov_agent "$1" --network 10.246.0.0/16 --vni 9 --underlay eth0 --resync 60 --lease-ttl "$TTL" --release-on-exit; }
pings() { ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1; }
subnet_of() { jq -r .subnet "$D/node$1.json"; }
keys() { ov_etcdctl get --prefix /swift-cni/overlay/subnets/ --keys-only | grep -c . ; }
keys_are() { [ "$(keys)" = "$1" ]; }

echo "vxlan-etcd: before the agent, ADD is 'try again later'"
for i in 1 2 3; do ov_host "$i"; conf "$i"; done

echo "vxlan-etcd: TLS is verified both ways"
tls_agent() {  # tls_agent CA CERT KEY [ENDPOINT]: one agent pass of host 1 with these files; its stderr on stdout
    ip netns exec "${OV_H[1]}" "$BIN/cni-overlayd" --store etcd --etcd-endpoints "${4:-$OV_ETCD}" --etcd-cacert "$1" \
        ${2:+--etcd-cert "$2"} ${3:+--etcd-key "$3"} --node tls-probe --node-file "$D/tls.json" \
        --network 10.246.0.0/16 --vni 9 --underlay eth0 --once 2>&1 >/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=another-ca \
    -keyout "$D/pki/other.key" -out "$D/pki/other.pem" 2>/dev/null
out=$(tls_agent "$D/pki/other.pem" "$D/pki/client.pem" "$D/pki/client.key"); rc=$?
check "a CA that did not sign etcd's certificate: the agent fails, naming the certificate" \
    bash -c "[ $rc -ne 0 ] && grep -qi 'certificate' <<<\"\$0\"" "$out"
echo "$out" | head -2 | cut -c1-220 | sed "s/^/    /"
out=$(tls_agent "$D/pki/ca.pem" "" ""); rc=$?
echo "$out" | head -2 | cut -c1-220 | sed "s/^/    /"
check "no client certificate: etcd refuses the agent, which fails" bash -c "[ $rc -ne 0 ] && grep -q . <<<\"\$0\"" "$out"
# A server whose certificate (signed by the right CA) is for another address: refused too.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=elsewhere -keyout "$D/pki/elsewhere.key" \
    -out "$D/pki/elsewhere.csr" 2>/dev/null
printf 'subjectAltName=IP:192.0.2.1\nextendedKeyUsage=serverAuth\n' > "$D/pki/elsewhere.ext"
openssl x509 -req -in "$D/pki/elsewhere.csr" -CA "$D/pki/ca.pem" -CAkey "$D/pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$D/pki/elsewhere.ext" -out "$D/pki/elsewhere.pem" 2>/dev/null
tb_bg "$OV_E" openssl s_server -quiet -accept "192.168.$OV_NET.254:2390" -cert "$D/pki/elsewhere.pem" -key "$D/pki/elsewhere.key" -www \
    >/dev/null 2>&1
tb_wait_tcp "$OV_E" "192.168.$OV_NET.254" 2390
out=$(tls_agent "$D/pki/ca.pem" "$D/pki/client.pem" "$D/pki/client.key" https://192.168.$OV_NET.254:2390); rc=$?
echo "$out" | head -1 | cut -c1-220 | sed "s/^/    /"
check "a certificate for another address than the endpoint's: the agent fails, naming the mismatch" \
    bash -c "[ $rc -ne 0 ] && grep -q 'failedToValidateHostname' <<<\"\$0\"" "$out"
check_eq "... and none left a lease" 0 "$(keys)"
check "... nor a node file" test ! -e "$D/tls.json"
ctl 1 add overlay "/run/netns/${OV_C[1]}" >/dev/null 2>"$D/err"; rc=$?
check_eq "add without the node file exits 1" 1 "$rc"
check "the error is code 11 and names the node file" grep -q "node1.json.*code 11" "$D/err"

echo "vxlan-etcd: three hosts, three agents, one container each"
for i in 1 2 3; do agent "$i"; done
for i in 1 2 3; do check "host$i: the agent wrote its node file" until_ok test -s "$D/node$i.json" || cat "$D/agent$i.log"; done
check_eq "three keys in etcd, three subnets" "3 3" "$(keys) $(for i in 1 2 3; do subnet_of "$i"; done | sort -u | wc -l)"
for i in 1 2 3; do
    ctl "$i" add overlay "/run/netns/${OV_C[$i]}" >"$D/res$i.json" 2>"$D/err"; rc=$?
    check_eq "host$i: add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
done
check_eq "the result: the container's interface with MTU 1450, a route to the whole overlay" "1450 10.246.0.0/16" \
    "$(jq -r '"\(.interfaces[] | select(.sandbox) | .mtu) \(.routes[0].dst)"' "$D/res1.json")"
A=(); for i in 1 2 3; do A[$i]=$(ov_addr "${OV_C[$i]}"); done
check_eq "the VTEP: learning off, VNI 9, MTU 1450" "false 9 1450" \
    "$(ip -n "${OV_H[1]}" -d -j link show vxlan.9 | jq -r '.[0] | "\(.linkinfo.info_data.learning) \(.linkinfo.info_data.id) \(.mtu)"')"
for s in 1 2 3; do for t in 1 2 3; do
    [ "$s" = "$t" ] && continue
    check "container on host$s pings host$t's (${A[$t]})" until_ok pings "${OV_C[$s]}" "${A[$t]}"
done; done
check "a 1422-byte don't-fragment ping passes" bash -c "ip netns exec ${OV_C[1]} ping -c1 -W1 -M do -s 1422 ${A[2]} >/dev/null"
check "a 1423-byte one does not" bash -c "! ip netns exec ${OV_C[1]} ping -c1 -W1 -M do -s 1423 ${A[2]} >/dev/null 2>&1"
ctl 1 check overlay "/run/netns/${OV_C[1]}" 2>"$D/err"; rc=$?
check_eq "check exits 0 $(head -c 200 "$D/err")" 0 "$rc"
# ipMasq: leaving the overlay is masqueraded, host to host inside it is not.
check "ipMasq: the subnet's chain returns for the overlay network" \
    bash -c "ip netns exec ${OV_H[1]} nft list table inet swift_cni | grep -q 'ip daddr 10.246.0.0/16 return'"
ip netns exec "${OV_C[2]}" timeout 5 python3 -c "
import socket; s = socket.socket(); s.bind(('0.0.0.0', 7001)); s.listen(); c, a = s.accept(); print(a[0])" >"$D/peer.txt" 2>/dev/null &
ncpid=$!
until_ok bash -c "ip netns exec ${OV_C[2]} ss -Hltn 'sport = :7001' | grep -q ."
ip netns exec "${OV_C[1]}" python3 -c "import socket; socket.create_connection(('${A[2]}', 7001), timeout=2).close()"
wait "$ncpid" 2>/dev/null
check "ipMasq: host2's container sees host1's container's own address (${A[1]}), not masqueraded" grep -q "${A[1]}" "$D/peer.txt"

echo "vxlan-etcd: a host joins, nothing restarted"
ov_host 4; conf 4; agent 4
check "host4: node file" until_ok test -s "$D/node4.json"
ctl 4 add overlay "/run/netns/${OV_C[4]}" >/dev/null 2>"$D/err"; rc=$?
check_eq "host4: add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
A[4]=$(ov_addr "${OV_C[4]}")
check "host1's container reaches host4's" until_ok pings "${OV_C[1]}" "${A[4]}"
check "host4's container reaches host3's" until_ok pings "${OV_C[4]}" "${A[3]}"

echo "vxlan-etcd: a host leaves (its agent revokes the lease)"
s4=$(subnet_of 4); mac4=$(ip -n "${OV_H[4]}" -j link show vxlan.9 | jq -r '.[0].address')
ctl 4 del overlay "/run/netns/${OV_C[4]}" 2>/dev/null
kill "${OV_AGENT[4]}"; wait "${OV_AGENT[4]}" 2>/dev/null
check_eq "host4's key is gone from etcd" 3 "$(keys)"
gone4() { ! ip -n "${OV_H[$1]}" route show "$s4" | grep -q . && ! bridge -n "${OV_H[$1]}" fdb show dev vxlan.9 2>/dev/null | grep -q "$mac4" \
    && ! ip -n "${OV_H[$1]}" neigh show dev vxlan.9 2>/dev/null | grep -q "$mac4"; }
for i in 1 2 3; do check "host$i: no route, FDB entry or neighbour of host4 ($s4, $mac4)" until_ok gone4 "$i"; done
check "host4's node file removed" test ! -e "$D/node4.json"

echo "vxlan-etcd: a host's underlay address changes"
s2=$(subnet_of 2)
ip -n "${OV_H[2]}" addr del 192.168.73.2/24 dev eth0 && ip -n "${OV_H[2]}" addr add 192.168.73.12/24 dev eth0
fdb_to() { bridge -n "${OV_H[1]}" fdb show dev vxlan.9 2>/dev/null | grep -q "dst $1"; }
check "host1's FDB entry for host2 now points at 192.168.73.12" until_ok fdb_to 192.168.73.12
check "host2 kept its subnet ($s2)" test "$(subnet_of 2)" = "$s2"
check "host1's container reaches host2's again" until_ok pings "${OV_C[1]}" "${A[2]}"
check "host2's container reaches host3's" until_ok pings "${OV_C[2]}" "${A[3]}"

echo "vxlan-etcd: a VTEP deleted, a VTEP flapped"
ip -n "${OV_H[3]}" link del vxlan.9
check "host3's VTEP is made again and carries traffic" until_ok pings "${OV_C[1]}" "${A[3]}"
ip -n "${OV_H[1]}" link set vxlan.9 down; ip -n "${OV_H[1]}" link set vxlan.9 up
check "host1's flapped VTEP gets its neighbours back" until_ok pings "${OV_C[1]}" "${A[2]}"

echo "vxlan-etcd: an agent killed (no revoke): its lease expires; restarted, it gets its subnet back"
s3=$(subnet_of 3)
kill -9 "${OV_AGENT[3]}"; wait "${OV_AGENT[3]}" 2>/dev/null
check "host3's key expires (TTL ${TTL} s)" until_ok keys_are 2
check "host1 forgets host3" until_ok bash -c "! ip -n ${OV_H[1]} route show $s3 | grep -q ."
agent 3
back3() { [ "$(ov_etcdctl get --prefix /swift-cni/overlay/subnets/ --print-value-only | jq -r 'select(.node == "host3") | .subnet')" = "$s3" ] \
    && ip -n "${OV_H[1]}" route show "$s3" | grep -q .; }
check "host3 back with the same subnet ($s3), host1 routes to it again" until_ok back3
check "host1's container reaches host3's again" until_ok pings "${OV_C[1]}" "${A[3]}"

echo "vxlan-etcd: etcd restarted: the agents list again and watch on; one started while it was down claims"
kill "$OV_ETCD_PID"; wait "$OV_ETCD_PID" 2>/dev/null
ov_host 5; conf 5; agent 5
check "host5's agent, etcd down: no node file" test ! -e "$D/node5.json"
ov_start_etcd
etcd_healthy() { ov_etcdctl endpoint health >/dev/null 2>&1; }
check "etcd is back" etcd_healthy
check "host5 claims once etcd is back (no restart of anything)" until_ok test -s "$D/node5.json"
ctl 5 add overlay "/run/netns/${OV_C[5]}" >/dev/null 2>&1
A[5]=$(ov_addr "${OV_C[5]}")
check "host1's container reaches host5's (host1's agent watches again)" until_ok pings "${OV_C[1]}" "${A[5]}"
ov_etcdctl compact "$(ov_etcdctl endpoint status -w json | jq '.[0].Status.header.revision')" >/dev/null
kill -9 "$OV_ETCD_PID"; wait "$OV_ETCD_PID" 2>/dev/null; ov_start_etcd
ctl 5 del overlay "/run/netns/${OV_C[5]}" 2>/dev/null
kill "${OV_AGENT[5]}"; wait "${OV_AGENT[5]}" 2>/dev/null
s5=$(ov_etcdctl get --prefix /swift-cni/overlay/subnets/ --keys-only | grep -c .)
check_eq "host5 left after a compaction and a crash of etcd: 3 keys" 3 "$s5"
two_peers() { [ "$(ip -n "${OV_H[1]}" -j route show dev vxlan.9 2>/dev/null | jq length)" = 2 ]; }
check "host1 forgets host5 too (routes to host2 and host3 only)" until_ok two_peers

echo "vxlan-etcd: GC and DEL"
tb_netns swcni-ovgc; G=$TB_LAST
ctl 1 add overlay "/run/netns/$G" --container-id gone >/dev/null 2>&1
check_eq "host1: two containers' addresses before GC" 2 "$(ls "$D/ipam1/overlay" | grep -c '^10\.')"
masq1() { ip netns exec "${OV_H[1]}" nft -j list map inet swift_cni masq4 | jq '[.nftables[] | .map? | select(.) | (.elem // []) | length] | add'; }
check_eq "host1: two masquerade elements before GC" 2 "$(masq1)"
ip netns del "$G"   # the container vanishes without a DEL
ctl 1 gc overlay; check_eq "gc exits 0" 0 "$?"
check_eq "gc freed the vanished container's address, kept the live one's" 1 "$(ls "$D/ipam1/overlay" | grep -c '^10\.')"
check_eq "gc removed its masquerade element" 1 "$(masq1)"
check "the live container still reaches host2's" pings "${OV_C[1]}" "${A[2]}"
for i in 1 2 3; do ctl "$i" del overlay "/run/netns/${OV_C[$i]}" 2>/dev/null; done
ctl 1 del overlay "/run/netns/${OV_C[1]}" 2>/dev/null; check_eq "a repeated DEL exits 0" 0 "$?"
check_eq "every address released" "" "$(find "$D"/ipam* -type f | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
check_eq "no veth left on the hosts" 0 "$(for i in 1 2 3; do ip -n "${OV_H[$i]}" -j link show type veth | jq '[.[] | select(.ifname != "eth0")] | length'; done | paste -sd+ | bc)"
for i in 1 2 3; do kill "${OV_AGENT[$i]}" 2>/dev/null; wait "${OV_AGENT[$i]}" 2>/dev/null; done
check_eq "every agent released its lease on exit" 0 "$(keys)"
tb_finish
