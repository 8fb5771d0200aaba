# Shared by Scripts/stress and Scripts/crash (source after netns.sh, with BIN set): one
# bridge + host-local + portmap + dnsname network in a throwaway host netns, driven by cnictl as a
# runtime would, and the leak audit both end with.

# stress_setup: the test bed. Sets D (state: IPAM, DNS records, result cache), H (host netns), NET.
stress_setup() {
    tb_tmpdir D
    mkdir -p "$D/net.d" "$D/bin" "$D/cache"
    for p in bridge host-local portmap dnsname; do ln -s "$BIN/cni-plugins" "$D/bin/$p"; done
    ln -s "$BIN/cni-dnsd" "$D/bin/cni-dnsd"
    export NETCONFPATH="$D/net.d" CNI_PATH="$D/bin" D BIN TB_ID
    tb_netns swcni-sth; H=$TB_LAST
    export H NET=stress
    TB_NETNS_PREFIXES+=("swcni-stc-$TB_ID-")   # the containers' namespaces, made by workers
    cat > "$D/net.d/10-stress.conflist" <<JSON
{"cniVersion":"1.1.0","name":"stress","plugins":[
  {"type":"bridge","bridge":"swst$TB_ID","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.98.0.0/16"}],[{"subnet":"fd00:98::/64"}]],"dataDir":"$D/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
  {"type":"dnsname","domainName":"dns.podman","runDir":"$D/dns","capabilities":{"aliases":true}}]}
JSON
    : > "$D/live"
}

# stress_ctl COMMAND K [ARGS...]: cnictl for container K (namespace, id, pod name, host port 10000+K).
stress_ctl() {
    local cmd=$1 k=$2; shift 2
    ip netns exec "$H" env CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=pod$k" \
        CAP_ARGS="{\"portMappings\":[{\"hostPort\":$((10000 + k % 50000)),\"containerPort\":80,\"protocol\":\"tcp\"}],\"aliases\":{\"stress\":[\"alias$k\"]}}" \
        "$BIN/cnictl" "$cmd" "$NET" "/run/netns/swcni-stc-$TB_ID-$k" --container-id "stress-$TB_ID-$k" --cache-dir "$D/cache" "$@"
}

# stress_cycle K: one container's life. Prints "ok K", "dup K ..." or "fail K ...".
# Duplicate addresses: $D/live holds the addresses of containers between their ADD's return and
# their DEL's start (a sub-interval of the time the address is theirs), so two entries for one
# address at once are two containers holding it.
stress_cycle() {
    local k=$1 ns="swcni-stc-$TB_ID-$1" cid="stress-$TB_ID-$1" out rc ip dup file
    ip netns add "$ns" || { echo "fail $k: ip netns add"; return; }
    ip -n "$ns" link set lo up
    out=$(stress_ctl add "$k" 2>&1); rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "fail $k: add exited $rc: $(head -c 300 <<<"$out" | tr '\n' ' ')"
        stress_ctl del "$k" >/dev/null 2>&1; ip netns del "$ns"; return
    fi
    ip=$(jq -r '.ips[] | select(.address | contains(".")) | .address' <<<"$out" | cut -d/ -f1)
    dup=$({ flock 9; grep "^$ip " "$D/live"; echo "$ip $cid" >> "$D/live"; } 9>"$D/live.lock")
    file=$(tr '\r\n' '  ' < "$D/ipam/$NET/$ip" 2>/dev/null)
    local problem=""
    [ -n "$dup" ] && problem="dup $k: $ip also held by ${dup#* }"
    [ -z "$problem" ] && [ "$file" != "$cid  eth0" ] && problem="fail $k: reservation of $ip holds '$file'"
    [ -z "$problem" ] && [[ $(ip -n "$ns" -o addr show dev eth0) != *"inet $ip/"* ]] && problem="fail $k: $ip not on eth0"
    { flock 9; grep -v "^$ip $cid\$" "$D/live" > "$D/live.$k"; mv "$D/live.$k" "$D/live"; } 9>"$D/live.lock"
    out=$(stress_ctl del "$k" 2>&1); rc=$?
    [ -z "$problem" ] && [ "$rc" -ne 0 ] && problem="fail $k: del exited $rc: $(head -c 300 <<<"$out" | tr '\n' ' ')"
    ip netns del "$ns"
    echo "${problem:-ok $k}"
}
export -f stress_cycle stress_ctl

# stress_nft_counts: "<rules> <map/set elements>" in the host netns.
stress_nft_counts() {
    ip netns exec "$H" nft -j list ruleset | jq -r '[([.nftables[] | select(.rule)] | length),
        ([.nftables[] | (.map // .set) | select(.) | (.elem // []) | length] | add // 0)] | map(tostring) | join(" ")'
}

# stress_audit BASELINE_RULES: everything a container ever had is gone. Each count is a check.
stress_audit() {
    local rules=$1 pid counts
    echo "leak audit"
    check_eq "container namespaces left" 0 "$(ip netns list | grep -c "^swcni-stc-$TB_ID-")"
    check_eq "veth links left on the host" 0 "$(ip -n "$H" -j link show type veth | jq length)"
    check_eq "links on the host: lo and the bridge" "lo swst$TB_ID" "$(ip -n "$H" -j link show | jq -r '[.[].ifname] | sort | join(" ")')"
    check_eq "addresses on the bridge: the two gateways" "10.98.0.1 fd00:98::1" \
        "$(ip -n "$H" -j addr show dev "swst$TB_ID" | jq -r '[.[0].addr_info[] | select(.scope == "global") | .local] | join(" ")')"
    counts=$(stress_nft_counts)
    check_eq "nft rules: as after the first container" "$rules" "${counts% *}"
    check_eq "nft map elements left (masquerade, port mappings)" 0 "${counts#* }"
    check_eq "IPAM files left besides cursors and lock" "last_reserved_ip.0 last_reserved_ip.1 lock" \
        "$(ls -A "$D/ipam/$NET" | sort | tr '\n' ' ' | sed 's/ $//')"
    check_eq "DNS records files left" 0 "$(find "$D/dns" -name '*.net' | wc -l)"
    check_eq "cached results left" 0 "$(find "$D/cache" -type f | wc -l)"
    check_eq "temporary files left" 0 "$(find "$D" -name '*.tmp*' | wc -l)"
    find "$D/ipam" "$D/dns" "$D/cache" -name '*.tmp*' | sed 's/^/    left: /' 
    # The responder exits once no network is left: wait (bounded) for that state.
    pid=$(cat "$D/dns/dnsd.pid" 2>/dev/null)
    if [ -n "$pid" ]; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    check "cni-dnsd exited with the last container" bash -c "[ -z '$pid' ] || ! kill -0 '$pid' 2>/dev/null"
}
