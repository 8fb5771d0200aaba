#!/usr/bin/env bash
# host-local as runtimes run it (exec, environment, stdin): compatible with the reference plugin on
# the same data directory in both directions, and correct under 64 concurrent processes.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/netns.sh"
tb_build_bin || exit 1
REF=/usr/lib/cni/host-local
tb_tmpdir D
mkdir -p "$D/bin"
ln -s "$BIN/cni-plugins" "$D/bin/host-local"
OURS="$D/bin/host-local"

conf() {  # conf VERSION SUBNET [PREVRESULT]
    local prev=""
    [ -n "${3:-}" ] && prev=",\"prevResult\":$3"
    printf '{"cniVersion":"%s","name":"compat","type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"%s"}]],"dataDir":"%s"}%s}' \
        "$1" "$2" "$D/data" "$prev"
}
run() {  # run BINARY COMMAND CONTAINERID CONF -> $OUT, $RC
    OUT=$(CNI_COMMAND="$2" CNI_CONTAINERID="$3" CNI_NETNS=/run/netns/none CNI_IFNAME=eth0 CNI_PATH="$D/bin" "$1" <<<"$4")
    RC=$?
}
store() { ls -A "$D/data/compat" | grep -v '^\.swift-cni$' | sort | tr '\n' ' ' | sed 's/ $//'; }

if [ -x "$REF" ]; then
    echo "reference allocates, ours checks and releases"
    run "$REF" ADD ref-a "$(conf 1.0.0 10.40.0.0/24)"; check_eq "reference ADD" 0 "$RC"
    prev=$OUT
    run "$OURS" CHECK ref-a "$(conf 1.0.0 10.40.0.0/24 "$prev")"; check_eq "our CHECK finds the reference's allocation" 0 "$RC"
    run "$OURS" ADD ours-b "$(conf 1.0.0 10.40.0.0/24)"
    check_eq "ours continues the reference's round-robin" "10.40.0.3/24" "$(jq -r '.ips[0].address' <<<"$OUT")"
    run "$OURS" DEL ref-a "$(conf 1.0.0 10.40.0.0/24 "$prev")"; check_eq "our DEL" 0 "$RC"
    check_eq "the reference's file is released" "10.40.0.3 last_reserved_ip.0 lock" "$(store)"

    echo "ours allocates, reference checks and releases"
    run "$OURS" ADD ours-c "$(conf 1.0.0 10.40.0.0/24)"; prev=$OUT
    check_eq "file holds 'id\\r\\nifname' exactly" "ours-c\\r\\neth0" "$(od -An -c "$D/data/compat/10.40.0.4" | tr -s ' ' | sed 's/^ //;s/ $//' | tr -d ' ')"
    run "$REF" CHECK ours-c "$(conf 1.0.0 10.40.0.0/24 "$prev")"; check_eq "reference CHECK finds ours" 0 "$RC"
    run "$REF" ADD ref-d "$(conf 1.0.0 10.40.0.0/24)"
    check_eq "reference continues our round-robin" "10.40.0.5/24" "$(jq -r '.ips[0].address' <<<"$OUT")"
    run "$REF" DEL ours-c "$(conf 1.0.0 10.40.0.0/24)"; check_eq "reference DEL" 0 "$RC"
    run "$REF" DEL ours-b "$(conf 1.0.0 10.40.0.0/24)"
    run "$OURS" DEL ref-d "$(conf 1.0.0 10.40.0.0/24)"
    check_eq "both released everything" "last_reserved_ip.0 lock" "$(store)"
    run "$OURS" ADD ours-c "$(conf 1.0.0 10.40.0.0/24)"
    check_eq "a stale index entry (released by the reference) does not block a new ADD" 0 "$RC"
    run "$OURS" DEL ours-c "$(conf 1.0.0 10.40.0.0/24)"
    # The reference released ours-b without knowing our index: that hint stays until GC prunes it.
    gc=$(conf 1.1.0 10.40.0.0/24 | jq -c '. + {"cni.dev/valid-attachments":[]}')
    OUT=$(CNI_COMMAND=GC CNI_PATH="$D/bin" "$OURS" <<<"$gc"); check_eq "GC" 0 "$?"
    check_eq "after GC the directory is as the reference leaves it" "last_reserved_ip.0 lock" "$(ls -A "$D/data/compat" | sort | tr '\n' ' ' | sed 's/ $//')"
else
    bad "compatibility: $REF missing (containernetworking-plugins, installed by Scripts/lib/deps.sh)"
fi

echo "64 parallel ADD processes on one /24, then 64 parallel DELs"
rm -rf "$D/data"
c=$(conf 1.0.0 10.41.0.0/24)
for i in $(seq 1 64); do
    (CNI_COMMAND=ADD CNI_CONTAINERID="par-$i" CNI_NETNS=/x CNI_IFNAME=eth0 CNI_PATH=/x "$OURS" <<<"$c" > "$D/add.$i") &
done
wait
ok_adds=$(for i in $(seq 1 64); do jq -r '.ips[0].address // empty' "$D/add.$i"; done | grep -c .)
distinct=$(for i in $(seq 1 64); do jq -r '.ips[0].address // empty' "$D/add.$i"; done | sort -u | grep -c .)
check_eq "64 ADDs succeeded" 64 "$ok_adds"
check_eq "64 distinct addresses" 64 "$distinct"
check_eq "64 reservation files" 64 "$(ls "$D/data/compat" | grep -c '^10\.41\.')"
for i in $(seq 1 64); do
    (CNI_COMMAND=DEL CNI_CONTAINERID="par-$i" CNI_NETNS=/x CNI_IFNAME=eth0 CNI_PATH=/x "$OURS" <<<"$c") &
done
wait
check_eq "after 64 DELs only lock and last_reserved_ip remain" "last_reserved_ip.0 lock" "$(ls -A "$D/data/compat" | sort | tr '\n' ' ' | sed 's/ $//')"

tb_finish
