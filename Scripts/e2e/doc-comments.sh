#!/usr/bin/env bash
# Every public type and function has a doc comment (Scripts/lib/doc-comments.py); the check is
# shown to fail on a copy of the tree with one undocumented public function and one type.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
ROOT=$(cd "$here/../.." && pwd)
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/doc-comments.py" "$ROOT" 2>&1); rc=$?
echo "$out" | tail -20
check_eq "every public type and function has a doc comment" 0 "$rc"

tb_tmpdir T
mkdir -p "$T/tree" && cp -r "$ROOT/Sources" "$T/tree/"
printf '\npublic func undocumentedHelper() {}\n\n@frozen public struct Undocumented {}\n' >> "$T/tree/Sources/Base/Attachment.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/doc-comments.py" "$T/tree" 2>&1); rc=$?
check "an undocumented public function fails, naming the file and line" \
    bash -c "[ $rc -ne 0 ] && grep -qE '^Sources/Base/Attachment.swift:[0-9]+: public func undocumentedHelper' <<<\"\$0\"" "$out"
check "an undocumented public type behind an attribute fails too" \
    bash -c "grep -qE '^Sources/Base/Attachment.swift:[0-9]+: @frozen public struct Undocumented' <<<\"\$0\"" "$out"
tb_finish
