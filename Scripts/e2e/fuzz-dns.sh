#!/usr/bin/env bash
# The fuzz smoke run of CI: 50,000 libFuzzer inputs through the DNS parser and answering logic
# (the documented long run is `Scripts/fuzz-dns` with its default of 10^6).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
out=$("$here/../fuzz-dns" 50000 2>&1); rc=$?
check "$(tail -1 <<<"$out")" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -20 <<<"$out"
tb_finish
