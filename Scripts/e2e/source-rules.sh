#!/usr/bin/env bash
# The rules of Scripts/lib/source-rules.py hold: every public type and function has a doc comment,
# no function is over 80 lines. Each is shown to fail on a copy of the tree that breaks it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
ROOT=$(cd "$here/../.." && pwd)
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/source-rules.py" "$ROOT" 2>&1); rc=$?
echo "$out" | tail -20
check_eq "every public type and function has a doc comment, no function is over 80 lines" 0 "$rc"

tb_tmpdir T
mkdir -p "$T/tree" && cp -r "$ROOT/Sources" "$T/tree/"
printf '\npublic func undocumentedHelper() {}\n\n@frozen public struct Undocumented {}\n' >> "$T/tree/Sources/Base/Attachment.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/source-rules.py" "$T/tree" 2>&1); rc=$?
check "an undocumented public function fails, naming the file and line" \
    bash -c "[ $rc -ne 0 ] && grep -qE '^Sources/Base/Attachment.swift:[0-9]+: public func undocumentedHelper' <<<\"\$0\"" "$out"
check "an undocumented public type behind an attribute fails too" \
    bash -c "grep -qE '^Sources/Base/Attachment.swift:[0-9]+: @frozen public struct Undocumented' <<<\"\$0\"" "$out"
{
    printf '\n/// Long.\nfunc long() {\n'
    for i in $(seq 1 80); do printf '    _ = %d\n' "$i"; done
    printf '}\n'
} >> "$T/tree/Sources/Base/JSON.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/source-rules.py" "$T/tree" 2>&1)
check "a function of 82 lines fails, naming it" bash -c "grep -qE '^Sources/Base/JSON.swift:[0-9]+: 82 lines, more than 80: func long' <<<\"\$0\"" "$out"
tb_finish
