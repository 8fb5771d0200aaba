# debian_source PACKAGE CACHE DEST: unpacks Debian bookworm's source package PACKAGE into DEST,
# through a deb-src list private to CACHE (nothing is added to the machine's apt sources).
# Returns non-zero with the reason on stderr.
debian_source() {
    local pkg=$1 cache=$2 dest=$3
    mkdir -p "$cache/apt/lists/partial" "$cache/src"
    echo "deb-src http://deb.debian.org/debian bookworm main" > "$cache/apt/sources.list"
    local apt=(-q -o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$cache/apt/lists")
    apt-get "${apt[@]}" update >/dev/null 2>&1 || { echo "apt-get update of the deb-src list failed" >&2; return 1; }
    (cd "$cache/src" && apt-get "${apt[@]}" source --download-only "$pkg" >/dev/null 2>&1) || { echo "apt-get source $pkg failed" >&2; return 1; }
    rm -rf "$dest"
    (cd "$cache/src" && dpkg-source -x "${pkg}"_*.dsc "$dest" >/dev/null 2>&1) || { echo "dpkg-source -x $pkg failed" >&2; return 1; }
}
