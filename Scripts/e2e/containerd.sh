#!/usr/bin/env bash
# containerd 1.6 (Debian): `ctr run --cni` runs our plugins unchanged. ctr reads only
# /etc/cni/net.d and /opt/cni/bin, so the test runs in a private mount namespace where those are
# ours (a bind mount, an overlay over /opt; the machine's stay as they are); containerd runs there
# with a private root, state and socket, started and stopped by the script; ctr runs inside a
# throwaway "host" netns (nsenter, so the cgroup mounts stay visible to runc). The image is
# busybox-static, imported as a docker archive. ctr deletes the network with an empty netns path
# once the task is gone: our DEL must still leave nothing. Then k3s's conflist, unchanged, with a
# subnet file as flanneld writes it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SWCNI_CD_NS:-}" ]; then
    . "$here/../lib/deps.sh"   # containerd, runc, busybox: installed by Scripts/lib/deps.sh
    check_tools || { echo "containerd: 0 passed, 1 failed (tools missing, above)"; exit 1; }
    . "$here/../lib/containerd.sh"
    cd_outer "$0" "$@"
    exit $?
fi
. "$here/../lib/netns.sh"
. "$here/../lib/containerd.sh"
tb_build_bin || exit 1
tb_tmpdir D
# /opt/cni/bin and /etc/cni/net.d, ours, in this mount namespace only; libcni's cache on a tmpfs.
cd_mounts || { echo "containerd: 0 passed, 1 failed (the mounts of /opt and /etc/cni/net.d)"; exit 1; }
mount -t tmpfs -o size=16m swcni-varlib /var/lib
cat > "$D/net.d/10-ctr.conflist" <<CONF
{"cniVersion":"1.0.0","name":"ctr","plugins":[
 {"type":"bridge","bridge":"swcd$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.81.0.0/24"}]],"dataDir":"$D/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"firewall"},
 {"type":"dnsname","domainName":"ctr.test","runDir":"$D/dns"}]}
CONF
tb_netns swcni-cdh; H=$TB_LAST
cd_start
check "containerd $(containerd --version | awk '{print $3}') answers on its private socket" bash -c "ctr --address $D/containerd.sock version >/dev/null"
cd_import_busybox
rc=$?
check_eq "busybox image imported $(head -c 200 "$D/err")" 0 "$rc"

echo "ctr run --cni"
out=$(hctr "$H" run --cni --rm --snapshotter native localhost/swcni-bb:latest "c1-$TB_ID" ip -4 -o addr show eth0 2>"$D/err")
rc=$?
check_eq "ctr run --cni exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check "the container's eth0 got an address from our IPAM ($(head -c 120 <<<"$out"))" grep -qE 'inet 10\.81\.0\.[0-9]+/24' <<<"$out"
out=$(hctr "$H" run --cni --rm --snapshotter native localhost/swcni-bb:latest "c2-$TB_ID" ip -o link show lo 2>&1)
check "lo is up inside (the loopback plugin)" grep -q 'UP' <<<"$out"
echo "after ctr removed the containers (DEL with an empty netns path)"
check_eq "no address left" "last_reserved_ip.0 lock" "$(ls "$D/ipam/ctr" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "no veth left on the host" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
check_eq "no DNS records left" "" "$(ls "$D/dns" 2>/dev/null | grep '\.net$')"
check_eq "no cached result left" "" "$(find /var/lib/cni -type f 2>/dev/null)"
check_eq "no container netns left" "" "$(ls /run/netns | grep '^cni-' || true)"

echo "ctr run --cni with k3s's conflist, unchanged (flannel -> bridge + host-local, portmap, bandwidth)"
rm -f "$D/net.d/"*
cp "$here/../../netconf-examples/k3s-flannel.conflist" "$D/net.d/10-flannel.conflist"
mkdir -p "$D/run-flannel"
mount --bind "$D/run-flannel" /run/flannel
printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' > /run/flannel/subnet.env
out=$(hctr "$H" run --cni --rm --snapshotter native localhost/swcni-bb:latest "c3-$TB_ID" ip -4 -o addr show eth0 2>"$D/err")
rc=$?
check_eq "ctr run --cni exits 0 $(head -c 300 "$D/err")" 0 "$rc"
check "the container's eth0 got an address of the node's flannel subnet ($(head -c 120 <<<"$out"))" grep -qE 'inet 10\.244\.9\.[0-9]+/24' <<<"$out"
echo "after ctr removed the container (DEL with an empty netns path)"
check_eq "no configuration kept under /var/lib/cni/flannel" "" "$(ls /var/lib/cni/flannel 2>/dev/null)"
check_eq "no address left" "" "$(find /var/lib/cni/networks -type f -not -path '*/.swift-cni/*' 2>/dev/null | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
check_eq "no veth left on the host" 0 "$(ip -n "$H" -j link show type veth | jq length)"
check_eq "no nftables element left" 0 "$(tb_nft_elements "$H")"
tb_finish
