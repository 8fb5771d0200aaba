import CLinux
import CNI
import Netlink
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

// cni-overlayd (#8, in progress: the file store): holds this host's lease, keeps its VTEP and
// reconciles the other hosts' entries whenever the lease file changes (inotify) and on a periodic
// resync (which also heals a VTEP that was deleted or flapped). `--once`: one pass, then exit.
//
//   cni-overlayd --store FILE --network CIDR --node NAME [--subnet-len 24] [--vni 1] [--port 4789]
//                [--underlay IFNAME] [--mtu N] [--resync SECONDS] [--once] [--release-on-exit]

func fail(_ s: String) -> Never {
    System.logError("cni-overlayd: \(s)\n")
    exit(1)
}

var opts: [String: String] = [:]
var flags = Set<String>()
var argv = CommandLine.arguments.dropFirst()
while let a = argv.popFirst() {
    guard a.hasPrefix("--") else { fail("unexpected argument \(a)") }
    let key = String(a.dropFirst(2))
    if ["once", "release-on-exit"].contains(key) {
        flags.insert(key)
    } else if let v = argv.popFirst() {
        opts[key] = v
    } else {
        fail("--\(key) needs a value")
    }
}
guard let storePath = opts["store"], let cidr = opts["network"].flatMap(IPPrefix.init), let node = opts["node"] else {
    fail("usage: cni-overlayd --store FILE --network CIDR --node NAME [--subnet-len N] [--vni N] [--port N] [--underlay IF] [--mtu N] [--resync S] [--once]")
}
let network: OverlayNetwork
do { network = try OverlayNetwork(network: cidr, subnetLength: Int(opts["subnet-len"] ?? "24") ?? 24) } catch { fail(error.msg + ": " + error.details) }
let vni = UInt32(opts["vni"] ?? "1") ?? 1
let port = UInt16(opts["port"] ?? "4789") ?? 4789
let resync = Int32(opts["resync"] ?? "10") ?? 10
let store = FileLeaseStore(path: storePath)

/// One pass: the underlay address, the lease (kept, address updated), the VTEP, the peers.
@MainActor func pass() throws -> [Reconcile.Operation] {
    let nl = try NetlinkSocket()
    let (under, local) = try VTEP.underlay(nl, named: opts["underlay"])
    let lease = try store.claim(network, node: node, vtep: local)
    let mtu = Int(opts["mtu"] ?? "") ?? under.mtu - (local.family == .v4 ? 50 : 70)
    let index = try VTEP.ensure(nl, vni: vni, port: port, underlay: under.index, lease: lease, mtu: mtu)
    return try VTEP.reconcile(nl, index, node: node, network: network, leases: try store.leases())
}

@MainActor func runPass() {
    do {
        let ops = try pass()
        if !ops.isEmpty { System.logError("cni-overlayd: \(ops.map(\.description).joined(separator: "; "))\n") }
    } catch {
        System.logError("cni-overlayd: \(error)\n")
    }
}

if flags.contains("once") {
    do { _ = try pass() } catch { fail("\(error)") }
    exit(0)
}

// Watch the store's directory for the file being replaced (the store writes by rename).
let dir = storePath.lastIndex(of: "/").map { String(storePath[..<$0]) } ?? "."
let file = storePath.lastIndex(of: "/").map { String(storePath[storePath.index(after: $0)...]) } ?? storePath
try? System.makeDirectories(dir)
let ifd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
guard ifd >= 0, inotify_add_watch(ifd, dir, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE)) >= 0 else { fail("inotify on \(dir)") }
// SIGTERM and SIGINT arrive on a descriptor the loop polls (no work in a signal handler).
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
let sfd = signalfd(-1, &stopSignals, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
guard sfd >= 0 else { fail("signalfd") }
runPass()
var buf = [UInt8](repeating: 0, count: 4096)
while true {
    var p = [pollfd(fd: ifd, events: Int16(POLLIN), revents: 0), pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)]
    let n = poll(&p, 2, resync * 1000)
    if n > 0 && p[1].revents != 0 {
        if flags.contains("release-on-exit") { try? store.release(node: node) }
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
