#!/usr/bin/env bash
# The tool manifest (Scripts/lib/tools.tsv) cannot drift: every command, absolute path and Python
# module the scripts, tests and sources use is listed with its Debian package, and every listed
# tool is installed. The scanner and the check are themselves shown to fail on a broken tree.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
ROOT=$(cd "$here/../.." && pwd)
tools=(/usr/bin/python3 "$ROOT/Scripts/lib/tools.py")

out=$("${tools[@]}" scan 2>&1); rc=$?
echo "$out" | tail -20
check_eq "every tool the tree uses is in tools.tsv (or Essential)" 0 "$rc"
out=$("${tools[@]}" check 2>&1); rc=$?
check_eq "every tool of tools.tsv is installed $out" 0 "$rc"

# A tree whose script uses an installed tool that is not listed, one whose manifest lost a line,
# and a manifest naming a tool that is not there.
tb_tmpdir T
mkdir -p "$T/Scripts/lib" "$T/Tests/X"
printf 'jq\tjq\tx\nip\tiproute2\tx\n' > "$T/Scripts/lib/tools.tsv"
# The unlisted tool is one of the project's own (tools.tsv installs it) left out of this manifest,
# so the case never depends on what else the machine has.
printf '#!/usr/bin/env bash\nout=$(ip -j link | jq length)\nif true; then timeout 5 dig -v; fi\n' > "$T/Scripts/a.sh"
out=$("${tools[@]}" scan "$T" 2>&1); rc=$?
check "a script calling an unlisted tool (dig, behind timeout) fails the scan, named" \
    bash -c "[ $rc -ne 0 ] && grep -q \"'dig'.*Debian package bind9-dnsutils\" <<<\"\$0\"" "$out"
printf '#!/usr/bin/env bash\nout=$(ip -j link | jq length)\n' > "$T/Scripts/a.sh"
printf 'ip\tiproute2\tx\n' > "$T/Scripts/lib/tools.tsv"
out=$("${tools[@]}" scan "$T" 2>&1); rc=$?
check "a manifest without jq fails the scan of a script using jq" bash -c "[ $rc -ne 0 ] && grep -q \"'jq'\" <<<\"\$0\"" "$out"
printf 'import json, yaml\n' > "$T/Scripts/lib/h.py"
printf 'jq\tjq\tx\nip\tiproute2\tx\n' > "$T/Scripts/lib/tools.tsv"
out=$("${tools[@]}" scan "$T" 2>&1); rc=$?
check "a Python helper importing an unlisted module (yaml) fails the scan" bash -c "[ $rc -ne 0 ] && grep -q \"module 'yaml'\" <<<\"\$0\"" "$out"
printf 'sh("ip", "link")\nsh("dig", "-v")\n' > "$T/Tests/X/T.swift"
out=$("${tools[@]}" scan "$T" 2>&1)
check "a Swift test running an unlisted tool fails the scan" grep -q "'dig'" <<<"$out"
printf 'swcni-no-such-tool\tswcni-no-such-package\tx\npy:swcni_no_module\tpython3-swcni\tx\n' > "$T/bad.tsv"
out=$("${tools[@]}" check "$T/bad.tsv" 2>&1); rc=$?
check "check fails on a missing tool and names its package" \
    bash -c "[ $rc -ne 0 ] && grep -q 'swcni-no-such-tool.*package swcni-no-such-package' <<<\"\$0\" && grep -q 'python3-swcni' <<<\"\$0\"" "$out"
tb_finish
