# cnitool, the reference CNI client, built offline from Debian's source package
# golang-github-appc-cni (1.1.2): its source through a private apt source list (deb-src, nothing
# added to the machine's), golang-go from the archive, GOPATH mode (the module needs nothing
# outside its own tree). Cached in .build-cnitool/. Sets CNITOOL; returns non-zero (with a
# reason on stderr) when it cannot be had.
build_cnitool() {
    local root="$PWD/.build-cnitool" w
    CNITOOL="$root/cnitool"
    [ -x "$CNITOOL" ] && return 0
    command -v go >/dev/null || { echo "cnitool: go missing (golang-go, Scripts/lib/deps.sh installs it)" >&2; return 1; }
    w="$root/work"
    rm -rf "$w" && mkdir -p "$w"
    . "$(dirname "${BASH_SOURCE[0]}")/debian-source.sh"
    debian_source golang-github-appc-cni "$root" "$w/src" || { echo "cnitool: no source" >&2; return 1; }
    mkdir -p "$w/gopath/src/github.com/containernetworking"
    ln -s "$w/src" "$w/gopath/src/github.com/containernetworking/cni"
    (cd "$w/gopath/src/github.com/containernetworking/cni" \
        && GO111MODULE=off GOPROXY=off GOPATH="$w/gopath:/usr/share/gocode" GOCACHE="$w/gocache" go build -o "$CNITOOL" ./cnitool) >&2 \
        || { echo "cnitool: go build failed" >&2; return 1; }
    rm -rf "$w"
}
