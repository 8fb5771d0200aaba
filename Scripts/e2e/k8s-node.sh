#!/usr/bin/env bash
# Kubernetes nodes on swift-cni alone: three hosts (namespaces on an underlay bridge) with etcd and
# cni-overlayd on each writing flanneld's subnet file, and the conflists k3s and kube-flannel
# write, unchanged (their default subnetFile and dataDir, each host's own through a private mount
# of /run/flannel and /var/lib/cni), run by real clients with our binaries only on CNI_PATH:
# go-cni as containerd's CRI calls it (a hostPort and the bandwidth capability) with k3s's list
# on host 1 and with kube-flannel's on host 2, cnitool with kube-flannel's on host 2 and with
# k3s's on host 3, and `ctr run --cni` with k3s's on host 3 (containerd, private, there). Pods ping across
# hosts, the shaped pod's transfers come within 10% of its rate, the hostPort reaches its pod from
# another host; DEL and GC leave nothing (qdiscs, IFBs, nftables elements, kept configurations,
# reservations).
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SWCNI_CD_NS:-}" ]; then
    . "$here/../lib/deps.sh"
    check_tools || { echo "k8s-node: 0 passed, 1 failed (tools missing, above)"; exit 1; }
    . "$here/../lib/containerd.sh"
    cd_outer "$0" "$@"   # a private mount namespace; /run/flannel made and removed when missing
    exit $?
fi
. "$here/../lib/netns.sh"
. "$here/../lib/overlay.sh"
. "$here/../lib/containerd.sh"
. "$here/../lib/cnitool.sh"
build_cnitool >/dev/null 2>&1 || { echo "k8s-node: 0 passed, 1 failed (cnitool could not be built)"; exit 1; }
client="$SWIFT_CNI_ROOT/.build-gocni/gocni-client"
[ -x "$client" ] && [ ! "$here/../lib/gocni-client/main.go" -nt "$client" ] || bash "$here/go-cni.sh" >/dev/null 2>&1
[ -x "$client" ] || { echo "k8s-node: 0 passed, 1 failed (the go-cni client does not build)"; exit 1; }
tb_cni_dirs flannel bridge host-local portmap bandwidth loopback
# /var/lib/cni of this namespace: a tmpfs over /var/lib when the machine has none.
[ -d /var/lib/cni ] || { mount -t tmpfs -o size=8m swcni-k8s /var/lib && mkdir /var/lib/cni; }
EX="$here/../../netconf-examples"
ov_underlay 77
ov_etcd || { bad "etcd did not start: $(tail -c 400 "$D/etcd.log")"; tb_finish; exit 1; }
for i in 1 2 3; do
    ov_host "$i"
    mkdir -p "$D/host$i/run" "$D/host$i/varlib" "$D/host$i/net.d"
    ov_agent "$i" --network 10.244.0.0/16 --vni 1 --underlay eth0 --resync 60 --lease-ttl 5 --subnet-file "$D/host$i/run/subnet.env"
done
cp "$EX/k3s-flannel.conflist" "$D/host1/net.d/10-flannel.conflist"
jq -n '{name:"cbr0",cniVersion:"0.3.1",plugins:[{type:"flannel",delegate:{hairpinMode:true,isDefaultGateway:true}},
    {type:"portmap",capabilities:{portMappings:true}}]}' > "$D/host2/net.d/10-flannel.conflist"   # kube-flannel.yml's
cp "$EX/k3s-flannel.conflist" "$D/host3/net.d/10-flannel.conflist"
# Host 3 is containerd's: ctr reads /etc/cni/net.d and /opt/cni/bin, and runs in the mount
# namespace of containerd (which must see the task's netns): host 3's /run/flannel and
# /var/lib/cni are this namespace's; the other hosts' are mounted over them for their clients.
cd_mounts || { echo "k8s-node: 0 passed, 1 failed (the mounts of /opt and /etc/cni/net.d)"; exit 1; }
cp "$EX/k3s-flannel.conflist" "$D/net.d/10-flannel.conflist"
mount --bind "$D/host3/run" /run/flannel && mount --bind "$D/host3/varlib" /var/lib/cni
cd_start || { echo "k8s-node: 0 passed, 1 failed (containerd did not start)"; exit 1; }
cd_import_busybox || { echo "k8s-node: 0 passed, 1 failed (the busybox image)"; exit 1; }
on_host() {  # on_host I CMD...: CMD in host I's namespace, with its /run/flannel and /var/lib/cni
    local i=$1; shift
    unshare --mount --propagation private bash -c \
        'mount --bind "$0/run" /run/flannel && mount --bind "$0/varlib" /var/lib/cni && exec ip netns exec "$1" "${@:2}"' \
        "$D/host$i" "${OV_H[$i]}" "$@"
}
gocni() { local i=$1; shift; on_host "$i" "$client" "$1" "$D/host$i/net.d" "$D/bin" "${@:2}"; }
cnit() { local i=$1; shift; on_host "$i" env NETCONFPATH="$D/host$i/net.d" CNI_PATH="$D/bin" "$CNITOOL" "$@"; }
RATE=8000000 BURST=800000

echo "k8s-node: three nodes, their agents' subnet files"
for i in 1 2 3; do check "host$i: subnet.env written" until_ok test -s "$D/host$i/run/subnet.env" || cat "$D/agent$i.log"; done

echo "k8s-node: pods"
ip -n "${OV_C[1]}" link set lo down
out=$(gocni 1 setup "pod1-$TB_ID" "/run/netns/${OV_C[1]}" web 8080:80 "$RATE:$BURST" 2>"$D/err"); rc=$?
check_eq "host1: go-cni Setup with k3s's conflist, a hostPort and bandwidth exits 0 $(head -c 300 "$D/err")" 0 "$rc"
P1=$(awk '$1 == "eth0" {print $2}' <<<"$out")
cnit 2 add cbr0 "/run/netns/${OV_C[2]}" > "$D/p2.json" 2>"$D/err"; rc=$?
check_eq "host2: cnitool add with kube-flannel's conflist exits 0 $(head -c 300 "$D/err")" 0 "$rc"
cnit 3 add cbr0 "/run/netns/${OV_C[3]}" > "$D/p3.json" 2>"$D/err"; rc=$?
check_eq "host3: cnitool add with k3s's conflist exits 0 $(head -c 300 "$D/err")" 0 "$rc"
P2=$(ov_addr "${OV_C[2]}"); P3=$(ov_addr "${OV_C[3]}")
out=$(hctr "${OV_H[3]}" run --cni --rm --snapshotter native localhost/swcni-bb:latest "c-$TB_ID" \
    sh -c "ip -4 -o addr show eth0; ping -c1 -W2 $P1 >/dev/null && echo reached $P1" 2>"$D/err"); rc=$?
check_eq "host3: ctr run --cni with k3s's conflist exits 0 $(head -c 300 "$D/err")" 0 "$rc"
s3=$(sed -n 's|^FLANNEL_SUBNET=\(.*\)\.1/24|\1|p' "$D/host3/run/subnet.env")
check "... the container has an address of host3's subnet and pings host1's pod across the overlay ($(tr '\n' ' ' <<<"$out" | head -c 160))" \
    bash -c "grep -q 'inet ${s3//./\\.}\.[0-9]*/24' <<<\"\$0\" && grep -q 'reached $P1' <<<\"\$0\"" "$out"
tb_netns swcni-k8g; G=$TB_LAST
out=$(gocni 2 setup "podg-$TB_ID" "/run/netns/$G" client 2>"$D/err"); rc=$?
check_eq "host2: go-cni Setup with kube-flannel's conflist exits 0 $(head -c 300 "$D/err")" 0 "$rc"
PG=$(awk '$1 == "eth0" {print $2}' <<<"$out")
for i in 1 2 3; do
    s=$(sed -n 's|^FLANNEL_SUBNET=\(.*\)\.1/24|\1|p' "$D/host$i/run/subnet.env")
    p=$(eval echo "\$P$i")
    check_eq "host$i: the pod's address is in the node's subnet ($p)" "$s" "${p%.*}"
done
check "lo is up in host1's pod (go-cni's loopback network)" bash -c "ip -n ${OV_C[1]} -j link show lo | jq -e '.[0].flags | index(\"UP\")' >/dev/null"
check "host2's go-cni pod pings host3's pod" until_ok bash -c "ip netns exec $G ping -c1 -W1 $P3 >/dev/null"
for pair in "1 $P2" "2 $P3" "3 $P1"; do
    set -- $pair
    check "host$1's pod pings $2" until_ok bash -c "ip netns exec ${OV_C[$1]} ping -c1 -W1 $2 >/dev/null"
done

echo "k8s-node: the hostPort and the shaped pod"
tb_bg "${OV_C[1]}" /usr/bin/python3 "$here/../lib/netcheck.py" serve tcp 80 web
tb_wait_tcp "${OV_C[1]}" 0.0.0.0 80
check_eq "host1's hostPort 8080 reaches its pod from host2" "web" \
    "$(ip netns exec "${OV_H[2]}" /usr/bin/python3 "$here/../lib/netcheck.py" ask tcp 192.168.77.1 8080 2>/dev/null | awk '{print $1}')"
mbits() {  # mbits PORT [-R]: iperf3 from host1 to its pod, received Mbit/s over 4 s, the first (slow start, the initial burst) left out
    local port=$1; shift
    tb_bg "${OV_C[1]}" iperf3 -s -1 -p "$port" >/dev/null 2>&1
    tb_wait_tcp "${OV_C[1]}" 0.0.0.0 "$port" || { echo 0; return; }
    ip netns exec "${OV_H[1]}" iperf3 -c "$P1" -p "$port" -t 4 -O 1 -J "$@" 2>/dev/null | jq '.end.sum_received.bits_per_second / 1e6'
}
to=$(mbits 5201); from=$(mbits 5202 -R)
echo "    to the pod $to Mbit/s, from it $from (limit $((RATE / 1000000)) both ways)"
within10() { awk -v m="$1" -v want="$2" 'BEGIN { exit !(m >= want * 0.9 && m <= want * 1.1) }'; }
check "towards the shaped pod within 10% of its rate" within10 "$to" $((RATE / 1000000))
check "from the shaped pod within 10% of its rate" within10 "$from" $((RATE / 1000000))

echo "k8s-node: DEL and GC"
tb_netns swcni-k8x; X=$TB_LAST
cnit 3 add cbr0 "/run/netns/$X" > /dev/null 2>&1   # a pod the runtime will forget
gocni 1 remove "pod1-$TB_ID" "/run/netns/${OV_C[1]}" web 8080:80 "$RATE:$BURST" 2>"$D/err"; rc=$?
check_eq "host1: go-cni Remove exits 0 $(head -c 300 "$D/err")" 0 "$rc"
gocni 2 remove "podg-$TB_ID" "/run/netns/$G" client 2>"$D/err"; rc=$?
check_eq "host2: go-cni Remove exits 0 $(head -c 300 "$D/err")" 0 "$rc"
cnit 2 del cbr0 "/run/netns/${OV_C[2]}" 2>"$D/err"; rc=$?
check_eq "host2: cnitool del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
cnit 3 del cbr0 "/run/netns/${OV_C[3]}" 2>"$D/err"; rc=$?
check_eq "host3: cnitool del exits 0 $(head -c 300 "$D/err")" 0 "$rc"
# The forgotten pod: its cached result goes, then GC collects it. GC is 1.1.0 and k3s's list is
# 1.0.0 (a runtime never GCs it): the same chain as a 1.1.0 runtime would GC it, through cnictl
# with the cache's valid list.
rm -f "$D/host3/varlib/results/"*
mkdir -p "$D/host3/net.d-gc"
jq '.cniVersion = "1.1.0"' "$D/host3/net.d/10-flannel.conflist" > "$D/host3/net.d-gc/10-flannel.conflist"
on_host 3 env NETCONFPATH="$D/host3/net.d-gc" CNI_PATH="$D/bin" "$BIN/cnictl" gc cbr0 --cache-dir /var/lib/cni 2>"$D/err" >/dev/null
rc=$?
check_eq "host3: GC exits 0 $(head -c 300 "$D/err")" 0 "$rc"
for i in 1 2 3; do
    h=${OV_H[$i]}
    left="$(ip -n "$h" -j link show type ifb | jq -r '.[].ifname' | grep '^bwp')"
    left+="$(tc -n "$h" -j qdisc show | jq -r '.[] | select(.kind == "tbf") | .dev')"
    left+="$(tb_nft_elements "$h" | grep -v '^0$')"
    left+="$(ls "$D/host$i/varlib/flannel" 2>/dev/null)"
    left+="$(find "$D/host$i/varlib/networks" -type f 2>/dev/null -not -path '*/.swift-cni/*' | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
    check_eq "host$i: nothing left (IFBs, tbf qdiscs, nftables elements, kept configurations, reservations)" "" "$left"
done
tb_finish
