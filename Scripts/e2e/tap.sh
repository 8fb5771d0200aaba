#!/usr/bin/env bash
# The tap plugin, run as a runtime runs it: a persistent tap in the container (MTU, MAC, owner and
# group, multi_queue, a port of a bridge in the container, IPAM's addresses or none), then a
# virtual machine's side: a process running as the owner in the group (no CAP_NET_ADMIN)
# attaches to the device as a VMM does and receives the container kernel's ARP request from the
# configured MAC; users the owner and group exclude are refused. CHECK, DEL (idempotent, netns gone, CNI_NETNS
# empty), a failed ADD rolled back, the refusals. Debian's reference set has no tap plugin (it
# came in v1.2): nothing to run side by side.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs tap static host-local
tb_netns swcni-tph; H=$TB_LAST
OWNER=4242 GROUP=4343   # ids with no name here, so `ip -d` prints them as numbers
STATIC='{"type":"static","addresses":[{"address":"10.55.0.5/24","gateway":"10.55.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}'
conf() {  # conf FILE EXTRA-JSON [IPAM-JSON|none]: the tap configuration (static IPAM by default)
    local ipam=${3:-$STATIC}
    jq -n --argjson extra "$2" --argjson ipam "$([ "$ipam" = none ] && echo null || echo "$ipam")" \
        '{cniVersion:"1.1.0",name:"tapnet",type:"tap"} + $extra + (if $ipam then {ipam:$ipam} else {} end)' > "$1"
}
run() { CNI_PATH="$D/bin" tb_plugin "$H" "$D/bin/tap" "$1" c1 "${2:+/run/netns/$2}" "${4:-tap0}" "$3" "${@:5}"; }
fails_with() { [ "$TB_RC" -ne 0 ] && jq -e --argjson c "$1" --arg t "$2" '.code == $c and ((.msg + " " + (.details // "")) | contains($t))' <<<"$TB_OUT" >/dev/null; }
tun() { ip -n "$1" -j -d link show "${2:-tap0}" | jq -c '.[0] | {kind: .linkinfo.info_kind} + (.linkinfo.info_data | {type, pi, vnet_hdr, multi_queue, persist, user, group})'; }
vm() {  # vm NETNS UID GID MQ: the VM side as UID:GID, in the background; its output in $D/vm.out
    : > "$D/vm.out"
    ip netns exec "$1" python3 "$here/../lib/tap-vm.py" tap0 "$4" 10.55.0.9 5 "$2" "$3" > "$D/vm.out" 2>&1 &
    VM=$!
    for _ in $(seq 1 100); do [ -s "$D/vm.out" ] && break; kill -0 "$VM" 2>/dev/null || break; sleep 0.05; done
}
links() { ip -n "$1" -br link | awk '{print $1}' | sort | tr '\n' ' ' | sed 's/ $//'; }

echo "tap: ADD (owner, group, MTU, MAC, static IPAM)"
tb_netns swcni-tpa; A=$TB_LAST
conf "$D/a.json" "{\"owner\":$OWNER,\"group\":$GROUP,\"mtu\":1400,\"mac\":\"02:11:22:33:44:55\"}"
run ADD "$A" "$D/a.json"
check_eq "add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "the result: tap0 with the MAC and MTU, in the container, the address on it" "tap0 02:11:22:33:44:55 1400 /run/netns/$A 10.55.0.5/24 0" \
    "$(jq -r '"\(.interfaces[0].name) \(.interfaces[0].mac) \(.interfaces[0].mtu) \(.interfaces[0].sandbox) \(.ips[0].address) \(.ips[0].interface)"' <<<"$TB_OUT")"
check_eq "a persistent tap, no packet information, its owner and group" \
    "{\"kind\":\"tun\",\"type\":\"tap\",\"pi\":false,\"vnet_hdr\":true,\"multi_queue\":false,\"persist\":true,\"user\":$OWNER,\"group\":$GROUP}" "$(tun "$A")"
check_eq "... up, MTU 1400, the MAC" "UP 1400 02:11:22:33:44:55" \
    "$(ip -n "$A" -j link show tap0 | jq -r '.[0] | "\(if (.flags | index("UP")) then "UP" else "down" end) \(.mtu) \(.address)"')"
check "... the address and the default route on it" bash -c "ip -n $A addr show tap0 | grep -q 10.55.0.5/24 && ip -n $A route | grep -q 'default via 10.55.0.1 dev tap0'"
prev=$TB_OUT

echo "tap: a virtual machine attaches"
vm "$A" "$OWNER" "$GROUP" 0
check_eq "the owner in the group (no CAP_NET_ADMIN) attaches to the device" attached "$(head -1 "$D/vm.out")"
check_eq "... and the tap has its carrier" 1 "$(ip -n "$A" -j link show tap0 | jq '[.[0].flags[] | select(. == "LOWER_UP")] | length')"
ip netns exec "$A" ping -c1 -W1 10.55.0.9 >/dev/null 2>&1
wait "$VM"; rc=$?
check_eq "the VM receives the container's ARP request for 10.55.0.9, from the configured MAC" "0 arp 02:11:22:33:44:55 10.55.0.5" "$rc $(sed -n 2p "$D/vm.out")"
# The kernel's rule: each of owner and group that is set must match (or CAP_NET_ADMIN).
vm "$A" 4244 "$GROUP" 0
wait "$VM"; rc=$?
check_eq "another user in the group is refused (EPERM): owner and group both set, both must match" "2 EPERM" "$rc $(cat "$D/vm.out")"
vm "$A" "$OWNER" 4245 0
wait "$VM"; rc=$?
check_eq "the owner outside the group is refused (EPERM)" "2 EPERM" "$rc $(cat "$D/vm.out")"
tb_netns swcni-tpg; G=$TB_LAST
conf "$D/g.json" "{\"group\":$GROUP}" none
run ADD "$G" "$D/g.json"
check_eq "a tap with a group only: add exits 0 $TB_OUT" 0 "$TB_RC"
vm "$G" 4244 "$GROUP" 0
kill "$VM" 2>/dev/null; wait "$VM" 2>/dev/null
check_eq "... any user in the group attaches" attached "$(head -1 "$D/vm.out")"
vm "$G" 4244 4245 0
wait "$VM"; rc=$?
check_eq "... a user outside it is refused (EPERM)" "2 EPERM" "$rc $(cat "$D/vm.out")"
run DEL "$G" "$D/g.json"

echo "tap: CHECK"
jq --argjson p "$prev" '.prevResult = $p' "$D/a.json" > "$D/check.json"
run CHECK "$A" "$D/check.json"
check_eq "check exits 0 $TB_OUT" 0 "$TB_RC"
ip -n "$A" link set tap0 mtu 1300
run CHECK "$A" "$D/check.json"
check "check after the MTU changed by hand fails (108) naming it" fails_with 108 "MTU 1300"
ip -n "$A" link set tap0 mtu 1400
jq '.group = 4346' "$D/check.json" > "$D/check2.json"
run CHECK "$A" "$D/check2.json"
check "check with another group configured fails (108) naming both" fails_with 108 "group $GROUP, the configuration says 4346"

echo "tap: DEL"
run DEL "$A" "$D/a.json"
check_eq "del exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "the tap is gone" "lo" "$(links "$A")"
run DEL "$A" "$D/a.json"
check_eq "DEL again exits 0" 0 "$TB_RC"
run DEL "" "$D/a.json"
check_eq "DEL with CNI_NETNS empty exits 0" 0 "$TB_RC"
CNI_PATH="$D/bin" tb_plugin "$H" "$D/bin/tap" DEL c1 "/run/netns/swcni-tp-gone-$TB_ID" tap0 "$D/a.json"
check_eq "DEL with the netns gone exits 0" 0 "$TB_RC"

echo "tap: layer 2, multi_queue, a bridge in the container, no owner or group"
tb_netns swcni-tpb; B=$TB_LAST
ip -n "$B" link add br0 type bridge
conf "$D/b.json" '{"multiQueue":true,"bridge":"br0"}' none
run ADD "$B" "$D/b.json"
check_eq "add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "no addresses in the result" 0 "$(jq '.ips // [] | length' <<<"$TB_OUT")"
check_eq "multi_queue, no owner or group" \
    '{"kind":"tun","type":"tap","pi":false,"vnet_hdr":true,"multi_queue":true,"persist":true,"user":null,"group":null}' "$(tun "$B")"
check_eq "... a port of br0, up" "br0 UP" "$(ip -n "$B" -j link show tap0 | jq -r '.[0] | "\(.master) \(if (.flags | index("UP")) then "UP" else "down" end)"')"
vm "$B" 0 0 1
kill "$VM" 2>/dev/null; wait "$VM" 2>/dev/null
check_eq "root attaches with IFF_MULTI_QUEUE" attached "$(head -1 "$D/vm.out")"
vm "$B" 0 0 0
wait "$VM"; rc=$?
check_eq "... an attach without it is refused (EINVAL): the queues are the device's" "2 EINVAL" "$rc $(cat "$D/vm.out")"
vm "$B" "$OWNER" "$GROUP" 1
kill "$VM" 2>/dev/null; wait "$VM" 2>/dev/null
check_eq "... with no owner and no group, any user handed /dev/net/tun attaches (as with ip tuntap)" attached "$(head -1 "$D/vm.out")"
jq --argjson p "$TB_OUT" '.prevResult = $p' "$D/b.json" > "$D/checkb.json"
ip -n "$B" link set tap0 nomaster
run CHECK "$B" "$D/checkb.json"
check "check after the tap left the bridge fails (108) naming br0" fails_with 108 '"br0"'
run DEL "$B" "$D/b.json"
check_eq "DEL leaves the bridge" "br0 lo" "$(links "$B")"

echo "tap: every spec version"
tb_netns swcni-tpv; V=$TB_LAST
for v in 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; do
    jq --arg v "$v" '.cniVersion = $v' "$D/a.json" > "$D/v.json"
    run ADD "$V" "$D/v.json"
    add_rc=$TB_RC out=$TB_OUT
    kind=$(tun "$V" | jq -r '"\(.kind) \(.type)"')
    check_rc=0
    if printf '%s\n' 0.4.0 "$v" | sort -V -C; then
        jq --argjson p "$out" '.prevResult = $p' "$D/v.json" > "$D/vc.json"
        run CHECK "$V" "$D/vc.json"; check_rc=$TB_RC
    fi
    run DEL "$V" "$D/v.json"
    check_eq "$v: ADD (a tap, its address in the $v result), CHECK (from 0.4.0), DEL, nothing left" "0 tun tap 10.55.0.5 0 0 lo" \
        "$add_rc $kind $(jq -r '(.ips[0].address // .ip4.ip) | split("/")[0]' <<<"$out") $check_rc $TB_RC $(links "$V")"
done

echo "tap: refusals and a failed ADD, each leaving nothing"
conf "$D/c.json" '{"bridge":"br9"}' none
run ADD "$B" "$D/c.json"
check "a bridge that is not in the container: code 7 naming it" fails_with 7 '"br9"'
ip -n "$B" link add v0 type veth peer name v1
conf "$D/c.json" '{"bridge":"v0"}' none
run ADD "$B" "$D/c.json"
check "a bridge that is a veth: code 7 naming it" fails_with 7 'is a veth, not a bridge'
ip -n "$B" link add tap0 type veth peer name tap0p
conf "$D/c.json" '{}' none
run ADD "$B" "$D/c.json"
check "CNI_IFNAME taken: code 107" fails_with 107 tap0
ip -n "$B" link del tap0
conf "$D/c.json" '{"selinuxContext":"system_u:system_r:container_t:s0"}' none
run ADD "$B" "$D/c.json"
if [ -e /sys/fs/selinux/enforce ]; then
    skip "selinuxContext refused without SELinux: this host runs SELinux"
else
    check "selinuxContext on a host without SELinux: code 7 saying so" fails_with 7 "needs SELinux"
fi
# What selinuxContext runs, in the context set for its exec: the binary itself, making the tap
# in the namespace it was started in. (SELinux's part, the context, needs an SELinux host.)
ip netns exec "$B" "$BIN/cni-plugins" --make-tap tapz 1 "$OWNER" -; rc=$?
check_eq "the helper selinuxContext executes makes the tap in its own namespace" "0 {\"kind\":\"tun\",\"type\":\"tap\",\"pi\":false,\"vnet_hdr\":true,\"multi_queue\":true,\"persist\":true,\"user\":$OWNER,\"group\":null}" \
    "$rc $(tun "$B" tapz)"
ip -n "$B" link del tapz
conf "$D/c.json" '{}' '{"type":"static","addresses":[{"address":"10.55.0.5/24"}],"routes":[{"dst":"10.99.0.0/16","gw":"192.0.2.1"}]}'
run ADD "$B" "$D/c.json"
check "an ADD failing after the tap was made (a route through an unreachable gateway) fails" test "$TB_RC" -ne 0
check_eq "the container is left as it was: the bridge, the veth pair, no tap" "br0 lo v0@v1 v1@v0" "$(links "$B")"
conf "$D/c.json" '{"owner":-1}' none
run ADD "$B" "$D/c.json"
check "owner -1: code 7 naming owner" fails_with 7 owner
check_eq "... nothing made" "br0 lo v0@v1 v1@v0" "$(links "$B")"
tb_finish
