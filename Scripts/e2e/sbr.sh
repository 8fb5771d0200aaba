#!/usr/bin/env bash
# The sbr plugin (source-based routing), run as a runtime runs it, on containers with two
# interfaces: eth0 (the default route, to the "host") and net1 (to a router of its own, the only
# way to 198.51.100.9 and 2001:db8:9::9). After ADD, traffic from net1's addresses leaves by net1
# (pings to the router's far address, by source), traffic from eth0's by eth0; the rules and
# tables are laid out as the Debian reference's sbr lays them out (the same configuration through
# both, compared as data). CHECK, DEL (the routes back in the main table; idempotent, netns gone,
# CNI_NETNS empty), `table`,
# `gateways`, `addSourceHints`, a table already in use, two interfaces, two ADDs at once, a failed
# ADD rolled back, and the refusals.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs sbr
tb_netns swcni-sbh; H=$TB_LAST

# bed NAME: a container NAME (eth0 to the host, net1 to router NAME-gw) with net1's addresses and
# a route the main plugin would have added; sets BED to the container's namespace name. (Not
# run in $(...): the namespaces must reach this shell's cleanup list.)
bed() {
    local c g
    tb_netns "swcni-sb$1" >/dev/null; c=$TB_LAST
    tb_netns "swcni-sb$1g" >/dev/null; g=$TB_LAST
    ip -n "$c" link add eth0 type veth peer name "e-$1" netns "$H"
    ip -n "$c" link add net1 type veth peer name r1 netns "$g"
    ip -n "$c" addr add 10.60.0.5/24 dev eth0
    ip -n "$c" addr add 192.168.71.5/24 dev net1
    ip -n "$c" addr add fd00:71::5/64 dev net1 nodad
    ip -n "$g" addr add 192.168.71.1/24 dev r1
    ip -n "$g" addr add fd00:71::1/64 dev r1 nodad
    ip -n "$g" addr add 198.51.100.9/32 dev lo
    ip -n "$g" addr add 2001:db8:9::9/128 dev lo
    ip -n "$c" link set eth0 up; ip -n "$c" link set net1 up; ip -n "$g" link set r1 up; ip -n "$H" link set "e-$1" up
    ip -n "$c" route add default via 10.60.0.1 dev eth0 onlink
    ip -n "$c" route add 10.72.0.0/16 via 192.168.71.1 dev net1
    BED=$c
}
# conf FILE NETNS EXTRA-JSON: an sbr configuration with the prevResult of net1's main plugin.
conf() {
    local extra=${3:-}
    [ -n "$extra" ] || extra='{}'
    jq -n --arg ns "/run/netns/$2" --argjson extra "$extra" '{cniVersion:"1.0.0",name:"sbr-net",type:"sbr"} + $extra + {prevResult:{
        cniVersion:"1.0.0",interfaces:[{name:"net1",sandbox:$ns}],
        ips:[{address:"192.168.71.5/24",gateway:"192.168.71.1",interface:0},{address:"fd00:71::5/64",gateway:"fd00:71::1",interface:0}]}}' > "$1"
}
run() {  # run IMPL CMD NETNS CONF [IFNAME]: ours or the reference
    local bin="$D/bin/sbr"
    [ "$1" = ref ] && bin=/usr/lib/cni/sbr
    CNI_PATH="$D/bin" tb_plugin "$H" "$bin" "$2" c1 "${3:+/run/netns/$3}" "${5:-net1}" "$4"
}
# layout NS: the rules and the tables 100/101 and main, per family, protocols and metrics as listed.
layout() {
    local f
    for f in -4 -6; do
        echo "rules$f: $(ip -n "$1" $f rule | sed 's/\t/ /' | tr '\n' ';')"
        for t in main 100 101; do
            echo "table $t$f: $(ip -n "$1" $f route show table "$t" 2>/dev/null | sed 's/ *$//' | sort | tr '\n' ';')"
        done
    done
}
# only_family: the reference also copies the other family's routes into each table (never looked
# up: a table is reached only by its own family's rule) and takes fe80::/64 out of the main table.
only_family() { sed -E '/^table (100)-6:/s/: .*/: (not looked up)/; /^table (101)-4:/s/: .*/: (not looked up)/; /^table main-6:/s/: .*/: (ours: fe80::\/64 kept)/'; }
# fails_with CODE TEXT: the last run failed with CNI error CODE, its message holding TEXT.
fails_with() { [ "$TB_RC" -ne 0 ] && jq -e --argjson c "$1" --arg t "$2" '.code == $c and (.msg | contains($t))' <<<"$TB_OUT" >/dev/null; }
route_dev() { ip -n "$1" -j route get "$2" ${3:+from "$3"} 2>/dev/null | jq -r '.[0].dev // "none"'; }

bed a; A=$BED; bed r; R=$BED
conf "$D/a.json" "$A"; conf "$D/r.json" "$R"
main_a=$( { ip -n "$A" route; ip -n "$A" -6 route; } | sort)
echo "sbr: ADD"
check_eq "before: traffic from net1's address to 198.51.100.9 takes the default route (eth0)" eth0 "$(route_dev "$A" 198.51.100.9 192.168.71.5)"
run ours ADD "$A" "$D/a.json"
check_eq "add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "the result is prevResult" "$(jq -cS .prevResult "$D/a.json")" "$(jq -cS 'del(.dns)' <<<"$TB_OUT")"
check_eq "rule: from net1's IPv4 address to table 100" "32765: from 192.168.71.5 lookup 100" "$(ip -n "$A" rule | grep 'lookup 100' | tr -s '\t' ' ')"
check_eq "rule: from net1's IPv6 address to table 101" "32765: from fd00:71::5 lookup 101" "$(ip -n "$A" -6 rule | grep 'lookup 101' | tr -s '\t' ' ')"
check_eq "table 100: net1's IPv4 routes and the default route through its gateway" \
    "10.72.0.0/16 via 192.168.71.1 dev net1;192.168.71.0/24 dev net1 proto kernel scope link src 192.168.71.5;default via 192.168.71.1 dev net1;" \
    "$(ip -n "$A" route show table 100 | sed 's/ *$//' | sort | tr '\n' ';')"
check_eq "table 101: net1's IPv6 routes and the default route through its gateway" \
    "default via fd00:71::1 dev net1 metric 1024 pref medium;fd00:71::/64 dev net1 proto kernel metric 256 pref medium;fe80::/64 dev net1 proto kernel metric 256 pref medium;" \
    "$(ip -n "$A" -6 route show table 101 | sed 's/ *$//' | sort | tr '\n' ';')"
check_eq "main: no route on net1 but IPv6 link-local" "fe80::/64 proto kernel metric 256 pref medium" \
    "$(ip -n "$A" route show dev net1; ip -n "$A" -6 route show dev net1 | sed 's/ *$//')"
check_eq "traffic from net1's address to 198.51.100.9 leaves by net1" net1 "$(route_dev "$A" 198.51.100.9 192.168.71.5)"
check_eq "... from eth0's, by eth0" eth0 "$(route_dev "$A" 198.51.100.9 10.60.0.5)"
check "a ping from 192.168.71.5 reaches 198.51.100.9 (only the router behind net1 has it)" ip netns exec "$A" ping -c1 -W2 -I 192.168.71.5 198.51.100.9
check "a ping from fd00:71::5 reaches 2001:db8:9::9" ip netns exec "$A" ping -6 -c1 -W2 -I fd00:71::5 2001:db8:9::9
check "... a ping to 198.51.100.9 without a source goes by eth0, where it is unknown" bash -c "! ip netns exec $A ping -c1 -W1 198.51.100.9 >/dev/null 2>&1"

echo "sbr: side by side with the reference"
run ref ADD "$R" "$D/r.json"
check_eq "the reference's ADD exits 0" 0 "$TB_RC"
check_eq "rules and tables as the reference lays them out (of each table, its family's routes)" \
    "$(layout "$R" | only_family)" "$(layout "$A" | only_family)"
check_eq "... the reference's main table loses net1's fe80::/64; ours keeps it" "" "$(ip -n "$R" -6 route show dev net1)"

echo "sbr: ADD again, CHECK"
run ours ADD "$A" "$D/a.json"
check_eq "a second ADD exits 0" 0 "$TB_RC"
check_eq "... and adds no second rule" 1 "$(ip -n "$A" rule | grep -c 'from 192.168.71.5')"
cp "$D/a.json" "$D/check.json"
run ours CHECK "$A" "$D/check.json"
check_eq "check exits 0 $TB_OUT" 0 "$TB_RC"
ip -n "$A" route del default via 192.168.71.1 table 100
run ours CHECK "$A" "$D/check.json"
check "check after table 100 lost its default route fails (108) naming it" fails_with 108 "table 100 (from 192.168.71.5) has no default route via 192.168.71.1"
ip -n "$A" route add default via 192.168.71.1 dev net1 table 100
ip -n "$A" rule del from 192.168.71.5 lookup 100
run ours CHECK "$A" "$D/check.json"
check "check after the rule was deleted by hand fails (108) naming the address" fails_with 108 "192.168.71.5"
ip -n "$A" rule add from 192.168.71.5 lookup 100

echo "sbr: DEL"
run ours DEL "$A" "$D/a.json"
check_eq "del exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "no rule from net1's addresses left" "" "$(ip -n "$A" rule | grep 192.168.71.5; ip -n "$A" -6 rule | grep fd00:71::5)"
check_eq "tables 100 and 101 emptied" "" "$(ip -n "$A" route show table 100 2>/dev/null; ip -n "$A" -6 route show table 101 2>/dev/null)"
check_eq "net1's routes are back in the main table, as before ADD" "$main_a" "$( { ip -n "$A" route; ip -n "$A" -6 route; } | sort)"
run ours ADD "$A" "$D/a.json"
check_eq "ADD after DEL exits 0 (the interface as it was) $TB_OUT" 0 "$TB_RC"
run ours DEL "$A" "$D/a.json"
run ours DEL "$A" "$D/a.json"
check_eq "DEL again exits 0" 0 "$TB_RC"
run ours DEL "" "$D/a.json"
check_eq "DEL with CNI_NETNS empty exits 0" 0 "$TB_RC"
CNI_PATH="$D/bin" tb_plugin "$H" "$D/bin/sbr" DEL c1 /run/netns/swcni-sb-gone-$TB_ID net1 "$D/a.json"
check_eq "DEL with the netns gone exits 0" 0 "$TB_RC"
run ours DEL "$R" "$D/r.json"
check_eq "our DEL of the reference's ADD exits 0" 0 "$TB_RC"
check_eq "... and removes its rules" "" "$(ip -n "$R" rule | grep 192.168.71.5; ip -n "$R" -6 rule | grep fd00:71::5)"

echo "sbr: table, gateways, addSourceHints, a table in use"
bed b; B=$BED
ip -n "$B" route add 10.99.0.0/16 via 10.60.0.1 dev eth0 table 100   # an administrator's table 100
conf "$D/b.json" "$B" '{"gateways":["192.168.71.254"]}'
run ours ADD "$B" "$D/b.json"
check_eq "add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "table 100 holds a route: the addresses get 101 and 102" "101 102" \
    "$(ip -n "$B" rule | awk '/192.168.71.5/ {print $NF}') $(ip -n "$B" -6 rule | awk '/fd00:71::5/ {print $NF}')"
check_eq "... the administrator's table 100 is untouched" "10.99.0.0/16 via 10.60.0.1 dev eth0" "$(ip -n "$B" route show table 100 | sed 's/ *$//')"
check_eq "gateways: the IPv4 table's default route is the configured gateway" "default via 192.168.71.254 dev net1" \
    "$(ip -n "$B" route show table 101 default | sed 's/ *$//')"
check_eq "... the IPv6 one is prevResult's (no IPv6 gateway configured)" "default via fd00:71::1 dev net1 metric 1024 pref medium" \
    "$(ip -n "$B" -6 route show table 102 default | sed 's/ *$//')"
run ours DEL "$B" "$D/b.json"
bed c; C=$BED
conf "$D/c.json" "$C" '{"addSourceHints":true}'
run ours ADD "$C" "$D/c.json"
check_eq "addSourceHints: add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "... main keeps net1's subnet routes with the address as source hint, no gateway route" \
    "192.168.71.0/24 proto kernel scope link src 192.168.71.5;fd00:71::/64 proto kernel src fd00:71::5 metric 256 pref medium;fe80::/64 proto kernel metric 256 pref medium;" \
    "$( { ip -n "$C" route show dev net1; ip -n "$C" -6 route show dev net1 | sort; } | sed 's/ *$//' | tr '\n' ';')"
check_eq "... so traffic to the router's subnet without a source picks net1's address" 192.168.71.5 \
    "$(ip -n "$C" -j route get 192.168.71.1 | jq -r '.[0].prefsrc')"
run ours DEL "$C" "$D/c.json"
conf "$D/t.json" "$C" '{"table":500}'
ip -n "$C" route add default via 192.168.71.1 dev net1 table 500
main_before=$(ip -n "$C" route; ip -n "$C" -6 route)
run ours ADD "$C" "$D/t.json"
check_eq "table 500: add exits 0 $TB_OUT" 0 "$TB_RC"
check_eq "... rules to table 500 only" "from 192.168.71.5 lookup 500;from fd00:71::5 lookup 500;" \
    "$( { ip -n "$C" rule | grep -o 'from 192.168.71.5.*'; ip -n "$C" -6 rule | grep -o 'from fd00:71::5.*'; } | tr '\n' ';')"
check_eq "... and the main table is left alone" "$main_before" "$(ip -n "$C" route; ip -n "$C" -6 route)"
check_eq "... traffic from net1's address uses table 500" net1 "$(route_dev "$C" 198.51.100.9 192.168.71.5)"
ip -n "$C" rule add from 192.168.71.5 lookup 600
run ours DEL "$C" "$D/t.json"
check_eq "DEL with table removes that table's rules, not another's" "from 192.168.71.5 lookup 600" \
    "$(ip -n "$C" rule | grep -o 'from 192.168.71.5.*')"
check_eq "... and leaves table 500's routes to the administrator" "default via 192.168.71.1 dev net1" "$(ip -n "$C" route show table 500 | sed 's/ *$//')"

echo "sbr: two interfaces, two ADDs at once"
bed e; E=$BED
ip -n "$E" link add net2 type veth peer name n2p
ip -n "$E" addr add 192.168.72.5/24 dev net2
ip -n "$E" link set net2 up; ip -n "$E" link set n2p up
jq --arg ns "/run/netns/$E" '.prevResult = {cniVersion:"1.0.0",interfaces:[{name:"net2",sandbox:$ns}],ips:[{address:"192.168.72.5/24",gateway:"192.168.72.1",interface:0}]}' \
    "$D/a.json" > "$D/e2.json"
conf "$D/e1.json" "$E"
ip netns exec "$H" env CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS="/run/netns/$E" CNI_IFNAME=net1 "$D/bin/sbr" < "$D/e1.json" > "$D/e1.out" &
p1=$!
ip netns exec "$H" env CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS="/run/netns/$E" CNI_IFNAME=net2 "$D/bin/sbr" < "$D/e2.json" > "$D/e2.out" &
p2=$!
wait "$p1"; r1=$?; wait "$p2"; r2=$?
check_eq "both ADDs exit 0" "0 0" "$r1 $r2"
check_eq "three addresses, three tables" "100 101 102" "$( { ip -n "$E" rule; ip -n "$E" -6 rule; } | awk '/from (192.168|fd00)/ {print $NF}' | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "net2's table holds net2's routes" "192.168.72.0/24 dev net2 proto kernel scope link src 192.168.72.5;default via 192.168.72.1 dev net2;" \
    "$(ip -n "$E" route show table "$(ip -n "$E" rule | awk '/192.168.72.5/ {print $NF}')" | sed 's/ *$//' | sort | tr '\n' ';')"

echo "sbr: every spec version"
bed v; V=$BED
for v in 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; do
    if [ "$v" = 0.1.0 ] || [ "$v" = 0.2.0 ]; then
        prev='{"cniVersion":"'$v'","ip4":{"ip":"192.168.71.5/24","gateway":"192.168.71.1"},"ip6":{"ip":"fd00:71::5/64","gateway":"fd00:71::1"}}'
    else
        prev=$(jq -c --arg v "$v" '.prevResult | .cniVersion = $v' "$D/a.json" | sed "s|/run/netns/$A|/run/netns/$V|")
    fi
    jq -n --arg v "$v" --argjson p "$prev" '{cniVersion:$v,name:"sbr-net",type:"sbr",prevResult:$p}' > "$D/v.json"
    run ours ADD "$V" "$D/v.json"
    add_rc=$TB_RC
    rules=$( { ip -n "$V" rule; ip -n "$V" -6 rule; } | grep -c 'from 192.168.71.5 lookup 100\|from fd00:71::5 lookup 101')
    check_rc=0
    if printf '%s\n' 0.4.0 "$v" | sort -V -C; then run ours CHECK "$V" "$D/v.json"; check_rc=$TB_RC; fi
    run ours DEL "$V" "$D/v.json"
    check_eq "$v: ADD, a rule per address, CHECK (from 0.4.0), DEL, nothing left" "0 2 0 0 0" \
        "$add_rc $rules $check_rc $TB_RC $( { ip -n "$V" rule; ip -n "$V" -6 rule; } | grep -c 'lookup 10[01]')"
done

echo "sbr: a failed ADD is rolled back; refusals"
bed f; F=$BED
main_before=$(ip -n "$F" route; ip -n "$F" -6 route)
conf "$D/f.json" "$F" '{"gateways":["fd00:99::1"]}'
run ours ADD "$F" "$D/f.json"
check "a gateway the interface cannot reach fails the ADD (kernel, 103... or its code) naming it" bash -c "[ $TB_RC -ne 0 ] && grep -q 'fd00:99::1' <<<'$TB_OUT'"
check_eq "... no rule left" "" "$(ip -n "$F" rule | grep 192.168.71.5; ip -n "$F" -6 rule | grep fd00:71::5)"
check_eq "... no table left" "" "$(ip -n "$F" route show table 100 2>/dev/null; ip -n "$F" -6 route show table 101 2>/dev/null)"
check_eq "... the main table as it was" "$main_before" "$(ip -n "$F" route; ip -n "$F" -6 route)"
jq -n '{cniVersion:"1.0.0",name:"sbr-net",type:"sbr"}' > "$D/noprev.json"
run ours ADD "$F" "$D/noprev.json"
check "no prevResult: code 7" fails_with 7 "chained plugin"
run ours ADD "$F" "$D/f.json" net9
check "prevResult has no address on CNI_IFNAME: code 7 naming it" fails_with 7 "net9"
conf "$D/g.json" "$F" '{"gateways":["192.168.71.1","192.168.71.2"]}'
run ours ADD "$F" "$D/g.json"
check "two IPv4 gateways: code 7 naming gateways[1]" fails_with 7 "gateways[1]"
conf "$D/g.json" "$F" '{"table":500,"addSourceHints":true}'
run ours ADD "$F" "$D/g.json"
check "addSourceHints with table: code 7 (it would do nothing)" fails_with 7 "addSourceHints"
tb_finish
