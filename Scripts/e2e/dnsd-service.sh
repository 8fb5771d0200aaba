#!/usr/bin/env bash
# cni-dnsd as a service (contrib/systemd/cni-dnsd.service): the unit passes systemd-analyze
# verify; started the way the unit starts it (--persist) in a throwaway host netns, the dnsname
# plugin uses it instead of starting its own, it keeps running when the last network goes,
# reloads on SIGHUP, and serves the next network.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
UNIT="$here/../../contrib/systemd/cni-dnsd.service"
tb_cni_dirs bridge host-local dnsname
mkdir -p "$D/dns"
export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin"

echo "dnsd-service: the unit"
sed "s|/opt/cni/bin/cni-dnsd|$BIN/cni-dnsd|" "$UNIT" > "$D/cni-dnsd.service"
out=$(systemd-analyze verify "$D/cni-dnsd.service" 2>&1); rc=$?
check_eq "systemd-analyze verify: no error, no warning" "0 " "$rc $out"
check "ExecStart runs the responder with --persist on /run/cni/dns" grep -qx 'ExecStart=/opt/cni/bin/cni-dnsd --dir /run/cni/dns --persist' "$UNIT"

echo "dnsd-service: started as the unit starts it"
tb_netns swcni-svh; H=$TB_LAST
tb_netns swcni-sva; A=$TB_LAST
tb_bg "$H" "$BIN/cni-dnsd" --dir "$D/dns" --persist 2>/dev/null
for i in $(seq 1 100); do [ -S "$D/dns/dnsd.sock" ] && ip netns exec "$H" "$BIN/cnictl" dns stats --dir "$D/dns" >/dev/null 2>&1 && break; sleep 0.05; done
check "it answers on the control socket with no network yet" bash -c "ip netns exec $H $BIN/cnictl dns stats --dir $D/dns >/dev/null"
daemon=$(cat "$D/dns/dnsd.pid")
cat > "$D/net.d/10-svc.conflist" <<JSON
{"cniVersion":"1.1.0","name":"svc","plugins":[
  {"type":"bridge","bridge":"swsv$TB_ID","isGateway":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.86.0.0/24"}]],"dataDir":"$D/ipam"}},
  {"type":"dnsname","runDir":"$D/dns"}]}
JSON
ctl() { ip netns exec "$H" env CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=web" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }
ctl add svc "/run/netns/$A" >/dev/null 2>"$D/err"; rc=$?
check_eq "add exits 0 $(head -c 200 "$D/err")" 0 "$rc"
check_eq "the plugin used the service's responder (same pid)" "$daemon" "$(cat "$D/dns/dnsd.pid")"
check_eq "web resolves" "10.86.0.2" "$(ip netns exec "$A" dig +short +time=2 +tries=1 @10.86.0.1 web)"
ctl del svc "/run/netns/$A"; check_eq "del exits 0" 0 "$?"
check "the service keeps running with no network left" kill -0 "$daemon"
kill -HUP "$daemon"
check "... and after SIGHUP" bash -c "ip netns exec $H $BIN/cnictl dns stats --dir $D/dns >/dev/null"
ctl add svc "/run/netns/$A" > "$D/add.json" 2>"$D/err"; rc=$?
check_eq "the next add exits 0 $(head -c 200 "$D/err")" 0 "$rc"
addr=$(jq -r '.ips[0].address' "$D/add.json" | cut -d/ -f1)
check_eq "... and is served by the same responder" "$addr $daemon" \
    "$(ip netns exec "$A" dig +short +time=2 +tries=1 @10.86.0.1 web) $(cat "$D/dns/dnsd.pid")"
ctl del svc "/run/netns/$A"; check_eq "del exits 0" 0 "$?"
tb_finish
