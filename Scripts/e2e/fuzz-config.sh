#!/usr/bin/env bash
# The config fuzz smoke run of CI: 50,000 libFuzzer inputs through configuration decoding (the
# documented long run is `Scripts/fuzz-config` with its default of 10^6).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
out=$("$here/../fuzz-config" 50000 2>&1); rc=$?
check "$(tail -1 <<<"$out")" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -40 <<<"$out"
tb_finish
