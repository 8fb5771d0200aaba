#!/usr/bin/env bash
# The multi-call binary as runtimes exec it: dispatch on argv[0], VERSION, and bad input that must
# end in a CNI error (never a crash, never a hang).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
tb_tmpdir D
for n in host-local no-such-plugin; do ln -s "$BIN/cni-plugins" "$D/$n"; done
ALL='["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'

echo "dispatch"
check_eq "--list names only working plugins" "bandwidth bridge dnsname dummy firewall flannel host-device host-local ipvlan loopback macvlan portmap ptp sbr static tap tuning vlan vrf vxlan" "$("$BIN/cni-plugins" --list | tr '\n' ' ' | sed 's/ $//')"
out=$(CNI_COMMAND=VERSION "$D/host-local" </dev/null)
check_eq "VERSION through the symlink" "$ALL" "$(jq -c .supportedVersions <<<"$out")"
out=$(echo '{"cniVersion":"0.4.0"}' | CNI_COMMAND=VERSION "$BIN/cni-plugins" host-local)
check_eq "VERSION as 'cni-plugins host-local' echoes the asked version" "0.4.0" "$(jq -r .cniVersion <<<"$out")"
out=$(CNI_COMMAND=VERSION "$D/no-such-plugin" </dev/null 2>"$D/err"); rc=$?
check "a name that is no plugin of this binary: exit 1, code 101" test "$rc" -eq 1 -a "$(jq .code <<<"$out")" = 101
check "... and usage on stderr" grep -q '^usage: cni-plugins' "$D/err"
out=$("$D/host-local" </dev/null 2>"$D/err"); rc=$?
check "no CNI_COMMAND: code 4 on stdout, what it is on stderr" \
    bash -c "[ $rc -eq 1 ] && [ \"\$(jq .code <<<'$out')\" = 4 ] && grep -q 'CNI protocol versions supported: 0.1.0' $D/err"
out=$(CNI_COMMAND=ADD CNI_NETNS=/x "$D/host-local" </dev/null)
check_eq "missing variables named at once" "missing environment variables CNI_CONTAINERID, CNI_IFNAME" "$(jq -r .msg <<<"$out")"

echo "bad stdin ends in code 6, within 5 s, without a crash"
printf '' > "$D/empty"
head -c 10000000 /dev/zero | tr '\0' ' ' > "$D/10mb"
head -c 10000000 /dev/urandom > "$D/10mb-random"
head -c 65536 /dev/urandom > "$D/garbage"
echo '[{"cniVersion":"1.0.0","name":"n"}]' > "$D/array"
{ printf '{"a":'; head -c 100000 /dev/zero | tr '\0' '['; } > "$D/nested"
printf '{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}' > "$D/truncated"
for f in empty 10mb 10mb-random garbage array nested truncated; do
    for cmd in ADD DEL CHECK; do
        out=$(CNI_COMMAND=$cmd CNI_CONTAINERID=c CNI_NETNS=/x CNI_IFNAME=eth0 CNI_PATH=/x timeout 5 "$D/host-local" < "$D/$f" 2>/dev/null)
        rc=$?
        check "$f on $cmd: exit 1 with code 6 (exit $rc)" test "$rc" -eq 1 -a "$(jq .code <<<"$out" 2>/dev/null)" = 6
    done
done
out=$(head -c 10000000 /dev/zero | CNI_COMMAND=ADD CNI_CONTAINERID=c CNI_NETNS=/x CNI_IFNAME=eth0 timeout 5 "$D/host-local" 2>/dev/null); rc=$?
check "10 MB through a pipe: code 6, the writer is not left hanging (exit $rc)" test "$rc" -eq 1 -a "$(jq .code <<<"$out")" = 6

tb_finish
