# The prologue every Scripts/bench-* shares: the tools, the release build, the throwaway test bed
# of Scripts/lib/netns.sh (namespaces named with the pid, removed at exit with everything else it
# made) and the figures read from hyperfine. Source it from the script, after `cd` to the root.
set -euo pipefail
. Scripts/lib/deps.sh
. Scripts/lib/build-release.sh
install_deps || exit 1
build_release || exit 1
. Scripts/lib/netns.sh
tb_tmpdir D

# bench_ours PLUGIN...: $D/ours holds our multi-call binary under each plugin's name.
bench_ours() {
    local p
    mkdir -p "$D/ours"
    for p in "$@"; do ln -sf "$RELEASE_BIN/cni-plugins" "$D/ours/$p"; done
}

# bench_path IMPL: the CNI_PATH of `ours` or of the reference (Debian's containernetworking-plugins).
bench_path() { if [ "$1" = ours ]; then echo "$D/ours"; else echo /usr/lib/cni; fi; }

# bench_median FILE [NAME]: the median, in ms, of hyperfine's command NAME (default the first one)
# in its JSON export FILE. A command missing from the export fails the run, never prints a figure.
bench_median() {
    local v
    if [ $# -ge 2 ]; then
        v=$(jq -r --arg n "$2" '.results[] | select(.command==$n) | .median * 1000' "$1")
    else
        v=$(jq -r '.results[0].median * 1000' "$1")
    fi
    [ -n "$v" ] && [ "$v" != null ] || { echo "bench: no median for '${2:-first}' in $1" >&2; return 1; }
    echo "$v"
}

# bench_ratio A B: A / B.
bench_ratio() { echo "$1 / $2" | bc -l; }
