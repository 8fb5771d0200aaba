# Test-bed helpers for end-to-end scripts. Source it; it sets a trap that removes everything it made.
#
# Everything happens inside namespaces this file creates: a fake "host" netns (bridges, firewall
# rules and sysctls of the plugins land there, never on the machine itself) and container netns.
# Names carry the pid, so parallel runs and leftovers of earlier runs never collide.

set -o pipefail

TB_ID="$$"
TB_NETNS=()        # namespaces to delete
TB_PIDS=()         # processes to kill
TB_DIRS=()         # directories to remove
TB_NETNS_PREFIXES=()  # namespaces made by worker processes: every name with one of these prefixes
TB_PASS=0
TB_FAIL=0
TB_NAME="${TB_NAME:-$(basename "${BASH_SOURCE[1]:-e2e}" .sh)}"

# Every tool of Scripts/lib/tools.tsv is there (Scripts/lib/deps.sh installs them): a script never
# runs on with a tool missing, and never reads a figure through one.
. "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
if ! check_tools; then
    echo "${TB_NAME}: 0 passed, 1 failed (tools missing, above: run Scripts/test or install_deps of Scripts/lib/deps.sh)"
    exit 1
fi

tb_cleanup() {
    local p n d
    set +e  # a bench script's errexit must not stop the cleanup half way
    for p in "${TB_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    # A cni-dnsd the dnsname plugin started for the run (its records dir is under a run directory).
    for d in "${TB_DIRS[@]}"; do
        for f in "$d"/*/dnsd.pid "$d"/dnsd.pid; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
    done
    for n in "${TB_NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
    for d in "${TB_NETNS_PREFIXES[@]}"; do
        for n in $(ip netns list | awk '{print $1}' | grep -F -- "$d"); do ip netns del "$n" 2>/dev/null; done
    done
    for d in "${TB_DIRS[@]}"; do rm -rf "$d"; done
}
trap tb_cleanup EXIT
trap 'exit 130' INT TERM

# tb_tmpdir VAR: a private directory, removed at exit.
tb_tmpdir() {
    local d
    d=$(mktemp -d "/tmp/swift-cni-${TB_NAME}-${TB_ID}-XXXX")
    TB_DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

# tb_netns NAME: creates netns NAME-<pid> with lo up; prints nothing; sets TB_LAST to its name.
tb_netns() {
    local n="$1-${TB_ID}"
    ip netns add "$n" || return 1
    TB_NETNS+=("$n")
    ip -n "$n" link set lo up
    TB_LAST="$n"
}

# tb_in NETNS CMD...: runs CMD inside NETNS.
tb_in() { local n="$1"; shift; ip netns exec "$n" "$@"; }

# tb_bg NETNS CMD...: starts CMD inside NETNS in the background; killed at exit.
tb_bg() { local n="$1"; shift; ip netns exec "$n" "$@" & TB_PIDS+=("$!"); }

# tb_plugin HOSTNS BINARY COMMAND CONTAINERID NETNS IFNAME CONF [VAR=VALUE...]: runs a plugin exactly
# as a runtime does (environment + stdin) inside the host netns. stdout -> $TB_OUT, status -> $TB_RC.
tb_plugin() {
    local host="$1" bin="$2" cmd="$3" cid="$4" netns="$5" ifname="$6" conf="$7"
    shift 7
    TB_OUT=$(ip netns exec "$host" env CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" CNI_NETNS="$netns" \
        CNI_IFNAME="$ifname" CNI_PATH="${CNI_PATH:-/usr/lib/cni}" "$@" "$bin" < "$conf")
    TB_RC=$?
}

# tb_wait_tcp NETNS ADDR PORT: waits (bounded, 5 s) until something listens on ADDR:PORT in NETNS.
tb_wait_tcp() {
    local i
    for i in $(seq 1 100); do
        ip netns exec "$1" ss -Hltn "sport = :$3" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    return 1
}

# tb_nft_elements NETNS: how many elements all maps and sets of NETNS's ruleset hold (leak audits).
tb_nft_elements() {
    ip netns exec "$1" nft -j list ruleset | jq '[.nftables[] | (.map // .set) | select(.) | (.elem // []) | length] | add // 0'
}

ok()   { TB_PASS=$((TB_PASS + 1)); echo "  ok   $*"; }
bad()  { TB_FAIL=$((TB_FAIL + 1)); echo "  FAIL $*"; }
# skip DESCRIPTION: a check that cannot run here, counted as skipped with its reason.
skip() { TB_SKIP=$((${TB_SKIP:-0} + 1)); echo "  skip $*"; }
# tb_kernel_has KIND: this kernel can make a link of KIND (dummy, ipvlan, vlan, vrf, macvlan), tried
# in a throwaway namespace (a veth as the parent of a sub-interface).
tb_kernel_has() {
    local n="swcni-probe-$1-$TB_ID" rc
    ip netns add "$n" || return 1
    ip -n "$n" link add p0 type veth peer name p1
    if [ "$1" = ipvlan ] || [ "$1" = macvlan ]; then
        ip -n "$n" link add link p0 name k0 type "$1" 2>/dev/null
    elif [ "$1" = vlan ]; then
        ip -n "$n" link add link p0 name k0 type vlan id 5 2>/dev/null
    elif [ "$1" = vrf ]; then
        ip -n "$n" link add k0 type vrf table 10 2>/dev/null
    else
        ip -n "$n" link add k0 type "$1" 2>/dev/null
    fi
    rc=$?
    ip netns del "$n"
    return "$rc"
}
# tb_example_missing_kind CONFLIST: a link kind one of its plugins makes that this kernel cannot
# (this VM's has no ipvlan, 802.1Q, dummy or VRF); empty when none is missing. Scripts that run every
# example skip those with the reason; their kernel tests run on Debian's (Scripts/kernel-vm-test).
tb_example_missing_kind() {
    local t
    for t in $(jq -r '(.plugins // [.])[].type' "$1"); do
        if [ "$t" = ipvlan ] || [ "$t" = dummy ] || [ "$t" = vrf ]; then
            tb_kernel_has "$t" || { echo "$t"; return; }
        elif [ "$t" = vlan ]; then
            tb_kernel_has vlan || { echo "802.1Q VLAN"; return; }
        fi
    done
}
# check DESCRIPTION CMD...: ok when CMD succeeds.
check() { local d="$1"; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi; }

# tb_finish: prints the script's tally (read by Scripts/test) and exits non-zero on any failure.
tb_finish() {
    echo "${TB_NAME}: ${TB_PASS} passed, ${TB_FAIL} failed${TB_SKIP:+, ${TB_SKIP} skipped}"
    [ "$TB_FAIL" -eq 0 ]
}

# tb_build_bin: BIN, the directory of the built binaries ($SWIFT_CNI_BIN, which Scripts/test sets,
# else the debug build of this checkout).
tb_build_bin() {
    BIN=$(cd "${SWIFT_CNI_BIN:-$SWIFT_CNI_ROOT/.build/debug}" && pwd) || { echo "${TB_NAME}: no build at ${SWIFT_CNI_BIN:-.build/debug}" >&2; return 1; }
}

# tb_cni_dirs PLUGIN...: BIN (tb_build_bin), a private $D (unless there is one), and in it net.d/
# and cache/ for a runtime and bin/ with our multi-call binary under each PLUGIN's name (`all`:
# every plugin it has) and cni-dnsd beside. Exits the script when there is no build.
tb_cni_dirs() {
    [ -n "${BIN:-}" ] || tb_build_bin || exit 1
    [ -n "${D:-}" ] || tb_tmpdir D
    local p plugins=("$@")
    [ "${1:-}" = all ] && plugins=($("$BIN/cni-plugins" --list))
    mkdir -p "$D/net.d" "$D/bin" "$D/cache"
    for p in "${plugins[@]}"; do ln -s "$BIN/cni-plugins" "$D/bin/$p"; done
    ln -s "$BIN/cni-dnsd" "$D/bin/cni-dnsd"
}

# tb_private_conf FILE BRIDGE: the network configuration FILE (a netconf example) with its state
# made private to the test bed: host-local's store in $D/ipam, the bridge named BRIDGE, dnsname's
# run directory $D/dns, flannel's subnet file $D/subnet.env and its dataDir $D/flannel.
tb_private_conf() {
    jq --arg d "$D" --arg br "$2" '
        def private: (if .ipam then .ipam.dataDir = ($d + "/ipam") else . end)
            | (if .bridge then .bridge = $br else . end)
            | (if .type == "dnsname" then .runDir = ($d + "/dns") else . end)
            | (if .type == "flannel" then .subnetFile = ($d + "/subnet.env") | .dataDir = ($d + "/flannel")
                | .delegate.bridge = $br | .ipam.dataDir = ($d + "/ipam") else . end);
        if .plugins then .plugins |= map(private) else private end' "$1"
}

# tb_subnet_env: $D/subnet.env as flanneld writes it, for the flannel examples.
tb_subnet_env() {
    printf 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' > "$D/subnet.env"
}
