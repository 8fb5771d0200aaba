#!/usr/bin/env bash
# The reference plugins' own integration suite (integration/ of Debian's source package
# golang-github-containernetworking-plugins 1.1.1), compiled offline with Debian's ginkgo and
# gomega in GOPATH mode, run with a plugin directory of ours alone (bridge, host-local, bandwidth,
# ptp) and cnitool (Scripts/lib/cnitool.sh) on PATH. libcni's cache is
# private; the suite's namespaces (cni-test-*) and data directories (/tmp/foo, /tmp/bar) are
# removed afterwards.
set -u
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
cd "$ROOT"
. Scripts/lib/cnitool.sh
fail() { echo "reference-integration: 0 passed, 1 failed ($*)"; exit 1; }
build_cnitool || fail "cnitool could not be built"

C="$ROOT/.build-integration"
SRC="$C/gopath/src/github.com/containernetworking/plugins"
export GO111MODULE=off GOPROXY=off GOPATH="$C/gopath:/usr/share/gocode" GOCACHE="$C/gocache"
if [ ! -x "$C/integration.test" ]; then
    mkdir -p "$(dirname "$SRC")"
    . "$here/../lib/debian-source.sh"
    debian_source golang-github-containernetworking-plugins "$C" "$SRC" || fail "no source of golang-github-containernetworking-plugins"
    (cd "$SRC/integration" && go test -c -o "$C/integration.test" .) || { echo "reference-integration: 0 passed, 1 failed (the suite does not compile)"; exit 1; }
fi

# integration/../bin is the suite's CNI_PATH.
rm -rf "$SRC/bin" && mkdir -p "$SRC/bin"
for p in bridge host-local bandwidth ptp; do ln -s "$BIN/cni-plugins" "$SRC/bin/$p"; done
had_foo=$([ -e /tmp/foo ] && echo yes || echo no); had_bar=$([ -e /tmp/bar ] && echo yes || echo no)
tb_tmpdir D
mkdir -p "$D/cache"
suite_cleanup() {
    for n in $(ls /run/netns 2>/dev/null | grep '^cni-test-'); do ip netns del "$n" 2>/dev/null || rm -f "/run/netns/$n"; done
    [ "$had_foo" = no ] && rm -rf /tmp/foo
    [ "$had_bar" = no ] && rm -rf /tmp/bar
}
trap 'suite_cleanup; tb_cleanup' EXIT

echo "containernetworking-plugins 1.1.1 integration suite: every plugin it runs ours (bridge, host-local, bandwidth, ptp)"
out=$(cd "$SRC/integration" && PATH="$(dirname "$CNITOOL"):$PATH" "$here/../lib/with-cni-cache" "$D/cache" "$C/integration.test" -ginkgo.noColor -ginkgo.v 2>&1)
rc=$?
summary=$(grep -E '^(SUCCESS|FAIL)!' <<<"$out" | tail -1)
ran=$(grep -Eo 'Ran [0-9]+ of [0-9]+ Specs' <<<"$out" | tail -1)
check_eq "the suite passes ($ran: $summary)" 0 "$rc"
[ "$rc" -eq 0 ] || tail -40 <<<"$out"
check "every spec ran" grep -qE 'Ran ([0-9]+) of \1 Specs' <<<"$ran"
check "the bridge + bandwidth spec is among them" grep -q 'limits traffic only on the restricted bandwi\?th veth device' <<<"$out"
check "the ptp + bandwidth spec is among them" grep -q 'supports add and del with ptp + bandwidth' <<<"$out"
# (ifb0 and ifb1 are the ifb module's own, made when it loads: not ours.)
check_eq "no IFB of ours left" "" "$(ip -j link show type ifb | jq -r '.[].ifname | select(startswith("bwp"))')"
check_eq "no cached result left" "" "$(find "$D/cache/results" -type f 2>/dev/null)"
# The ptp cases use host-local's default dataDir, /var/lib/cni/networks: the private one here.
check_eq "no address left reserved" "" "$(find "$D/cache/networks" -type f 2>/dev/null | grep -Ev '/(lock|last_reserved_ip\.[0-9]+)$')"
tb_finish
