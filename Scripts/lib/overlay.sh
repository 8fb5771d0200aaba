# The multi-host harness of the overlay (#8): "hosts" as network namespaces on an underlay bridge
# (a namespace of its own), a container namespace per host, and one etcd (Debian etcd-server) in a
# namespace on the underlay, serving TLS with client certificates, started and stopped here.
# Source after netns.sh and after `tb_tmpdir D`. Everything it makes is removed by tb_cleanup.
#
#   ov_underlay NET              the underlay 192.168.NET.0/24 (bridge ubr0 in namespace $OV_U)
#   ov_host I                    host I: ${OV_H[I]} with eth0 = 192.168.NET.I/24, container ${OV_C[I]}
#   ov_etcd                      etcd on https://192.168.NET.254:2379 (namespace $OV_E): $OV_ETCD
#   ov_etcdctl ARGS...           etcdctl with the client certificate, from inside $OV_E
#   ov_agent I ARGS...           cni-overlayd on host I (etcd, the harness's certs), log $D/agentI.log
#   ov_addr NS                   the IPv4 address of NS's eth0 (a container's, after ADD)
#   until_ok CMD...              waits (bounded, 10 s) for CMD to succeed: a state, not a time

OV_H=(); OV_C=(); OV_AGENT=()

ov_underlay() {
    OV_NET=$1
    tb_netns swcni-ovu; OV_U=$TB_LAST
    ip -n "$OV_U" link add ubr0 type bridge && ip -n "$OV_U" link set ubr0 up
}

# ov_attach NS IFNAME PEER ADDR: a veth from NS's IFNAME to the underlay bridge (port PEER).
ov_attach() {
    ip -n "$OV_U" link add "$3" type veth peer name "$2" netns "$1"
    ip -n "$OV_U" link set "$3" master ubr0 up
    ip -n "$1" addr add "$4" dev "$2"
    ip -n "$1" link set "$2" up
}

ov_host() {
    local i=$1
    tb_netns "swcni-ovh$i"; OV_H[$i]=$TB_LAST
    tb_netns "swcni-ovc$i"; OV_C[$i]=$TB_LAST
    ov_attach "${OV_H[$i]}" eth0 "h$i" "192.168.$OV_NET.$i/24"
}

ov_etcd() {
    local pki="$D/pki"
    mkdir -p "$pki"
    (
        cd "$pki" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=swift-cni-test-ca \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=etcd -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:192.168.%s.254,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' "$OV_NET" > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=cni-overlayd -keyout client.key -out client.csr 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem 2>/dev/null
    ) || return 1
    tb_netns swcni-ovetcd; OV_E=$TB_LAST
    ov_attach "$OV_E" eth0 etcd0 "192.168.$OV_NET.254/24"
    OV_ETCD="https://192.168.$OV_NET.254:2379"
    ov_start_etcd
}

# ov_start_etcd: (re)starts etcd on its data directory; returns once it answers.
ov_start_etcd() {
    local pki="$D/pki"
    ip netns exec "$OV_E" etcd --name ov --data-dir "$D/etcd" --log-level error \
        --listen-client-urls "$OV_ETCD" --advertise-client-urls "$OV_ETCD" \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster ov=http://127.0.0.1:2380 \
        --cert-file "$pki/server.pem" --key-file "$pki/server.key" --client-cert-auth --trusted-ca-file "$pki/ca.pem" \
        >>"$D/etcd.log" 2>&1 &
    OV_ETCD_PID=$!
    TB_PIDS+=("$OV_ETCD_PID")
    until_ok ov_etcdctl endpoint health >/dev/null 2>&1
}

ov_etcdctl() {
    ip netns exec "$OV_E" env ETCDCTL_API=3 etcdctl --endpoints "$OV_ETCD" --cacert "$D/pki/ca.pem" \
        --cert "$D/pki/client.pem" --key "$D/pki/client.key" "$@"
}

# ov_agent I ARGS...: the agent of host I with the etcd store and the node file $D/nodeI.json.
ov_agent() {
    local i=$1; shift
    ip netns exec "${OV_H[$i]}" "$BIN/cni-overlayd" --store etcd --etcd-endpoints "$OV_ETCD" \
        --etcd-cacert "$D/pki/ca.pem" --etcd-cert "$D/pki/client.pem" --etcd-key "$D/pki/client.key" \
        --node "host$i" --node-file "$D/node$i.json" "$@" 2>>"$D/agent$i.log" &
    OV_AGENT[$i]=$!
    TB_PIDS+=("$!")
}

ov_addr() { ip -n "$1" -j addr show dev eth0 | jq -r '.[0].addr_info[] | select(.family == "inet") | .local'; }

until_ok() { local i; for i in $(seq 1 100); do "$@" && return 0; sleep 0.1; done; return 1; }
