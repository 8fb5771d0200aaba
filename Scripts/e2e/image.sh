#!/usr/bin/env bash
# The image the Kubernetes manifests name exists and does what they ask of it: Scripts/image
# builds ghcr.io/swift-cni/swift-cni:latest offline with podman (here from this build's binaries,
# into a private podman store); the binaries run inside it (their libraries are all there); the
# flannel manifest's install step, run with podman as its init container runs, writes our plugin
# binary with a symlink per plugin into a temporary /opt/cni/bin and kube-flannel's conflist,
# unchanged, into a temporary /etc/cni/net.d; its agent's arguments include flanneld's subnet file
# on the host path it mounts.
set -u
. "$(dirname "$0")/../lib/podman.sh"
podman_bed "$@"
ROOT=$(cd "$PODMAN_LIB_DIR/../.." && pwd)
yaml="$ROOT/contrib/kubernetes/swift-cni-flannel.yaml"

echo "image: Scripts/image"
out=$("$ROOT/Scripts/image" "$BIN" 2>&1); rc=$?
check_eq "Scripts/image exits 0 ($(tail -1 <<<"$out"))" 0 "$rc"
pm image exists ghcr.io/swift-cni/swift-cni:latest
check_eq "the image is tagged as the manifests name it" 0 "$?"
check "... and saved as an OCI archive" test -s "$ROOT/.build-image/swift-cni.oci.tar"
img=ghcr.io/swift-cni/swift-cni:latest
run() { pm run --rm --pull=never --network none "$@" 2>>"$D/err"; }
check_eq "cni-plugins runs inside it (every library there)" "$("$BIN/cni-plugins" --list | tr '\n' ' ')" \
    "$(run "$img" /opt/swift-cni/bin/cni-plugins --list | tr '\n' ' ')"
run "$img" >/dev/null
check_eq "cni-overlayd runs inside it (the image's command: --help)" 0 "$?"
check_eq "each plugin is a relative symlink to cni-plugins" "cni-plugins" "$(run "$img" /bin/sh -c 'ls -l /opt/swift-cni/bin/bridge' | sed 's/.* -> //')"

echo "image: the flannel manifest's install step"
/usr/bin/python3 - "$yaml" "$D" <<'PY' > "$D/manifest.out"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
spec = kinds["DaemonSet"]["spec"]["template"]["spec"]
init = spec["initContainers"][0]
open(sys.argv[2] + "/install.sh", "w").write(init["command"][2])
import os
os.makedirs(sys.argv[2] + "/config", exist_ok=True)
open(sys.argv[2] + "/config/cni-conf.json", "w").write(kinds["ConfigMap"]["data"]["cni-conf.json"])
agent = spec["containers"][0]
mounts = {m["mountPath"] for m in agent["volumeMounts"]}
print("image", init["image"] == agent["image"] == "ghcr.io/swift-cni/swift-cni:latest")
print("subnet-file", "--subnet-file=/run/flannel/subnet.env" in agent["args"] and "/run/flannel" in mounts)
print("flannel-first", json.loads(kinds["ConfigMap"]["data"]["cni-conf.json"])["plugins"][0]["type"] == "flannel")
PY
check_eq "the manifest: one image, the agent writes /run/flannel/subnet.env on its host path, the conflist is kube-flannel's" \
    "image True subnet-file True flannel-first True" "$(tr '\n' ' ' < "$D/manifest.out" | sed 's/ $//')"
mkdir -p "$D/host/opt/cni/bin" "$D/host/etc/cni/net.d"
: > "$D/err"
run -v "$D/host/opt/cni/bin:/host/opt/cni/bin" -v "$D/host/etc/cni/net.d:/host/etc/cni/net.d" -v "$D/config:/config:ro" \
    "$img" /bin/sh -c "$(cat "$D/install.sh")"
rc=$?
check_eq "the install step exits 0 ($(tail -c 300 "$D/err"))" 0 "$rc"
missing=""
for p in $("$BIN/cni-plugins" --list); do
    [ "$(readlink "$D/host/opt/cni/bin/$p")" = cni-plugins ] || missing+="$p "
done
check_eq "every plugin of the binary is a symlink to cni-plugins in /opt/cni/bin" "" "$missing"
check "cni-plugins, cni-dnsd, cni-overlayd and cnictl are installed, executable" \
    bash -c "for b in cni-plugins cni-dnsd cni-overlayd cnictl; do [ -x '$D/host/opt/cni/bin/'\$b ] || exit 1; done"
check_eq "the installed flannel answers VERSION on the host" "1.1.0" \
    "$(CNI_COMMAND=VERSION "$D/host/opt/cni/bin/flannel" </dev/null | jq -r '.supportedVersions[-1]')"
check_eq "kube-flannel's conflist is installed unchanged as 10-flannel.conflist" "$(jq -Sc . "$D/config/cni-conf.json")" \
    "$(jq -Sc . "$D/host/etc/cni/net.d/10-flannel.conflist" 2>/dev/null)"
check_eq "no temporary file left" "" "$(ls -A "$D/host/opt/cni/bin" "$D/host/etc/cni/net.d" | grep '^\.' )"
tb_finish
