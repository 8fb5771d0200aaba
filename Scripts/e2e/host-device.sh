#!/usr/bin/env bash
# The host-device plugin, run as a runtime runs it, in a throwaway host namespace whose "devices"
# are veth ends: moved into the container under CNI_IFNAME (by device, hwaddr, kernelpath) with
# its name in its alias and IPAM's addresses, laid out as the reference's host-device lays it out
# (the same configuration through both, compared as data), CHECK, DEL back under its name (also
# what the reference moved, and the reference's DEL of what we moved), DEL idempotent, and the
# refusals that change nothing: a device already moved, a name taken, a failed ADD rolled back.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs host-device static
tb_netns swcni-hdh; H=$TB_LAST
tb_netns swcni-hda; A=$TB_LAST
tb_netns swcni-hdr; R=$TB_LAST
tb_netns swcni-hdb; B=$TB_LAST
for d in dev1 dev2 dev3; do ip -n "$H" link add "$d" mtu 1400 type veth peer name "$d-p"; ip -n "$H" link set "$d-p" up; done
ip -n "$H" link set dev1 up
conf() {  # conf SELECTOR-JSON [IPAM-EXTRA]: a host-device configuration with static IPAM
    printf '{"cniVersion":"1.0.0","name":"hd","type":"host-device",%s,"ipam":{"type":"static","addresses":[{"address":"10.91.0.5/24","gateway":"10.91.0.1"},{"address":"fd00:91::5/64"}],"routes":[{"dst":"10.92.0.0/16"}%s]}}' "$1" "${2:-}" > "$D/conf.json"
    echo "$D/conf.json"
}
run() {  # run IMPL CMD NETNS [IFNAME] [VAR=VALUE...]: ours or the reference (with its own static)
    local impl="$1" cmd="$2" ns="$3" ifname="${4:-net1}"; shift 3; [ $# -gt 0 ] && shift
    if [ "$impl" = ours ]; then
        CNI_PATH="$D/bin" tb_plugin "$H" "$D/bin/host-device" "$cmd" c1 "$ns" "$ifname" "$D/conf.json" "$@"
    else
        CNI_PATH=/usr/lib/cni tb_plugin "$H" /usr/lib/cni/host-device "$cmd" c1 "$ns" "$ifname" "$D/conf.json" "$@"
    fi
}
layout() {  # layout NS IFNAME: the interface, its addresses and routes as data, names made generic
    ip -n "$1" -j -d link show "$2" | jq -c '.[0] | {ifname, mtu, up: (.flags | index("UP") != null), alias: (.ifalias | sub("dev[0-9]"; "DEV"))}'
    ip -n "$1" -j addr show dev "$2" | jq -c '[.[0].addr_info[] | select(.scope == "global") | "\(.local)/\(.prefixlen)"] | sort'
    { ip -n "$1" route; ip -n "$1" -6 route | grep -v '^fe80'; } | sed -E 's/ metric [0-9]+//; s/ proto [a-z]+//; s/ pref medium//; s/ +$//' | sort
}
mac1=$(ip -n "$H" -j link show dev1 | jq -r '.[0].address')
has_link() { ip -n "$1" link show "$2" >/dev/null 2>&1; }

echo "host-device: ADD by device"
conf '"device":"dev1"' >/dev/null
run ours ADD "/run/netns/$A"
check_eq "add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "the result: the interface under CNI_IFNAME with the device's MAC, in the container" "net1 $mac1 /run/netns/$A 0" \
    "$(jq -r '"\(.interfaces[0].name) \(.interfaces[0].mac) \(.interfaces[0].sandbox) \(.ips[0].interface)"' <<<"$TB_OUT")"
check_eq "the device left the host" "" "$(ip -n "$H" -br link show dev1 2>/dev/null)"
check_eq "in the container: up, its host name in its alias, its MTU kept" "net1 1400 true dev1" \
    "$(ip -n "$A" -j -d link show net1 | jq -r '.[0] | "\(.ifname) \(.mtu) \(.flags | index("UP") != null) \(.ifalias)"')"
check "... with the addresses and the route" bash -c "ip -n $A addr show net1 | grep -q '10.91.0.5/24' && ip -n $A addr show net1 | grep -q 'fd00:91::5/64' && ip -n $A route | grep -q '10.92.0.0/16 via 10.91.0.1 dev net1'"
prev=$TB_OUT

echo "host-device: side by side with the reference"
conf '"device":"dev2"' >/dev/null
run ref ADD "/run/netns/$R"
check_eq "the reference's ADD of dev2 exits 0" 0 "$TB_RC"
check_eq "the container's interface, addresses and routes are laid out as the reference lays them out (metrics aside)" \
    "$(layout "$R" net1 | sed 's/"up":false/"up":true/')" "$(layout "$A" net1)"
check_eq "... the reference leaves the device down without IPAM's help; ours and its are otherwise equal" "$(layout "$R" net1 | sed -n 2,99p)" "$(layout "$A" net1 | sed -n 2,99p)"

echo "host-device: CHECK"
conf '"device":"dev1"' >/dev/null
jq --argjson p "$prev" '.prevResult = $p' "$D/conf.json" > "$D/check.json" && cp "$D/check.json" "$D/conf.json"
run ours CHECK "/run/netns/$A"
check_eq "check exits 0 $TB_OUT" 0 "$TB_RC"
ip -n "$A" addr del 10.91.0.5/24 dev net1
run ours CHECK "/run/netns/$A"
check "check after an address was deleted by hand fails naming it" bash -c "[ $TB_RC -ne 0 ] && grep -q '10.91.0.5' <<<'$TB_OUT'"
ip -n "$A" addr add 10.91.0.5/24 dev net1

echo "host-device: refusals that change nothing"
conf '"device":"dev1"' >/dev/null
run ours ADD "/run/netns/$B"
check "a device already moved: code 7 naming it" bash -c "[ $TB_RC -ne 0 ] && jq -e '.code == 7 and (.msg | contains(\"device \\\"dev1\\\" not found\"))' <<<'$TB_OUT' >/dev/null"
check_eq "... and the other container is untouched" 1 "$(ip -n "$B" -br link | wc -l)"
conf '"device":"dev3"' >/dev/null
run ours ADD "/run/netns/$A"
check "CNI_IFNAME taken in the container: code 107" bash -c "[ $TB_RC -ne 0 ] && jq -e '.code == 107' <<<'$TB_OUT' >/dev/null"
check "... and dev3 stays on the host" has_link "$H" dev3
ip -n "$H" link set dev3 up
conf '"device":"dev3"' ',{"dst":"10.93.0.0/16","gw":"192.0.2.1"}' >/dev/null
run ours ADD "/run/netns/$B"
check "an ADD failing after the move (a route through an unreachable gateway) fails" test "$TB_RC" -ne 0
check_eq "... and dev3 is back on the host under its name, up as it was, without alias" "dev3 true null" \
    "$(ip -n "$H" -j -d link show dev3 | jq -r '.[0] | "\(.ifname) \(.flags | index("UP") != null) \(.ifalias)"')"
check_eq "... nothing in the container" 1 "$(ip -n "$B" -br link | wc -l)"

echo "host-device: DEL"
conf '"device":"dev1"' >/dev/null
ip -n "$H" link add dev1 type veth peer name dev1-q
run ours DEL "/run/netns/$A"
check "DEL while the host has another dev1 is refused naming the name" bash -c "[ $TB_RC -ne 0 ] && grep -q 'as \\\\\"dev1\\\\\"' <<<'$TB_OUT'"
check "... and net1 stays in the container" has_link "$A" net1
ip -n "$H" link del dev1
run ours DEL "/run/netns/$A"
check_eq "del exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "dev1 is back on the host under its name, down, MTU kept, alias cleared, no address" "dev1 false 1400 null 0" \
    "$(ip -n "$H" -j -d addr show dev1 | jq -r '.[0] | "\(.ifname) \(.flags | index("UP") != null) \(.mtu) \(.ifalias) \([.addr_info[] | select(.scope == "global")] | length)"')"
check_eq "... with its MAC" "$mac1" "$(ip -n "$H" -j link show dev1 | jq -r '.[0].address')"
run ours DEL "/run/netns/$A"
check_eq "a second del exits 0" 0 "$TB_RC"
run ours DEL ""
check_eq "del with CNI_NETNS empty exits 0" 0 "$TB_RC"
run ours DEL "/run/netns/swcni-gone-$TB_ID"
check_eq "del with the netns gone exits 0" 0 "$TB_RC"
conf '"device":"dev2"' >/dev/null
run ours DEL "/run/netns/$R"
check_eq "our DEL of what the reference moved exits 0" 0 "$TB_RC"
check "... and dev2 is back on the host" has_link "$H" dev2
run ours ADD "/run/netns/$R"
run ref DEL "/run/netns/$R"
check_eq "the reference's DEL of what we moved exits 0 $TB_OUT" 0 "$TB_RC"
check "... and dev2 is back on the host" has_link "$H" dev2

echo "host-device: other selectors"
mac2=$(ip -n "$H" -j link show dev2 | jq -r '.[0].address')
conf "\"hwaddr\":\"${mac2^^}\"" >/dev/null
run ours ADD "/run/netns/$A"
check_eq "by hwaddr (upper case) exits 0 $TB_OUT" "0 dev2" "$TB_RC $(ip -n "$A" -j -d link show net1 | jq -r '.[0].ifalias')"
run ours DEL "/run/netns/$A"
conf '"kernelpath":"/sys/devices/virtual/net/dev2"' >/dev/null
run ours ADD "/run/netns/$A"
check_eq "by kernelpath (sysfs of the host namespace, as ip netns exec mounts it) exits 0 $TB_OUT" "0 dev2" "$TB_RC $(ip -n "$A" -j -d link show net1 | jq -r '.[0].ifalias')"
run ours DEL "/run/netns/$A"
# A PCI function of the machine's own NIC (its interface is in the root namespace, never in H).
pci=$(for n in /sys/class/net/*; do readlink -f "$n" | tr / '\n' | grep -E '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$'; done | head -1)
if [ -n "$pci" ]; then
    conf "\"pciBusID\":\"$pci\"" >/dev/null
    run ours ADD "/run/netns/$A"
    check "pciBusID of a PCI device whose interface is in another namespace: code 7, nothing moved" bash -c \
        "[ $TB_RC -ne 0 ] && jq -e '.code == 7 and (.msg | contains(\"pciBusID\"))' <<<'$TB_OUT' >/dev/null && [ \$(ip -n $A -br link | wc -l) = 1 ]"
else
    skip "pciBusID lookup: this machine has no PCI network device"
fi
conf '"device":"dev2","runtimeConfig":{"deviceID":"0000:ff:1f.7"}' >/dev/null
run ours ADD "/run/netns/$A"
check "runtimeConfig.deviceID on neither bus: code 7 naming it, nothing moved" bash -c \
    "[ $TB_RC -ne 0 ] && jq -e '.code == 7 and (.msg | contains(\"deviceID\"))' <<<'$TB_OUT' >/dev/null && ip -n $H link show dev2 >/dev/null"
tb_finish
