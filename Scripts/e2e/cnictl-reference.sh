#!/usr/bin/env bash
# cnictl is a correct runtime: it drives the Debian reference plugins (/usr/lib/cni) through a
# bridge + portmap conflist into fresh namespaces. ADD, CHECK, DEL exit 0, the netns gets its
# address, the port mapping carries a TCP connection, DEL leaves no cache, rule or allocation.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
REF=/usr/lib/cni
[ -x "$REF/bridge" ] || { echo "cnictl-reference: 0 passed, 1 failed ($REF/bridge missing: containernetworking-plugins)"; exit 1; }

tb_tmpdir D
mkdir -p "$D/net.d" "$D/cache"
tb_netns swcni-host; H=$TB_LAST
tb_netns swcni-a; A=$TB_LAST
tb_netns swcni-b; B=$TB_LAST
export NETCONFPATH="$D/net.d" CNI_PATH="$REF"
cat > "$D/net.d/10-mapped.conflist" <<JSON
{"cniVersion":"1.0.0","name":"mapped","plugins":[
  {"type":"bridge","bridge":"swbr$TB_ID","isGateway":true,"ipMasq":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.231.0.0/24"}]],"dataDir":"$D/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}
JSON
# Debian's portmap 1.1.1 CHECK of an IPv4 container also looks for its chain in ip6tables and fails
# depending on that table's state (fixed upstream later), so CHECK runs on a network of plugins
# that check reliably.
cat > "$D/net.d/20-plain.conflist" <<JSON
{"cniVersion":"1.0.0","name":"plain","plugins":[
  {"type":"bridge","bridge":"swbp$TB_ID","isGateway":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.232.0.0/24"}]],"dataDir":"$D/ipam"}}]}
JSON
ctl() { ip netns exec "$H" "$BIN/cnictl" "$@" --cache-dir "$D/cache"; }

echo "cnictl + reference bridge/portmap"
export CAP_ARGS='{"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}'
out=$(ctl add mapped "/run/netns/$A"); rc=$?
check_eq "add exits 0" 0 "$rc"
addr=$(ip -n "$A" -j addr show eth0 | jq -r '.[0].addr_info[] | select(.family=="inet") | .local')
check_eq "container has the address of the result" "$(jq -r '.ips[0].address' <<<"$out" | cut -d/ -f1)" "$addr"
check "result names the container interface with its sandbox" \
    test "$(jq -r '.interfaces[2].sandbox' <<<"$out")" = "/run/netns/$A"
check "result cached in libcni's format" \
    test "$(jq -r .kind "$D/cache/results/mapped-$(ctl list mapped | awk 'NR==2{print $2}')-eth0")" = cniCacheV1

# A TCP server in the container, reached from the host through the mapped port on the gateway.
tb_bg "$A" /usr/bin/python3 -c '
import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(5)
while True:
    c,_=s.accept(); c.sendall(b"hello from the container\n"); c.close()'
tb_wait_tcp "$A" 0.0.0.0 80
reply=$(tb_in "$H" timeout 5 bash -c 'exec 3<>/dev/tcp/10.231.0.1/18080; cat <&3' 2>/dev/null)
check_eq "host port 18080 reaches the container's port 80" "hello from the container" "$reply"
check "DNAT rule to the container, tagged with its cnitool id" \
    bash -c "ip netns exec $H iptables -t nat -S | grep -q 'cnitool-' && ip netns exec $H iptables -t nat -S | grep -q -- '--to-destination $addr:80'"

out=$(ctl add mapped "/run/netns/$B"); rc=$?
check_eq "second container added" 0 "$rc"
check "containers reach each other" bash -c "ip netns exec $B ping -c1 -W2 $addr >/dev/null"

check_eq "list shows both attachments" 2 "$(ctl list mapped | tail -n +2 | wc -l)"
ctl del mapped "/run/netns/$A"; check_eq "del exits 0" 0 "$?"
ctl del mapped "/run/netns/$A"; check_eq "repeated del exits 0" 0 "$?"
check_eq "only B remains cached" 1 "$(ctl list mapped | tail -n +2 | wc -l)"
check "A's DNAT rule is gone" bash -c "! ip netns exec $H iptables -t nat -S | grep -q '$addr:80'"
check "A's address released" test ! -e "$D/ipam/mapped/$addr"

# GC: B's namespace disappears without a DEL; gc deletes its cached attachment.
ip netns del "$B"
ctl gc mapped; check_eq "gc exits 0" 0 "$?"
check_eq "cache empty after gc" 0 "$(ls "$D/cache/results" | wc -l)"
check_eq "no allocation left" "last_reserved_ip.0 lock" "$(ls "$D/ipam/mapped" | sort | tr '\n' ' ' | sed 's/ $//')"

echo "cnictl CHECK against the reference bridge"
unset CAP_ARGS
ctl add plain "/run/netns/$A" >/dev/null; check_eq "add exits 0" 0 "$?"
ctl check plain "/run/netns/$A"; check_eq "check exits 0" 0 "$?"
ip -n "$A" link del eth0
ctl check plain "/run/netns/$A" 2>/dev/null; check "check fails once the interface is gone" test "$?" -ne 0
ctl del plain "/run/netns/$A"; check_eq "del exits 0" 0 "$?"
check_eq "cache empty after del" 0 "$(ls "$D/cache/results" | wc -l)"

echo "cnictl errors"
ctl add nosuchnet "/run/netns/$A" 2>"$D/err"; rc=$?
check "unknown network fails and names it" bash -c "[ $rc -ne 0 ] && grep -q 'no network \"nosuchnet\"' $D/err"
CAP_ARGS='{bad' ctl add plain "/run/netns/$A" 2>"$D/err"; rc=$?
check "malformed CAP_ARGS fails clearly" bash -c "[ $rc -ne 0 ] && grep -q 'invalid CAP_ARGS' $D/err"

tb_finish
