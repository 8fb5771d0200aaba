#!/usr/bin/env bash
# The bandwidth plugin on a bridge network, run as a runtime runs it (cnictl with the bandwidth
# capability), in a throwaway host namespace: real transfers (iperf3) towards and from a shaped
# container come within 10% of the configured rates while an unshaped neighbour is not limited;
# CHECK, DEL (also with CNI_NETNS empty, also of the bandwidth plugin alone on a live veth, also
# of what the reference plugin made), GC by the IFB's alias, a failed ADD that leaves nothing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_cni_dirs bridge host-local bandwidth
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"
tb_netns swcni-bwh; H=$TB_LAST
tb_netns swcni-bwa; A=$TB_LAST
tb_netns swcni-bwb; B=$TB_LAST
cat > "$D/net.d/10-bw.conflist" <<JSON
{"cniVersion":"1.1.0","name":"bw","plugins":[
  {"type":"bridge","bridge":"swbw$TB_ID","isGateway":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.83.0.0/24"}]],"dataDir":"$D/ipam"}},
  {"type":"bandwidth","capabilities":{"bandwidth":true}}]}
JSON
IN=8000000 OUT=4000000
LIMITS="{\"bandwidth\":{\"ingressRate\":$IN,\"ingressBurst\":800000,\"egressRate\":$OUT,\"egressBurst\":400000}}"
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
shaped() { ip netns exec "$H" env CAP_ARGS="$LIMITS" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
veth_of() { jq -r '[.interfaces[] | select(.sandbox == null and (.name | startswith("veth")))][0].name' "$1"; }
ifbs() { ip -n "$H" -j link show type ifb | jq -r '.[].ifname' | sort | tr '\n' ' '; }
# Each transfer has a server of its own on a port of its own: a one-off server that is still
# closing after the previous transfer listens on the same port for a moment, and a client that
# connects to it gets an error instead of a transfer.
mbits() {  # mbits CLIENT-NS SERVER-NS ADDRESS PORT [-R]: the received rate in Mbit/s over 4 s, the first (slow start, the initial burst) left out
    tb_bg "$2" iperf3 -s -1 -p "$4" >/dev/null 2>&1
    tb_wait_tcp "$2" 0.0.0.0 "$4" || { echo 0; return; }
    ip netns exec "$1" iperf3 -c "$3" -p "$4" -t 4 -O 1 -J ${5:-} 2>/dev/null | jq '.end.sum_received.bits_per_second / 1e6'
}
within10() { awk -v m="$1" -v want="$2" 'BEGIN { exit !(m >= want * 0.9 && m <= want * 1.1) }'; }

echo "bandwidth: ADD of a shaped container"
shaped add bw "/run/netns/$A" > "$D/a.json" 2>"$D/err"; rc=$?
check_eq "add exits 0 $(head -c 300 "$D/err")" 0 "$rc"
VA=$(veth_of "$D/a.json")
IFB=$(jq -r '.interfaces[-1].name' "$D/a.json")
check "the result lists the IFB (bwp + 12 hex digits) last" bash -c "[[ '$IFB' =~ ^bwp[0-9a-f]{12}$ ]]"
check "tbf on the host veth at the ingress rate" bash -c "tc -n $H -j qdisc show dev $VA | jq -e '.[] | select(.kind == \"tbf\" and .root == true and .options.rate == 1000000)' >/dev/null"
check "tbf on the IFB at the egress rate" bash -c "tc -n $H -j qdisc show dev $IFB | jq -e '.[] | select(.kind == \"tbf\" and .options.rate == 500000)' >/dev/null"
check "the host veth's ingress is redirected to the IFB" bash -c "tc -n $H filter show dev $VA ingress | grep -q 'Egress Redirect to device $IFB'"
check "the IFB carries the alias GC reads" bash -c "ip -n $H -d link show $IFB | grep -q 'alias swift-cni bandwidth network=bw container='"
ctl add bw "/run/netns/$B" > "$D/b.json" 2>"$D/err"; rc=$?
check_eq "add of an unshaped neighbour (no capability argument) exits 0 $(head -c 300 "$D/err")" 0 "$rc"
VB=$(veth_of "$D/b.json")
check "... whose veth has no tbf" bash -c "! tc -n $H -j qdisc show dev $VB | jq -e '.[] | select(.kind == \"tbf\")' >/dev/null"

echo "bandwidth: real transfers"
a=$(jq -r '.ips[0].address | split("/")[0]' "$D/a.json"); b=$(jq -r '.ips[0].address | split("/")[0]' "$D/b.json")
to=$(mbits "$H" "$A" "$a" 5201); from=$(mbits "$H" "$A" "$a" 5202 -R); free=$(mbits "$H" "$B" "$b" 5203)
echo "    to the container $to Mbit/s (limit $((IN / 1000000))), from it $from (limit $((OUT / 1000000))), unshaped neighbour $free"
check "towards the container within 10% of $((IN / 1000000)) Mbit/s" within10 "$to" $((IN / 1000000))
check "from the container within 10% of $((OUT / 1000000)) Mbit/s" within10 "$from" $((OUT / 1000000))
check "the unshaped neighbour is not limited (over 5x the shaped rate)" awk -v f="$free" -v t="$to" 'BEGIN { exit !(f > 5 * t) }'

echo "bandwidth: CHECK"
shaped check bw "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "check exits 0 $(head -c 300 "$D/err")" 0 "$rc"
tc -n "$H" qdisc del dev "$VA" ingress
shaped check bw "/run/netns/$A" 2>"$D/err"; rc=$?
check "check without the redirect fails naming it" bash -c "[ $rc -ne 0 ] && grep -q 'not redirected to $IFB' '$D/err'"
tc -n "$H" qdisc change dev "$VA" root tbf rate 9mbit burst 100000 latency 25ms
shaped check bw "/run/netns/$A" 2>"$D/err"; rc=$?
check "check after the rate was changed by hand fails naming the rates" bash -c "[ $rc -ne 0 ] && grep -q 'rate 9000000 bit/s.*configuration says rate 8000000 bit/s' '$D/err'"

echo "bandwidth: DEL"
shaped del bw "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check_eq "the IFB is gone" "" "$(ifbs)"
shaped del bw "/run/netns/$A" 2>"$D/err"; rc=$?
check_eq "a second del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
ctl del bw "/run/netns/$B" >/dev/null 2>&1

# The bandwidth plugin alone, as the runtime runs it in a chain, on a live attachment.
plugin() {  # plugin COMMAND NETNS CONF [VAR=VALUE...]: our bandwidth as the runtime runs it
    local cmd=$1 ns=$2 conf=$3; shift 3
    tb_plugin "$H" "$D/bin/bandwidth" "$cmd" ctr-a "$ns" eth0 "$conf" "$@"
}
conf() {  # conf PREV-FILE [VALID]: the bandwidth configuration with prevResult (and GC's valid list)
    jq -nc --argjson lim "$LIMITS" --slurpfile prev "$1" --argjson valid "${2:-null}" \
        '{cniVersion:"1.1.0",name:"bw",type:"bandwidth",runtimeConfig:$lim,prevResult:$prev[0]}
         + (if $valid == null then {} else {"cni.dev/valid-attachments":$valid} end)' > "$D/bw.json"
}
ip netns exec "$H" env CNI_COMMAND=ADD CNI_CONTAINERID=ctr-a CNI_NETNS="/run/netns/$A" CNI_IFNAME=eth0 CNI_PATH="$D/bin" \
    "$D/bin/bridge" < <(jq -c '.plugins[0] + {cniVersion:"1.1.0",name:"bw"}' "$D/net.d/10-bw.conflist") > "$D/prev.json"
VA=$(veth_of "$D/prev.json")
conf "$D/prev.json"
plugin ADD "/run/netns/$A" "$D/bw.json"; check_eq "bandwidth ADD alone exits 0" 0 "$TB_RC"
plugin DEL "/run/netns/$A" "$D/bw.json"; check_eq "bandwidth DEL alone exits 0 ($TB_OUT)" 0 "$TB_RC"
check "... removes the tbf and the ingress qdisc of the live veth" bash -c "! tc -n $H -j qdisc show dev $VA | jq -e '.[] | select(.kind == \"tbf\" or .kind == \"ingress\")' >/dev/null"
check_eq "... and the IFB" "" "$(ifbs)"
plugin ADD "/run/netns/$A" "$D/bw.json"
plugin DEL "" "$D/bw.json"; check_eq "DEL with CNI_NETNS empty exits 0 ($TB_OUT)" 0 "$TB_RC"
check_eq "... and removes the IFB" "" "$(ifbs)"
# (With CNI_NETNS empty the namespace and its veth are gone in real life; here they stay.)
tc -n "$H" qdisc del dev "$VA" root; tc -n "$H" qdisc del dev "$VA" ingress

echo "bandwidth: GC"
plugin ADD "/run/netns/$A" "$D/bw.json"
conf "$D/prev.json" '[{"containerID":"ctr-a","ifname":"eth0"}]'
plugin GC "" "$D/bw.json"; check_eq "GC with the container valid exits 0" 0 "$TB_RC"
check "... and keeps its IFB" bash -c "[ -n '$(ifbs)' ]"
conf "$D/prev.json" '[]'
plugin GC "" "$D/bw.json"; check_eq "GC with no valid attachment exits 0" 0 "$TB_RC"
check_eq "... and removes the IFB" "" "$(ifbs)"
plugin DEL "/run/netns/$A" "$D/bw.json"
conf "$D/prev.json"

echo "bandwidth: a failed ADD leaves nothing"
tc -n "$H" qdisc add dev "$VA" handle ffff: ingress
plugin ADD "/run/netns/$A" "$D/bw.json"
echo "$TB_OUT" > "$D/out.json"
check "ADD on a veth with someone's ingress qdisc fails with 107 naming it" \
    jq -e --arg v "$VA" '.code == 107 and (.msg | contains($v))' "$D/out.json"
check "... and leaves no tbf on the veth (the ingress shaping it did is undone)" bash -c "! tc -n $H -j qdisc show dev $VA | jq -e '.[] | select(.kind == \"tbf\")' >/dev/null"
check_eq "... and no IFB" "" "$(ifbs)"
tc -n "$H" qdisc del dev "$VA" ingress

echo "bandwidth: in place of the reference plugin"
# Debian's reference (1.1.1) speaks up to 1.0.0.
jq -c '.cniVersion = "1.0.0" | .prevResult.cniVersion = "1.0.0"' "$D/bw.json" > "$D/bw-1.0.json"
out=$(ip netns exec "$H" env CNI_COMMAND=ADD CNI_CONTAINERID=ctr-a CNI_NETNS="/run/netns/$A" CNI_IFNAME=eth0 CNI_PATH="$D/bin" \
    /usr/lib/cni/bandwidth < "$D/bw-1.0.json" 2>&1)
check_eq "the reference's ADD exits 0 ($out)" 0 "$?"
made=$(ifbs)
check_eq "the reference's ADD made the IFB name ours computes" "bwp$(printf '%s' bwctr-a | sha512sum | cut -c1-12) " "$made"
plugin DEL "/run/netns/$A" "$D/bw.json"; check_eq "our DEL of the reference's ADD exits 0" 0 "$TB_RC"
check_eq "... and removes its IFB ($made)" "" "$(ifbs)"
check "... and its qdiscs" bash -c "! tc -n $H -j qdisc show dev $VA | jq -e '.[] | select(.kind == \"tbf\" or .kind == \"ingress\")' >/dev/null"
tb_finish
