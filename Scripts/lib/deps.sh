# Installs every Debian package the build, the tests, the benchmarks and the demo need (the
# packages of Scripts/lib/tools.tsv), once (idempotent), then checks that each tool listed there is
# present: a missing one fails, naming its package. Source it and call install_deps.
SWIFT_CNI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# swift_cni_packages [MANIFEST]: the packages a manifest (default tools.tsv) names, one a line.
swift_cni_packages() {
    awk -F'\t' '!/^#/ && NF >= 2 { print $2 }' "${1:-$SWIFT_CNI_ROOT/Scripts/lib/tools.tsv}" | sort -u
}

# install_deps [MANIFEST]: installs what is missing of a manifest's packages, then checks its tools.
install_deps() {
    local manifest="${1:-$SWIFT_CNI_ROOT/Scripts/lib/tools.tsv}" missing=() p
    for p in $(swift_cni_packages "$manifest"); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "deps: missing ${missing[*]} and not root: install them with apt-get" >&2
            return 1
        fi
        echo "deps: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || { echo "deps: apt-get update failed" >&2; return 1; }
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || { echo "deps: apt-get install of ${missing[*]} failed" >&2; return 1; }
    fi
    check_tools "$manifest"
}

# check_tools [MANIFEST]: every tool of the manifest is there; prints each missing one with its
# package and fails if any is.
check_tools() {
    /usr/bin/python3 "$SWIFT_CNI_ROOT/Scripts/lib/tools.py" check "${1:-$SWIFT_CNI_ROOT/Scripts/lib/tools.tsv}"
}
