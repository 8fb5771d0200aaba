#!/usr/bin/env bash
# The overlay's deployment files work as shipped: the Kubernetes DaemonSet (host network,
# NET_ADMIN, the init container installing binaries and the conflist), its conflist (parsed by the
# vxlan plugin: STATUS 50 before the agent, 0 after), the agent started with the DaemonSet's own
# arguments (only the etcd endpoint, certificates and node file pointed at the test bed), and the
# systemd unit (systemd-analyze verify, when systemd is there).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
. "$here/../lib/overlay.sh"
tb_build_bin || exit 1
root=$(cd "$here/../.." && pwd)
yaml="$root/contrib/kubernetes/swift-cni-overlay.yaml"
tb_tmpdir D
mkdir -p "$D/bin"
for p in vxlan bridge host-local portmap; do ln -s "$BIN/cni-plugins" "$D/bin/$p"; done

echo "overlay-deploy: the DaemonSet manifest"
/usr/bin/python3 - "$yaml" "$D" <<'PY' > "$D/manifest.out"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
ds, cm = kinds["DaemonSet"], kinds["ConfigMap"]
spec = ds["spec"]["template"]["spec"]
agent = spec["containers"][0]
args = dict(a[2:].split("=", 1) for a in agent["args"])
conflist = json.loads(cm["data"]["10-swift-cni-overlay.conflist"])
vx = conflist["plugins"][0]
checks = {
    "hostNetwork": spec.get("hostNetwork") is True,
    "NET_ADMIN": "NET_ADMIN" in agent["securityContext"]["capabilities"]["add"],
    "init container installs into /opt/cni/bin and /etc/cni/net.d":
        {m["mountPath"] for m in spec["initContainers"][0]["volumeMounts"]} >= {"/host/opt/cni/bin", "/host/etc/cni/net.d"},
    "agent and conflist agree (network, subnetLen, vni, node file)":
        (args["network"], int(args["subnet-len"]), int(args["vni"]), args["node-file"], args["store"])
        == (vx["network"], vx["subnetLen"], vx["vni"], vx["store"]["nodeFile"], vx["store"]["type"]),
    "node name from the downward API": args["node"] == "$(NODE_NAME)"
        and agent["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName",
    "the node file's directory is a host path": any(v["name"] == "run" and v["hostPath"]["path"] == "/run/swift-cni" for v in spec["volumes"]),
}
for k, v in checks.items():
    print(("ok " if v else "bad ") + k)
json.dump(conflist, open(sys.argv[2] + "/conflist.json", "w"))
json.dump(agent["args"], open(sys.argv[2] + "/args.json", "w"))
PY
[ -s "$D/manifest.out" ] || bad "the manifest does not parse"
while read -r verdict what; do
    if [ "$verdict" = ok ]; then ok "$what"; else bad "$what"; fi
done < "$D/manifest.out"

echo "overlay-deploy: the conflist and the agent's arguments, on a test host with etcd"
ov_underlay 75
ov_etcd || bad "etcd did not start"
ov_host 1
# The shipped conflist, with only the node file moved into the test directory.
jq --arg nf "$D/node.json" '.plugins[0].store.nodeFile = $nf | .plugins[0].underlay = "eth0"' "$D/conflist.json" > "$D/conflist.test.json"
status() {  # STATUS of the vxlan plugin with the conflist's first plugin, as a runtime sends it
    jq '.plugins[0] + {cniVersion: "1.1.0", name: .name}' "$D/conflist.test.json" > "$D/vxlan.json"
    ip netns exec "${OV_H[1]}" env CNI_COMMAND=STATUS CNI_PATH="$D/bin" "$D/bin/vxlan" < "$D/vxlan.json" > "$D/status.out" 2>&1
    echo $?
}
check_eq "STATUS before the agent: not available" 1 "$(status)"
check "the error is code 50" grep -q '"code": *50' "$D/status.out"
# The DaemonSet's arguments, but etcd, the certificates and the node file of the test bed.
mapfile -t args < <(jq -r --arg e "$OV_ETCD" --arg p "$D/pki" --arg nf "$D/node.json" '.[] |
    if startswith("--etcd-endpoints=") then "--etcd-endpoints=" + $e
    elif startswith("--etcd-cacert=") then "--etcd-cacert=" + $p + "/ca.pem"
    elif startswith("--etcd-cert=") then "--etcd-cert=" + $p + "/client.pem"
    elif startswith("--etcd-key=") then "--etcd-key=" + $p + "/client.key"
    elif startswith("--node-file=") then "--node-file=" + $nf
    elif startswith("--node=") then "--node=node-a"
    else . end' "$D/args.json")
ip netns exec "${OV_H[1]}" "$BIN/cni-overlayd" "${args[@]}" --underlay eth0 --release-on-exit 2>>"$D/agent.log" &
TB_PIDS+=("$!")
check "the agent with the DaemonSet's arguments writes the node file" until_ok test -s "$D/node.json"
ready() { [ "$(status)" = 0 ]; }
check "STATUS with the agent running: ready (exit 0)" until_ok ready
check_eq "the lease is in etcd under node-a" node-a \
    "$(ov_etcdctl get --prefix /swift-cni/overlay/subnets/ --print-value-only | jq -r .node)"

echo "overlay-deploy: the systemd unit"
if ! command -v systemd-analyze >/dev/null; then
    bad "systemd-analyze missing (systemd, installed by Scripts/lib/deps.sh): the unit is not verified"
else
    # The unit as shipped, with the binary and the options file pointed at this build.
    cp "$root/contrib/systemd/cni-overlayd.default" "$D/cni-overlayd.default"
    sed -e "s|/usr/local/bin/cni-overlayd|$BIN/cni-overlayd|" -e "s|/etc/default/cni-overlayd|$D/cni-overlayd.default|" \
        "$root/contrib/systemd/cni-overlayd.service" > "$D/cni-overlayd.service"
    out=$(systemd-analyze verify --man=no "$D/cni-overlayd.service" 2>&1); rc=$?
    check_eq "systemd-analyze verify: no complaint $out" "0 " "$rc $out"
    check "its options file names the etcd store's options the agent knows" \
        bash -c "grep -q -- '--etcd-endpoints' '$D/cni-overlayd.default' && grep -q -- '--etcd-cacert' '$D/cni-overlayd.default'"
fi
tb_finish
