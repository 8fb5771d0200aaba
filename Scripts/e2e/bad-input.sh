#!/usr/bin/env bash
# The bad-input table (Scripts/lib/bad-input.py, over 100 cases across every plugin): exact CNI error
# code, a message naming the culprit, and nothing changed in the host or container namespace, the
# nftables ruleset or the state directories. Runs inside a throwaway host namespace.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
tb_tmpdir D
mkdir -p "$D/bin"
for p in bandwidth bridge flannel host-local macvlan portmap ptp dnsname static vxlan ipvlan vlan dummy host-device sbr tap vrf; do ln -s "$BIN/cni-plugins" "$D/bin/$p"; done
ln -s "$BIN/cni-dnsd" "$D/bin/cni-dnsd"
tb_netns swcni-bih; H=$TB_LAST
tb_netns swcni-bic; C=$TB_LAST
ip -n "$H" link add "swbadv$TB_ID" type veth peer name "swbadm$TB_ID"
ip -n "$H" link set "swbadm$TB_ID" up
ip netns exec "$H" python3 "$here/../lib/bad-input.py" "$BIN" "$D" "$C" "$TB_ID"
