import CLinux
import CNI
import Etcd
import Foundation
import Netlink
import Overlay
import VXLAN

// cni-overlayd: holds this host's lease of an overlay network, writes the node file the vxlan
// plugin reads, keeps the VTEP, and reconciles the other hosts' entries (FDB, neighbour, route)
// with the store: on every change (etcd watch; inotify for the file store), on every link or
// address change of the host (rtnetlink: a deleted or flapped VTEP, a new underlay address), and
// on a periodic resync.
//
//   cni-overlayd --store FILE|etcd --network CIDR --node NAME [--subnet-len 24] [--vni 1]
//                [--port 4789] [--underlay IFNAME] [--mtu N] [--resync SECONDS] [--node-file PATH]
//                [--once] [--release-on-exit]
//     etcd:      --etcd-endpoints URL[,URL...] [--etcd-prefix /swift-cni/overlay] [--lease-ttl 10]
//                [--etcd-cacert PEM] [--etcd-cert PEM] [--etcd-key PEM]

func fail(_ s: String) -> Never {
    System.logError("cni-overlayd: \(s)\n")
    exit(1)
}

func log(_ s: String) { System.logError("cni-overlayd: \(s)\n") }

var opts: [String: String] = [:]
var flags = Set<String>()
var argv = CommandLine.arguments.dropFirst()
let known: Set<String> = [
    "store", "network", "node", "subnet-len", "vni", "port", "underlay", "mtu", "resync", "node-file", "etcd-endpoints",
    "etcd-prefix", "lease-ttl", "etcd-cacert", "etcd-cert", "etcd-key",
]
while let a = argv.popFirst() {
    guard a.hasPrefix("--") else { fail("unexpected argument \(a)") }
    var key = String(a.dropFirst(2))
    var inline: String?
    if let eq = key.firstIndex(of: "=") {  // --key=value, as Kubernetes args are often written
        inline = String(key[key.index(after: eq)...])
        key = String(key[..<eq])
    }
    if ["once", "release-on-exit"].contains(key) {
        flags.insert(key)
    } else if !known.contains(key) {
        fail("unknown option \(a)")
    } else if let v = inline ?? argv.popFirst() {
        opts[key] = v
    } else {
        fail("--\(key) needs a value")
    }
}
guard let storeOption = opts["store"], let cidr = opts["network"].flatMap(IPPrefix.init), let nodeOption = opts["node"], !nodeOption.isEmpty else {
    fail(
        "usage: cni-overlayd --store FILE|etcd --network CIDR --node NAME [--subnet-len N] [--vni N] [--port N] [--underlay IF] [--mtu N] [--resync S] [--node-file PATH] [--once] [--release-on-exit] [--etcd-endpoints URLS --etcd-prefix P --lease-ttl S --etcd-cacert F --etcd-cert F --etcd-key F]"
    )
}
@MainActor func number<T: FixedWidthInteger>(_ key: String, _ fallback: T, _ range: ClosedRange<T>) -> T {
    guard let s = opts[key] else { return fallback }
    guard let v = T(s), range.contains(v) else { fail("--\(key) \(s): must be a number in \(range)") }
    return v
}
let network: OverlayNetwork
do { network = try OverlayNetwork(network: cidr, subnetLength: number("subnet-len", 24, 1...126)) } catch { fail(error.msg + ": " + error.details) }
let vni: UInt32 = number("vni", 1, 1...16_777_215)
let port: UInt16 = number("port", 4789, 1...65535)
let resync: Int32 = number("resync", 10, 1...86400)
let fixedMTU: Int? = opts["mtu"] == nil ? nil : number("mtu", 1450, 576...65535)
let node = nodeOption
let nodeFilePath = opts["node-file"] ?? NodeFile.defaultPath(vni: vni)

/// This host's side of the overlay: the VTEP for a lease, the peers, the node file.
@MainActor enum HostSide {
    static var written: NodeFile?

    static func underlay() throws -> (link: Link, address: IPAddress) {
        try VTEP.underlay(try NetlinkSocket(), named: opts["underlay"])
    }

    /// The VTEP for `lease` (made again if deleted), the node file, the peers from `leases`.
    /// `underlay`: the one the caller just looked up (else looked up here).
    @discardableResult
    static func program(_ lease: NodeLease, leases: [NodeLease], underlay: (link: Link, address: IPAddress)? = nil) throws
        -> [Reconcile.Operation]
    {
        let nl = try NetlinkSocket()
        let (under, local) = try underlay ?? VTEP.underlay(nl, named: opts["underlay"])
        let mtu = fixedMTU ?? under.mtu - (local.family == .v4 ? 50 : 70)
        let index = try VTEP.ensure(nl, vni: vni, port: port, underlay: under.index, lease: lease, mtu: mtu)
        let file = NodeFile(network: network, vni: vni, lease: lease, mtu: mtu)
        if file != written {
            try file.write(nodeFilePath)
            written = file
        }
        let ops = try VTEP.reconcile(nl, index, node: node, network: network, leases: leases)
        if !ops.isEmpty { log(ops.map(\.description).joined(separator: "; ")) }
        return ops
    }
}

// SIGTERM and SIGINT: a C handler writes to a pipe the loops read (threads of the runtime exist
// already, so a mask set here would not cover them; no Swift code runs in the handler).
let stopFD = clinux_stop_signal_pipe()
guard stopFD >= 0 else { fail("cannot install the SIGTERM/SIGINT handler") }

if storeOption == "etcd" {
    await runEtcd()
} else {
    runFile(storeOption)
}

// MARK: File store

@MainActor func runFile(_ path: String) -> Never {
    let store = FileLeaseStore(path: path)
    func pass() throws {
        let under = try HostSide.underlay()
        let lease = try store.claim(network, node: node, vtep: under.address)
        try HostSide.program(lease, leases: try store.leases(), underlay: under)
    }
    if flags.contains("once") {
        do { try pass() } catch { fail("\(error)") }
        exit(0)
    }
    // Watch the store's directory for the file being replaced (the store writes by rename).
    let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let file = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    try? System.makeDirectories(dir)
    let ifd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
    guard ifd >= 0, inotify_add_watch(ifd, dir, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE)) >= 0 else { fail("inotify on \(dir)") }
    func runPass() {
        do { try pass() } catch { log("\(error)") }
    }
    let monitor: NetlinkMonitor
    do { monitor = try NetlinkMonitor() } catch { fail("\(error)") }
    runPass()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        var p = [
            pollfd(fd: ifd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: monitor.fd, events: Int16(POLLIN), revents: 0),
        ]
        let n = poll(&p, 3, resync * 1000)
        if n > 0 && p[2].revents != 0 {
            // A link or address changed (the VTEP deleted or flapped, the underlay's address):
            // gather what comes within 100 ms, then one pass.
            while monitor.drain() && monitor.wait(milliseconds: 100) {}
            runPass()
            continue
        }
        if n > 0 && p[1].revents != 0 {
            if flags.contains("release-on-exit") {
                try? store.release(node: node)
                NodeFile.remove(nodeFilePath)
            }
            exit(0)
        }
        if n > 0 {
            // Only a change of the lease file matters (the lock file changes at every claim).
            var relevant = false
            while true {
                let r = buf.withUnsafeMutableBytes { read(ifd, $0.baseAddress, $0.count) }
                if r <= 0 { break }
                var off = 0
                while off + 16 <= r {
                    let len = Int(UInt32(buf[off + 12]) | UInt32(buf[off + 13]) << 8 | UInt32(buf[off + 14]) << 16 | UInt32(buf[off + 15]) << 24)
                    let nameBytes = buf[(off + 16)..<min(r, off + 16 + len)].prefix { $0 != 0 }
                    if String(decoding: nameBytes, as: UTF8.self) == file { relevant = true }
                    off += 16 + len
                }
            }
            if !relevant { continue }
        }
        runPass()
    }
}

// MARK: etcd

/// What wakes the etcd loop.
enum Wake: Sendable {
    case listed([EtcdKeyValue])
    case watched(EtcdWatchResponse)
    case keepAlive
    case resync
}

@MainActor func runEtcd() async -> Never {
    guard let endpoints = opts["etcd-endpoints"]?.split(separator: ",").map(String.init), !endpoints.isEmpty else {
        fail("--store etcd needs --etcd-endpoints URL[,URL...]")
    }
    let ttl: Int = number("lease-ttl", 10, 2...86400)
    let tls = EtcdTLS(caFile: opts["etcd-cacert"], certFile: opts["etcd-cert"], keyFile: opts["etcd-key"])
    let client: EtcdClient
    do { client = try EtcdClient(endpoints: endpoints, tls: tls == EtcdTLS() ? nil : tls) } catch { fail("\(error)") }
    let store = EtcdLeaseStore(client: client, prefix: opts["etcd-prefix"] ?? "/swift-cni/overlay", network: network, node: node, ttl: ttl)

    var lease: NodeLease?
    var peers: [String: NodeLease] = [:]  // etcd key → lease, from the listing and the watch
    var keepAliveFailed = false
    var lastKeepAlive: ContinuousClock.Instant?

    /// Claims (or keeps) the subnet with the underlay's address now; programs the host.
    func claim() async {
        do {
            let under = try HostSide.underlay()
            let preferred = lease?.subnet ?? (try? NodeFile.read(nodeFilePath))?.flatMap { $0.lease.node == node ? $0.lease.subnet : nil }
            let l = try await store.claim(vtep: under.address, preferred: preferred)
            if l != lease { log("lease \(l.subnet) vtep \(l.vtep)") }
            lease = l
            try HostSide.program(l, leases: Array(peers.values), underlay: under)
        } catch {
            log("claim: \(error)")
        }
    }

    func program() {
        guard let lease else { return }
        do { try HostSide.program(lease, leases: Array(peers.values)) } catch { log("\(error)") }
    }

    if flags.contains("once") {
        await claim()
        guard lease != nil else { fail("no lease") }
        do {
            let (list, _) = try await store.list()
            try HostSide.program(lease!, leases: list)
        } catch { fail("\(error)") }
        exit(0)
    }

    let (wakes, wake) = AsyncStream.makeStream(of: Wake.self)
    // The stop: on a thread of its own, so a loop waiting on an unreachable etcd does not hold it
    // up; the release gets 3 seconds, then the agent exits anyway (the lease then expires).
    let fd = stopFD
    let release = flags.contains("release-on-exit")
    let nodeFile = nodeFilePath
    Thread {
        var b: UInt8 = 0
        while read(fd, &b, 1) < 0 && errno == EINTR {}
        Task.detached {
            try? await Task.sleep(for: .seconds(3))
            log("the release did not finish in 3 s: exiting; the lease expires in its TTL")
            exit(0)
        }
        Task.detached {
            if release {
                do { try await store.release() } catch { log("release: \(error)") }
                NodeFile.remove(nodeFile)
            }
            exit(0)
        }
    }.start()
    // The watch: list, then watch from the next revision; listed again when the watch ends
    // (a compacted revision, etcd restarted, the connection lost).
    let prefix = store.subnetsPrefix
    Task.detached {
        while true {
            do {
                let (kvs, revision) = try await client.range(prefix: prefix)
                wake.yield(.listed(kvs))
                for try await w in client.watch(prefix: prefix, from: revision + 1) {
                    if w.canceled {
                        log("watch cancelled at compacted revision \(w.compactRevision) \(w.cancelReason): listing again")
                        break
                    }
                    if !w.events.isEmpty { wake.yield(.watched(w)) }
                }
            } catch {
                log("watch: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
    Task.detached {
        while true {
            try? await Task.sleep(for: .milliseconds(ttl * 1000 / 3))
            wake.yield(.keepAlive)
        }
    }
    // Links and addresses: a change (the VTEP deleted or flapped, the underlay's address) is
    // looked at at once; what comes within 100 ms is gathered into one resync.
    let monitor: NetlinkMonitor
    do { monitor = try NetlinkMonitor() } catch { fail("\(error)") }
    Thread {
        while true {
            guard monitor.wait(milliseconds: -1) else { continue }
            while monitor.drain() && monitor.wait(milliseconds: 100) {}
            wake.yield(.resync)
        }
    }.start()
    let resyncSeconds = Int(resync)
    Task.detached {
        while true {
            try? await Task.sleep(for: .seconds(resyncSeconds))
            wake.yield(.resync)
        }
    }

    await claim()
    for await w in wakes {
        switch w {
        case .listed(let kvs):
            peers = [:]
            for kv in kvs { peers[kv.keyString] = store.lease(kv) }
            // This host's own key missing (it expired while etcd was out of reach): claim again.
            if lease == nil || !peers.values.contains(where: { $0.node == node }) { await claim() } else { program() }
        case .watched(let r):
            for e in r.events {
                switch e {
                case .put(let kv):
                    peers[kv.keyString] = store.lease(kv)
                case .delete(let key, _):
                    let k = String(decoding: key, as: UTF8.self)
                    // This host's own key gone (revoked or expired): claim again.
                    if peers[k]?.node == node { lease = nil }
                    peers[k] = nil
                }
            }
            if lease == nil { await claim() } else { program() }
        case .keepAlive:
            // Ticks that queued up while a request waited for an unreachable etcd count once:
            // one soon after the end of the last renewal is skipped.
            if let last = lastKeepAlive, ContinuousClock.now - last < .milliseconds(ttl * 1000 / 3) / 2 { continue }
            defer { lastKeepAlive = ContinuousClock.now }
            // Not claimed yet (etcd was out of reach): try again at this pace, not the resync's.
            guard lease != nil else {
                await claim()
                continue
            }
            do {
                if try await !store.keepAlive() {
                    log("the etcd lease is gone (expired or revoked): claiming again")
                    await claim()
                }
                if keepAliveFailed {
                    // etcd was out of reach: a watch on a connection that died silently (its
                    // host gone, no reset) would never end by itself; start over.
                    keepAliveFailed = false
                    await client.reconnect()
                }
            } catch {
                log("keepalive: \(error)")
                keepAliveFailed = true
            }
        case .resync:
            // Follows an underlay address change (a new VTEP address, the same subnet) and
            // re-makes a deleted VTEP.
            if let l = lease, let (_, local) = try? HostSide.underlay(), local != l.vtep {
                log("underlay address \(l.vtep) -> \(local)")
                // Connections from the old address are dead: new ones, the watch listed again.
                await client.reconnect()
                await claim()
            } else if lease == nil {
                await claim()
            } else {
                program()
            }
        }
    }
    exit(0)
}
