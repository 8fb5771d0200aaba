import Base
import CNI
import Netlink
import Overlay
import VXLAN

#if canImport(Glibc)
    import Glibc
#endif

/// The `vxlan` main plugin: this host's subnet lease, the VTEP
/// `vxlan.<vni>` (learning off, the lease's MAC and `.0/32`), the other hosts programmed as peers
/// (FDB and neighbour by replace, onlink route last), then the container on a bridge with the
/// `.1` gateway and addresses from host-local inside the lease, delegated to the bridge plugin as
/// flannel does. With the file store the plugin claims and programs peers at each ADD itself
/// (cni-overlayd keeps them current between ADDs); with etcd the agent does both and the plugin
/// reads its node file.
public struct VxlanPlugin: CNIPlugin {
    public static let type = "vxlan"
    public static let summary = "vxlan plugin (swift-cni): a VXLAN overlay across hosts (file store or etcd via cni-overlayd)"

    /// The plugin; its state is the overlay's lease store and the VTEP.
    public init() {}

    /// Decodes and validates the configuration with no lease claimed.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try VxlanConfig(config, args: args) }

    /// Claims the host's subnet, makes or fixes the VTEP and its peers, then delegates the container's side to bridge with host-local in that subnet.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try VxlanConfig(ctx.config, args: ctx.args)
        let lease: NodeLease
        let mtu: Int
        switch conf.store {
        case .file(let path):
            let nl = try NetlinkSocket()
            let (under, local) = try VTEP.underlay(nl, named: conf.underlay)
            mtu = conf.mtu ?? under.mtu - (local.family == .v4 ? 50 : 70)
            let store = FileLeaseStore(path: path)
            let claimed = try store.claimListing(conf.overlay, node: conf.node, vtep: local)
            lease = claimed.lease
            do {
                let index = try VTEP.ensure(nl, vni: conf.vni, port: conf.port, underlay: under.index, lease: lease, mtu: mtu)
                try VTEP.reconcile(nl, index, node: conf.node, network: conf.overlay, leases: claimed.all)
            } catch let e as CNIError {
                throw e
            } catch {
                throw CNIError(.kernelOperationFailed, "cannot set up the VTEP \(VTEP.name(vni: conf.vni))", details: "\(error)")
            }
        case .agent(let path):
            // cni-overlayd holds the lease in etcd and keeps the VTEP and the peers: this host's
            // part is read from its node file; not there yet = try again later (code 11).
            let file = try Vxlan.nodeFile(conf, path)
            guard try NetlinkSocket().link(named: VTEP.name(vni: conf.vni)) != nil else {
                throw CNIError(.tryAgainLater, "no VTEP \(VTEP.name(vni: conf.vni)) yet", details: "cni-overlayd makes it; is it running?")
            }
            lease = file.lease
            mtu = conf.mtu ?? file.mtu
        }
        let out = try Delegate.exec("bridge", .add, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: lease, mtu: mtu))
        do {
            return try CNIResult(json: JSONValue.parse(out), defaultVersion: ctx.config.cniVersion, path: "bridge result")
        } catch {
            throw CNIError(.decodingFailure, "cannot read the bridge plugin's result", details: "\(error)")
        }
    }

    /// The container's attachment goes (the bridge plugin's DEL); the VTEP and the lease stay,
    /// they are the host's.
    public func del(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        _ = try Delegate.exec("bridge", .del, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: try? Vxlan.lease(conf), mtu: conf.mtu))
    }

    /// Checks the VTEP against the lease, then the bridge side.
    public func check(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        guard let lease = try Vxlan.lease(conf) else { throw CNIError(.checkFailed, "no lease of \(conf.node) in \(conf.store)") }
        guard try NetlinkSocket().link(named: VTEP.name(vni: conf.vni)) != nil else {
            throw CNIError(.checkFailed, "no VTEP \(VTEP.name(vni: conf.vni))")
        }
        _ = try Delegate.exec("bridge", .check, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: lease, mtu: conf.mtu))
    }

    /// Forwards GC to the bridge side (ipMasq elements, addresses).
    public func gc(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        _ = try Delegate.exec("bridge", .gc, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: try? Vxlan.lease(conf), mtu: conf.mtu))
    }

    /// 50 until this host has a lease and its VTEP.
    public func status(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        guard (try? Vxlan.lease(conf)) ?? nil != nil else {
            throw CNIError(.notAvailable, "vxlan: \(conf.node) has no lease in \(conf.store) yet")
        }
        guard (try? NetlinkSocket().link(named: VTEP.name(vni: conf.vni))) != nil else {
            throw CNIError(.notAvailable, "vxlan: no VTEP \(VTEP.name(vni: conf.vni)) yet")
        }
    }
}

enum Vxlan {
    /// This host's lease: from the lease file, or from the agent's node file.
    static func lease(_ conf: VxlanConfig) throws(CNIError) -> NodeLease? {
        switch conf.store {
        case .file(let path):
            return try OverlayError.asCNI { () throws(OverlayError) in try FileLeaseStore(path: path).leases().first { $0.node == conf.node } }
        case .agent(let path): return try OverlayError.asCNI { () throws(OverlayError) in try NodeFile.read(path)?.lease }
        }
    }

    /// The agent's node file, which must be there and be for this overlay.
    static func nodeFile(_ conf: VxlanConfig, _ path: String) throws(CNIError) -> NodeFile {
        guard let file = try OverlayError.asCNI({ () throws(OverlayError) in try NodeFile.read(path) }) else {
            throw CNIError(.tryAgainLater, "no node file \(path) yet", details: "cni-overlayd writes it once it holds a lease; is it running?")
        }
        guard file.network == conf.overlay, file.vni == conf.vni else {
            throw CNIError(
                .invalidNetworkConfig,
                "the node file \(path) is for network \(file.network.network) (subnetLen \(file.network.subnetLength), vni \(file.vni))",
                details: "this configuration says \(conf.overlay.network) (subnetLen \(conf.overlay.subnetLength), vni \(conf.vni))")
        }
        return file
    }

    /// The bridge plugin's configuration for this host: the lease's subnet to host-local, a route
    /// to the whole overlay, the VTEP's MTU.
    static func bridgeConfig(_ ctx: PluginContext, _ conf: VxlanConfig, lease: NodeLease?, mtu: Int?) -> [UInt8] {
        var ipam: JSONObject = ["type": .string("host-local"), "dataDir": .string(conf.dataDir)]
        if let lease {
            ipam["ranges"] = .array([.array([.object(["subnet": .string(lease.subnet.description)])])])
            ipam["routes"] = .array([.object(["dst": .string(conf.overlay.network.description)])])
        }
        var o: JSONObject = [
            "cniVersion": .string(ctx.config.cniVersion.rawValue), "name": .string(ctx.config.name), "type": .string("bridge"),
            "bridge": .string(conf.bridge), "isGateway": .bool(true), "ipam": .object(ipam),
        ]
        if let mtu { o["mtu"] = .int(mtu) }
        if let m = ctx.config.raw["routeMetric"] { o["routeMetric"] = m }
        if conf.ipMasq {
            o["ipMasq"] = .bool(true)
            o["ipMasqExclude"] = .array([.string(conf.overlay.network.description)])
        }
        // What the runtime sent for the attachment goes on: prevResult (CHECK, a chained DEL), the
        // valid attachments (GC: without them the bridge plugin would collect every one), and
        // runtimeConfig/args.
        for key in ["prevResult", "cni.dev/valid-attachments", "runtimeConfig", "args"] {
            if let v = ctx.config.raw[key] { o[key] = v }
        }
        return Array(JSONValue.object(o).serialized().utf8)
    }
}

struct VxlanConfig {
    let overlay: OverlayNetwork
    var vni: UInt32 = 1
    var port: UInt16 = 4789
    var underlay: String?
    var mtu: Int?
    /// Traffic from the containers leaving the overlay is masqueraded; within it, never.
    var ipMasq = false
    /// Where the lease comes from: the lease file the plugin claims in, or cni-overlayd's node file
    /// (`store.type` etcd: the agent holds the lease in etcd).
    enum Store: CustomStringConvertible {
        case file(String)
        case agent(nodeFile: String)
        var description: String {
            switch self {
            case .file(let p): return p
            case .agent(let p): return "the node file \(p)"
            }
        }
    }
    var store: Store
    var node: String
    var bridge: String
    var dataDir = "/var/lib/cni/networks"

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        guard let network = try f.prefix("network") else {
            throw CNIError(.invalidNetworkConfig, "missing \"network\"", details: "the overlay's CIDR, e.g. \"10.244.0.0/16\"")
        }
        let subnetLength = try f.int("subnetLen", in: 1...126) ?? 24
        overlay = try OverlayError.asCNI { () throws(OverlayError) in try OverlayNetwork(network: network, subnetLength: subnetLength) }
        vni = UInt32(try f.int("vni", in: 1...16_777_215) ?? 1)
        port = UInt16(try f.int("port", in: 1...65535) ?? 4789)
        underlay = try f.string("underlay")
        if let u = underlay { try VxlanConfig.interfaceName(u, "underlay") }
        mtu = try f.int("mtu", in: 576...65535)
        ipMasq = try f.bool("ipMasq") ?? false
        var store = Store.file("/var/lib/cni/vxlan/\(conf.name).leases")
        if let s = try f.object("store") {
            switch try s.string("type") ?? "file" {
            case "file":
                if let p = try s.string("path") {
                    guard p.hasPrefix("/") else { throw Fields.invalid("store.path", .string(p), "must be an absolute path") }
                    store = .file(p)
                }
            case "etcd":
                // The endpoints, TLS files and prefix are cni-overlayd's options: the plugin only
                // reads the node file the agent writes.
                let p = try s.string("nodeFile") ?? NodeFile.defaultPath(vni: vni)
                guard p.hasPrefix("/") else { throw Fields.invalid("store.nodeFile", .string(p), "must be an absolute path") }
                store = .agent(nodeFile: p)
            case let t:
                throw Fields.invalid("store.type", .string(t), "must be \"file\" or \"etcd\"")
            }
        }
        self.store = store
        if let d = try f.string("dataDir"), !d.isEmpty {
            guard d.hasPrefix("/") else { throw Fields.invalid("dataDir", .string(d), "must be an absolute path") }
            dataDir = d
        }
        if let n = try f.string("nodeName"), !n.isEmpty {
            node = n
        } else {
            var buf = [CChar](repeating: 0, count: 256)
            gethostname(&buf, 255)
            node = String(cString: buf)
        }
        bridge = try f.string("bridge") ?? "vxbr\(vni)"
        try VxlanConfig.interfaceName(bridge, "bridge")
        if forAdd { try args.checkCNIArgs(known: []) }
    }

    static func interfaceName(_ name: String, _ key: String) throws(CNIError) {
        do { try CommandArgs.validateInterfaceName(name, variable: key) } catch {
            throw Fields.invalid(key, .string(name), error.details.isEmpty ? error.msg : error.details)
        }
    }
}

extension OverlayError: CNIErrorConvertible {
    /// The vxlan plugin's error for it: code 7, 106, 105, 11 or 103, the message and details as they are.
    public var cniError: CNIError {
        let code: CNIErrorCode
        switch kind {
        case .invalidConfig: code = .invalidNetworkConfig
        case .addressUnavailable: code = .addressUnavailable
        case .storeFailure: code = .stateStoreFailure
        case .tryAgainLater: code = .tryAgainLater
        case .kernelFailure: code = .kernelOperationFailed
        }
        return CNIError(code, msg, details: details)
    }
}
