# podman 4.3 (Debian) with network_backend "cni" on our plugins, for e2e scripts. Source it from
# a script's top: the script is re-run in a private mount namespace (podman's caches under
# /var/lib land on a tmpfs there; its netns files stay there), podman runs inside a throwaway
# "host" netns (entered with nsenter: ip netns exec would remount /sys and hide the cgroup mounts
# runc needs), with runc (crun fails on this machine's hybrid cgroups), cgroupfs, events to a
# file. Sets D (the run directory; conflists go to $D/net.d), BIN, H (the host netns), pm (podman
# there) and imports localhost/swcni-bb:latest, busybox-static as a root file system.
# The caller's "$@" must be passed: podman_bed "$@".
podman_bed() {
    local name="$TB_NAME_PODMAN"
    if [ -z "${SWCNI_PODMAN_NS:-}" ]; then
        . "$PODMAN_LIB_DIR/deps.sh"   # podman, runc, conmon, busybox: installed by Scripts/lib/deps.sh
        check_tools || { echo "$name: 0 passed, 1 failed (tools missing, above)"; exit 1; }
        exec unshare --mount --propagation private env SWCNI_PODMAN_NS=1 bash "$PODMAN_SCRIPT" "$@"
    fi
    TB_NAME="$name"
    mount -t tmpfs -o size=64m swcni-podman /var/lib || { echo "$name: 0 passed, 1 failed (cannot mount a private /var/lib)"; exit 1; }
    . "$PODMAN_LIB_DIR/netns.sh"
    BIN=$(cd "${SWIFT_CNI_BIN:-$PODMAN_LIB_DIR/../../.build/debug}" && pwd)
    tb_tmpdir D
    mkdir -p "$D/net.d" "$D/bin" "$D/libpod" "$D/rootfs/bin" "$D/rootfs/www" "$D/rootfs/etc" "$D/rootfs/tmp"
    local p c
    for p in $("$BIN/cni-plugins" --list); do ln -s "$BIN/cni-plugins" "$D/bin/$p"; done
    ln -s "$BIN/cni-dnsd" "$D/bin/cni-dnsd"
    cat > "$D/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$D/libpod"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$D/bin"]
network_config_dir = "$D/net.d"
CONF
    cat > "$D/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$D/storage"
runroot = "$D/runroot"
CONF
    export CONTAINERS_CONF="$D/containers.conf" CONTAINERS_STORAGE_CONF="$D/storage.conf"
    tb_netns swcni-poh; H=$TB_LAST
    trap 'cleanup_podman; tb_cleanup' EXIT
    cp /bin/busybox "$D/rootfs/bin/busybox"
    for c in sh httpd nslookup wget sleep cat mkdir; do ln -s busybox "$D/rootfs/bin/$c"; done
    echo "hello from web" > "$D/rootfs/www/index.html"
    echo "root:x:0:0:root:/:/bin/sh" > "$D/rootfs/etc/passwd"
    tar -C "$D/rootfs" -c . | pm import - localhost/swcni-bb:latest >/dev/null 2>"$D/err"
    local rc=$?
    check_eq "busybox image imported" 0 "$rc"
    [ "$rc" -eq 0 ] || head -c 500 "$D/err"
}
pm() { nsenter --net="/run/netns/$H" podman "$@"; }
cleanup_podman() { pm rm -af >/dev/null 2>&1; pm rmi -af >/dev/null 2>&1; }
PODMAN_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PODMAN_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")
TB_NAME_PODMAN=$(basename "${BASH_SOURCE[1]}" .sh)
