# Installs the Debian packages the build, the tests and the demo need, once (idempotent).
SWIFT_CNI_APT_PACKAGES=(
    libmnl-dev libnftnl-dev pkg-config   # C libraries the NFTables/Netlink shims link
    nftables iptables iproute2 iputils-ping procps jq python3   # the test bed and its checks
    containernetworking-plugins          # the reference plugins, for side-by-side tests and benchmarks
    conntrack                            # independent check of the UDP flow flush
    bind9-dnsutils                       # dig: the DNS checks of the e2e scripts
    hyperfine bc                         # benchmarks
    patchelf                             # release build: drop the RUNPATH
    etcd-server openssl                  # the overlay's etcd store (e2e, tests), its TLS certificates
    iperf3                               # the overlay benchmark
)

install_deps() {
    local missing=() p
    for p in "${SWIFT_CNI_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing ${missing[*]} and not root: install them with apt-get" >&2
        return 1
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
