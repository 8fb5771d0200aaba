# containerd 1.6 (Debian) for e2e scripts: a private containerd (root, state, socket under $D)
# and ctr, with /opt/cni/bin and /etc/cni/net.d ours. Source after netns.sh, inside a private
# mount namespace (the script's), with BIN and D set. containerd 1.6 keeps shim sockets under
# /run/containerd whatever its config says: the caller removes it afterwards when the machine had
# none (cd_outer does both).

# cd_outer SCRIPT ARGS...: runs SCRIPT again in a private mount namespace (env SWCNI_CD_NS=1),
# then removes /run/containerd (and /run/flannel, which k3s's conflist reads) if this run made them.
cd_outer() {
    local had had_flannel rc
    had=$([ -e /run/containerd ] && echo yes || echo no)
    had_flannel=$([ -e /run/flannel ] && echo yes || echo no)
    mkdir -p /run/flannel
    unshare --mount --propagation private env SWCNI_CD_NS=1 bash "$@"
    rc=$?
    [ "$had" = no ] && rm -rf /run/containerd
    [ "$had_flannel" = no ] && rmdir /run/flannel 2>/dev/null
    return "$rc"
}

# cd_mounts: /opt/cni/bin (an overlay over /opt) holds our binaries and /etc/cni/net.d is
# $D/net.d, in this mount namespace only.
cd_mounts() {
    local p
    mkdir -p "$D/net.d" "$D/optup" "$D/optwork"
    mount -t overlay swcni-opt -o "lowerdir=/opt,upperdir=$D/optup,workdir=$D/optwork" /opt || return 1
    mkdir -p /opt/cni/bin /etc/cni/net.d 2>/dev/null
    mount --bind "$D/net.d" /etc/cni/net.d || return 1
    for p in $("$BIN/cni-plugins" --list); do ln -s "$BIN/cni-plugins" "/opt/cni/bin/$p"; done
    ln -s "$BIN/cni-dnsd" /opt/cni/bin/cni-dnsd
}

# cd_start: containerd with a private root, state and socket; stopped at exit. Sets CD_PID.
cd_start() {
    local i
    mkdir -p "$D/root" "$D/state"
    cat > "$D/config.toml" <<CONF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/containerd.sock"
CONF
    containerd --config "$D/config.toml" > "$D/containerd.log" 2>&1 &
    CD_PID=$!
    trap 'kill "$CD_PID" 2>/dev/null; wait "$CD_PID" 2>/dev/null; tb_cleanup' EXIT
    for i in $(seq 1 100); do ctr version >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# cd_import_busybox: localhost/swcni-bb:latest, busybox-static (sh, ip, ping, cat, sleep) as a
# docker archive.
cd_import_busybox() {
    local c diff
    mkdir -p "$D/image/rootfs/bin" "$D/image/rootfs/etc"
    cp /bin/busybox "$D/image/rootfs/bin/busybox"
    for c in sh ip ping cat sleep; do ln -s busybox "$D/image/rootfs/bin/$c"; done
    echo "root:x:0:0:root:/:/bin/sh" > "$D/image/rootfs/etc/passwd"
    tar -C "$D/image/rootfs" -cf "$D/image/layer.tar" .
    diff=$(sha256sum "$D/image/layer.tar" | cut -d' ' -f1)
    cat > "$D/image/config.json" <<CONF
{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:$diff"]}}
CONF
    echo '[{"Config":"config.json","RepoTags":["localhost/swcni-bb:latest"],"Layers":["layer.tar"]}]' > "$D/image/manifest.json"
    tar -C "$D/image" -cf "$D/image.tar" manifest.json config.json layer.tar
    ctr images import "$D/image.tar" >/dev/null 2>"$D/err"
}

ctr() { command ctr --address "$D/containerd.sock" "$@"; }
# hctr NETNS ARGS...: ctr in NETNS (nsenter, so the cgroup mounts stay visible to runc): the
# plugins run there.
hctr() { local ns=$1; shift; nsenter --net="/run/netns/$ns" ctr --address "$D/containerd.sock" "$@"; }
