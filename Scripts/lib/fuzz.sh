# fuzz_run TARGET RUNS MAX_LEN: builds TARGET with -sanitize=fuzzer -DFUZZING (scratch path
# .build-fuzz) and runs libFuzzer RUNS inputs from the seeds in $W/corpus (made by the caller,
# with W from fuzz_workdir). Prints "TARGET: N inputs in S s, exit RC"; on a finding, the log's
# tail and where the artifact is (kept). Returns libFuzzer's status.
fuzz_workdir() {
    W=$(mktemp -d /tmp/swift-cni-fuzz-XXXX)
    trap 'rm -rf "$W"' EXIT
    mkdir -p "$W/corpus"
}

fuzz_run() {
    local target=$1 runs=$2 maxlen=$3 bin start end execs rc
    swift build -c debug --scratch-path .build-fuzz --product "$target" \
        -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xswiftc -parse-as-library -Xswiftc -use-ld=lld 2>&1 \
        | grep -aEv '^\[[0-9]+/[0-9]+\]|^Building|^Compiling|^Write|^Emitting' || true
    bin=$(swift build -c debug --scratch-path .build-fuzz --show-bin-path)/$target
    start=$(date +%s.%N)
    "$bin" -runs="$runs" -max_len="$maxlen" -artifact_prefix="$W/" -print_final_stats=1 "$W/corpus" > "$W/log" 2>&1 && rc=0 || rc=$?
    end=$(date +%s.%N)
    execs=$(grep -aEo 'stat::number_of_executed_units: *[0-9]+' "$W/log" | grep -Eo '[0-9]+$' || echo 0)
    printf '%s: %s inputs in %.1f s, exit %s\n' "$target" "$execs" "$(echo "$end - $start" | bc -l)" "$rc"
    if [ "$rc" -ne 0 ]; then tail -30 "$W/log"; echo "artifacts in $W"; trap - EXIT; fi
    return "$rc"
}
