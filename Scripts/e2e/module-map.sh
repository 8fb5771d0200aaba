#!/usr/bin/env bash
# The module map of docs/architecture.md holds (Scripts/lib/module-map.py): each file imports only
# what its module's row allows, and none imports Foundation. The check
# is shown to fail on a copy of the tree that breaks each rule once.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
ROOT=$(cd "$here/../.." && pwd)
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$ROOT" 2>&1); rc=$?
echo "$out" | tail -20
check_eq "every import is one the module map allows" 0 "$rc"

tb_tmpdir T
copy() { rm -rf "$T/tree"; mkdir -p "$T/tree"; cp -r "$ROOT/Package.swift" "$ROOT/Sources" "$ROOT/docs" "$T/tree/"; }
copy; sed -i '0,/^import Base$/s//import Base\nimport Netlink/' "$T/tree/Sources/Overlay/Lease.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$T/tree" 2>&1); rc=$?
check "Overlay importing Netlink fails, naming the file" bash -c "[ $rc -ne 0 ] && grep -qE 'Sources/Overlay/Lease.swift:[0-9]+: Overlay imports Netlink' <<<\"\$0\"" "$out"
copy; sed -i '0,/^import CNI$/s//import CNI\nimport BridgePlugin/' "$T/tree/Sources/Plugins/Portmap/Portmap.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$T/tree" 2>&1); rc=$?
check "a plugin importing another plugin fails" bash -c "[ $rc -ne 0 ] && grep -q 'PortmapPlugin imports BridgePlugin' <<<\"\$0\"" "$out"
copy; sed -i '1i import Foundation' "$T/tree/Sources/Netlink/Route.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$T/tree" 2>&1); rc=$?
check "Foundation in a library fails" bash -c "[ $rc -ne 0 ] && grep -qE 'Route.swift:[0-9]+: Netlink imports Foundation' <<<\"\$0\"" "$out"
copy; sed -i '1i import Foundation' "$T/tree/Sources/cni-overlayd/CNIOverlayd.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$T/tree" 2>&1); rc=$?
check "Foundation in a daemon fails too" bash -c "[ $rc -ne 0 ] && grep -qE 'CNIOverlayd.swift:[0-9]+: cni-overlayd imports Foundation' <<<\"\$0\"" "$out"
copy; mkdir -p "$T/tree/Sources/Stray" && echo 'import CNI' > "$T/tree/Sources/Stray/a.swift"
sed -i 's|^        .target(name: "IPAM", |        .target(name: "Stray", dependencies: ["CNI"]),\n        .target(name: "IPAM", |' "$T/tree/Package.swift"
out=$(/usr/bin/python3 "$ROOT/Scripts/lib/module-map.py" "$T/tree" 2>&1); rc=$?
check "a module without a row in the map fails" bash -c "[ $rc -ne 0 ] && grep -q 'Stray (Sources/Stray) has no row' <<<\"\$0\"" "$out"
tb_finish
