#!/usr/bin/env bash
# The vxlan plugin with the file store across "hosts": three namespaces on an underlay bridge (a
# namespace of its own), a container in each, one lease file they share; containers reach each
# other across hosts through the VTEPs; DEL leaves each host's addresses free. First without the
# agent (peers programmed at ADD: a second container on the first host re-programs it), then with
# cni-overlayd watching the file; last, two hosts on an IPv6 underlay. The etcd store:
# vxlan-etcd.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
. "$here/../lib/overlay.sh"
tb_cni_dirs vxlan bridge host-local
host() {  # host I: a host namespace on the underlay bridge at 192.168.71.I, with its conflist
    local i=$1
    tb_netns "swcni-vxh$i"; H[$((i - 1))]=$TB_LAST
    tb_netns "swcni-vxc$i"; C[$((i - 1))]=$TB_LAST
    ip -n "$U" link add "h$i" type veth peer name eth0 netns "${H[$((i - 1))]}"
    ip -n "$U" link set "h$i" master ubr0 up
    ip -n "${H[$((i - 1))]}" addr add "192.168.71.$i/24" dev eth0
    ip -n "${H[$((i - 1))]}" link set eth0 up
    mkdir -p "$D/net.d$i"
    cat > "$D/net.d$i/10-overlay.conflist" <<CONF
{"cniVersion":"1.1.0","name":"overlay","plugins":[
 {"type":"vxlan","network":"10.247.0.0/16","subnetLen":24,"vni":7,"underlay":"eth0","nodeName":"host$i",
  "store":{"type":"file","path":"$D/leases.json"},"dataDir":"$D/ipam$i"}]}
CONF
}
tb_netns swcni-vxu; U=$TB_LAST
ip -n "$U" link add ubr0 type bridge && ip -n "$U" link set ubr0 up
H=(); C=()
for i in 1 2 3; do host "$i"; done
ctl() {  # ctl HOST-INDEX args...
    local i=$1; shift
    ip netns exec "${H[$((i - 1))]}" env NETCONFPATH="$D/net.d$i" CNI_PATH="$D/bin" "$BIN/cnictl" "$@" --cache-dir "$D/cache$i"
}

echo "vxlan: three hosts, one container each"
for i in 1 2 3; do
    ctl "$i" add overlay "/run/netns/${C[$((i - 1))]}" >/dev/null 2>"$D/err"; rc=$?
    check_eq "host$i: add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
done
# Host 1 and 2 learn of the later hosts at their next ADD.
tb_netns swcni-vxc1b; C1b=$TB_LAST
ctl 1 add overlay "/run/netns/$C1b" >/dev/null 2>&1; check_eq "host1: a second container (re-programs its peers)" 0 "$?"
tb_netns swcni-vxc2b; C2b=$TB_LAST
ctl 2 add overlay "/run/netns/$C2b" >/dev/null 2>&1; check_eq "host2: a second container" 0 "$?"
check_eq "three leases, three subnets" 3 "$(jq '[.leases[].subnet] | unique | length' "$D/leases.json")"
check_eq "the VTEP: learning off, VNI 7, MTU 1450 (1500 - 50)" "false 7 1450" \
    "$(ip -n "${H[0]}" -d -j link show vxlan.7 | jq -r '.[0] | "\(.linkinfo.info_data.learning) \(.linkinfo.info_data.id) \(.mtu)"')"
a1=$(ov_addr "${C[0]}"); a2=$(ov_addr "${C[1]}"); a3=$(ov_addr "${C[2]}")
for pair in "0 $a2" "0 $a3" "1 $a1" "1 $a3" "2 $a1" "2 $a2"; do
    set -- $pair
    check "container on host$(($1 + 1)) pings $2 across the overlay" bash -c "ip netns exec ${C[$1]} ping -c1 -W2 $2 >/dev/null"
done
check "a 1422-byte don't-fragment ping passes (1500 underlay, MTU 1450)" bash -c "ip netns exec ${C[0]} ping -c1 -W2 -M do -s 1422 $a2 >/dev/null"
check "a 1423-byte one does not" bash -c "! ip netns exec ${C[0]} ping -c1 -W2 -M do -s 1423 $a2 >/dev/null 2>&1"
ctl 1 check overlay "/run/netns/${C[0]}" 2>"$D/err"; rc=$?
check_eq "check exits 0 $(head -c 200 "$D/err")" 0 "$rc"

echo "vxlan: cni-overlayd (file store): a host joins and leaves, a VTEP is re-made, without another ADD"
agent() {  # agent I: cni-overlayd on host I (resync every 60 s: the heals below come from events)
    tb_bg "${H[$(($1 - 1))]}" "$BIN/cni-overlayd" --store "$D/leases.json" --network 10.247.0.0/16 --node "host$1" \
        --vni 7 --underlay eth0 --resync 60 --release-on-exit --node-file "$D/node$1.json" --subnet-file "$D/subnet$1.env" \
        2>>"$D/agent$1.log"
}
for i in 1 2 3; do agent "$i"; done
host 4
agent 4
ctl 4 add overlay "/run/netns/${C[3]}" >/dev/null 2>"$D/err"; rc=$?
check_eq "host4 (new): add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
a4=$(ov_addr "${C[3]}")
check "host1's container reaches host4's, no ADD on host1 (the agent saw the lease)" \
    until_ok bash -c "ip netns exec ${C[0]} ping -c1 -W1 $a4 >/dev/null 2>&1"
check "host4's container reaches host3's" until_ok bash -c "ip netns exec ${C[3]} ping -c1 -W1 $a3 >/dev/null 2>&1"
ip -n "${H[1]}" link del vxlan.7
check "host2's deleted VTEP is made again by its agent, and carries traffic" \
    until_ok bash -c "ip netns exec ${C[0]} ping -c1 -W1 $a2 >/dev/null 2>&1"
s3=$(jq -r '.leases[] | select(.node == "host3") | .subnet' "$D/leases.json")
ip -n "${H[2]}" addr del 192.168.71.3/24 dev eth0 && ip -n "${H[2]}" addr add 192.168.71.13/24 dev eth0
check "host3's underlay address changes: host1's FDB follows (its agent saw the address, wrote the lease)" \
    until_ok bash -c "bridge -n ${H[0]} fdb show dev vxlan.7 | grep -q 'dst 192.168.71.13'"
check_eq "host3 kept its subnet (one lease, the same subnet)" "1 $s3" \
    "$(jq -r '[.leases[] | select(.node == "host3") | .subnet] | "\(length) \(join(" "))"' "$D/leases.json")"
check "... which is a subnet" test -n "$s3" -a "$s3" != null
check "host1's container reaches host3's at its new address" until_ok bash -c "ip netns exec ${C[0]} ping -c1 -W1 $a3 >/dev/null 2>&1"
s4=$(jq -r '.leases[] | select(.node == "host4") | .subnet' "$D/leases.json")
mac4=$(ip -n "${H[3]}" -j link show vxlan.7 | jq -r '.[0].address')
ctl 4 del overlay "/run/netns/${C[3]}" 2>/dev/null
check_eq "the file store's agent writes flanneld's subnet file too (host4's subnet, the VTEP's MTU)" \
    "FLANNEL_NETWORK=10.247.0.0/16 FLANNEL_SUBNET=${s4%.0/24}.1/24 FLANNEL_MTU=1450 FLANNEL_IPMASQ=false" "$(tr '\n' ' ' < "$D/subnet4.env" | sed 's/ $//')"
kill "${TB_PIDS[-1]}"   # host4's agent leaves, releasing the lease
check "host4's lease released" until_ok bash -c "[ \"\$(jq '[.leases[] | select(.node == \"host4\")] | length' $D/leases.json)\" = 0 ]"
check "... and its subnet file removed" until_ok test ! -e "$D/subnet4.env"
gone4() { ! ip -n "${H[0]}" route show "$s4" | grep -q . && ! bridge -n "${H[0]}" fdb show dev vxlan.7 | grep -q "$mac4" \
    && ! ip -n "${H[0]}" neigh show dev vxlan.7 | grep -q "$mac4"; }
check "host1 forgets host4 (route to $s4, FDB entry and neighbour of $mac4 gone)" until_ok gone4

echo "vxlan: DEL"
for i in 1 2 3; do ctl "$i" del overlay "/run/netns/${C[$((i - 1))]}" 2>/dev/null; done
ctl 1 del overlay "/run/netns/$C1b"; ctl 2 del overlay "/run/netns/$C2b"
check_eq "every address released" "" "$(find "$D"/ipam* -type f | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
check_eq "no veth left on the hosts" 0 "$(for h in "${H[@]}"; do ip -n "$h" -j link show type veth | jq '[.[] | select(.ifname != "eth0")] | length'; done | paste -sd+ | bc)"

echo "vxlan: an IPv6 underlay (IPv4 overlay over it, MTU 1500 - 70)"
ov_underlay 76
for i in 1 2; do
    tb_netns "swcni-vx6h$i"; H6[$i]=$TB_LAST
    tb_netns "swcni-vx6c$i"; C6[$i]=$TB_LAST
    ip -n "$OV_U" link add "h6$i" type veth peer name eth0 netns "${H6[$i]}"
    ip -n "$OV_U" link set "h6$i" master ubr0 up
    ip -n "${H6[$i]}" addr add "fd00:76::$i/64" dev eth0 nodad
    ip -n "${H6[$i]}" link set eth0 up
    cat > "$D/v6-$i.json" <<CONF
{"cniVersion":"1.1.0","name":"overlay6","type":"vxlan","network":"10.248.0.0/16","vni":8,"underlay":"eth0",
 "nodeName":"v6host$i","store":{"type":"file","path":"$D/leases6.json"},"dataDir":"$D/ipam6-$i"}
CONF
    ip netns exec "${H6[$i]}" env CNI_COMMAND=ADD CNI_CONTAINERID=v6c CNI_NETNS="/run/netns/${C6[$i]}" CNI_IFNAME=eth0 \
        CNI_PATH="$D/bin" "$D/bin/vxlan" < "$D/v6-$i.json" > "$D/v6res$i.json" 2>"$D/err"; rc=$?
    check_eq "v6host$i: add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
done
ip netns exec "${H6[1]}" "$BIN/cni-overlayd" --store "$D/leases6.json" --network 10.248.0.0/16 --vni 8 --node v6host1 --underlay eth0 --once --node-file "$D/node6.json"
check_eq "the VTEP sends from the IPv6 underlay address, MTU 1430" "fd00:76::1 1430" \
    "$(ip -n "${H6[1]}" -d -j link show vxlan.8 | jq -r '.[0] | "\(.linkinfo.info_data.local6) \(.mtu)"')"
check_eq "the container's MTU is 1430 too" 1430 "$(ip -n "${C6[1]}" -j link show eth0 | jq '.[0].mtu')"
b6=$(jq -r '.ips[0].address | split("/")[0]' "$D/v6res2.json")
check "a container pings the other host's across the IPv6 underlay" bash -c "ip netns exec ${C6[1]} ping -c1 -W2 $b6 >/dev/null"
check "a 1402-byte don't-fragment ping passes" bash -c "ip netns exec ${C6[1]} ping -c1 -W2 -M do -s 1402 $b6 >/dev/null"
check "a 1403-byte one does not" bash -c "! ip netns exec ${C6[1]} ping -c1 -W2 -M do -s 1403 $b6 >/dev/null 2>&1"
for i in 1 2; do
    ip netns exec "${H6[$i]}" env CNI_COMMAND=DEL CNI_CONTAINERID=v6c CNI_NETNS="/run/netns/${C6[$i]}" CNI_IFNAME=eth0 \
        CNI_PATH="$D/bin" "$D/bin/vxlan" < "$D/v6-$i.json"
done
check_eq "IPv6 underlay: every address released" "" "$(find "$D"/ipam6-* -type f | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
tb_finish
