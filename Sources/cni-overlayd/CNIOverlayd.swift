import ArgumentParser
import CLinux
import Base
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

/// cni-overlayd: holds this host's lease of an overlay network, writes the node file the vxlan
/// plugin reads, keeps the VTEP, and reconciles the other hosts' entries (FDB, neighbour, route)
/// with the store: on every change (etcd watch; inotify for the file store), on every link or
/// address change of the host (rtnetlink: a deleted or flapped VTEP, a new underlay address), and
/// on a periodic resync.
@main
struct CNIOverlayd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cni-overlayd", abstract: "The agent of swift-cni's vxlan overlay: this host's lease, VTEP and peers.")

    @Option(help: "The lease store: a lease file's path, or \"etcd\".")
    var store: String

    @Option(help: "The overlay network (CIDR).")
    var network: String

    @Option(help: "This host's name in the store.")
    var node: String

    @Option(help: "The prefix length of each host's subnet.")
    var subnetLen = 24

    @Option(help: "The VXLAN network identifier.")
    var vni = 1

    @Option(help: "The VXLAN UDP port.")
    var port = 4789

    @Option(help: "The underlay interface (default: the interface of the default route).")
    var underlay: String?

    @Option(help: "The VTEP's MTU (default: the underlay's, less the VXLAN overhead).")
    var mtu: Int?

    @Option(help: "Seconds between full resyncs.")
    var resync = 10

    @Option(help: "The node file the vxlan plugin reads (default /run/swift-cni/overlay/vxlan.<vni>.json).")
    var nodeFile: String?

    @Option(help: "Also write flanneld's subnet file here (e.g. /run/flannel/subnet.env), for the flannel CNI plugin.")
    var subnetFile: String?

    @Flag(help: "One pass (claim, program, write the node file), then exit.")
    var once = false

    @Flag(help: "Release the lease and remove the node file on SIGTERM/SIGINT.")
    var releaseOnExit = false

    @Option(help: "etcd: client URLs, comma-separated.")
    var etcdEndpoints: String?

    @Option(help: "etcd: the key prefix.")
    var etcdPrefix = "/swift-cni/overlay"

    @Option(help: "etcd: the lease's TTL in seconds.")
    var leaseTtl = 10

    @Option(help: "etcd: the CA certificate (PEM).")
    var etcdCacert: String?

    @Option(help: "etcd: the client certificate (PEM).")
    var etcdCert: String?

    @Option(help: "etcd: the client key (PEM).")
    var etcdKey: String?

    func validate() throws {
        func within(_ name: String, _ v: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(v) else { throw ValidationError("--\(name) \(v): must be a number in \(r)") }
        }
        guard IPPrefix(network) != nil else { throw ValidationError("--network \(network): not a CIDR") }
        guard !node.isEmpty else { throw ValidationError("--node must not be empty") }
        try within("subnet-len", subnetLen, 1...126)
        try within("vni", vni, 1...16_777_215)
        try within("port", port, 1...65535)
        try within("resync", resync, 1...86400)
        if let mtu { try within("mtu", mtu, 576...65535) }
        if let subnetFile, !subnetFile.hasPrefix("/") { throw ValidationError("--subnet-file \(subnetFile): must be an absolute path") }
        try within("lease-ttl", leaseTtl, 2...86400)
        if store == "etcd" && (etcdEndpoints ?? "").split(separator: ",").isEmpty {
            throw ValidationError("--store etcd needs --etcd-endpoints URL[,URL...]")
        }
    }

    @MainActor func run() async throws {
        let overlay: OverlayNetwork
        do {
            overlay = try OverlayNetwork(network: IPPrefix(network)!, subnetLength: subnetLen)
        } catch {
            Agent.fail(error.msg + ": " + error.details)
        }
        let host = HostSide(
            network: overlay, node: node, vni: UInt32(vni), port: UInt16(port), underlay: underlay, fixedMTU: mtu,
            nodeFilePath: nodeFile ?? NodeFile.defaultPath(vni: UInt32(vni)), subnetFilePath: subnetFile)
        // SIGTERM and SIGINT: a C handler writes to a pipe the loops read (threads of the runtime
        // exist already, so a mask set here would not cover them; no Swift code runs in the handler).
        let stopFD = clinux_stop_signal_pipe()
        guard stopFD >= 0 else { Agent.fail("cannot install the SIGTERM/SIGINT handler") }
        let agent = Agent(host: host, resync: Int32(resync), once: once, releaseOnExit: releaseOnExit, stopFD: stopFD)
        if store == "etcd" {
            let tls = EtcdTLSFiles(ca: etcdCacert, cert: etcdCert, key: etcdKey)
            await EtcdAgent(agent, endpoints: etcdEndpoints!.split(separator: ",").map(String.init), prefix: etcdPrefix, ttl: leaseTtl, tls: tls).run()
        } else {
            FileAgent(agent, path: store).run()
        }
    }
}

/// What every store's loop shares: this host, the pace, and how it stops.
struct Agent {
    let host: HostSide
    let resync: Int32
    let once: Bool
    let releaseOnExit: Bool
    /// Readable once SIGTERM or SIGINT came.
    let stopFD: Int32

    static func fail(_ s: String) -> Never {
        System.logError("cni-overlayd: \(s)\n")
        exit(1)
    }

    static func log(_ s: String) { System.logError("cni-overlayd: \(s)\n") }
}

/// The etcd client's TLS files, as the options give them.
struct EtcdTLSFiles {
    var ca: String?
    var cert: String?
    var key: String?
}
