import CNI
import Netlink
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

/// The `vxlan` main plugin, file store only (#8 in progress): this host's subnet lease, the VTEP
/// `vxlan.<vni>` (learning off, the lease's MAC and `.0/32`), the other hosts programmed as peers
/// (FDB and neighbour by replace, onlink route last), then the container on a bridge with the
/// `.1` gateway and addresses from host-local inside the lease, delegated to the bridge plugin as
/// flannel does. Peers are programmed at each ADD; the agent that watches the store is not here
/// yet, so a host learns of a later host at its next ADD.
public struct VxlanPlugin: CNIPlugin {
    public static let type = "vxlan"
    public static let summary = "vxlan plugin (swift-cni): a VXLAN overlay across hosts (file store)"

    public init() {}

    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try VxlanConfig(config, args: args) }

    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try VxlanConfig(ctx.config, args: ctx.args)
        let nl = try NetlinkSocket()
        let (under, local) = try VTEP.underlay(nl, named: conf.underlay)
        let mtu = conf.mtu ?? under.mtu - (local.family == .v4 ? 50 : 70)
        let store = FileLeaseStore(path: conf.storePath)
        let lease = try store.claim(conf.overlay, node: conf.node, vtep: local)
        do {
            let index = try VTEP.ensure(nl, vni: conf.vni, port: conf.port, underlay: under.index, lease: lease, mtu: mtu)
            try VTEP.reconcile(nl, index, node: conf.node, network: conf.overlay, leases: try store.leases())
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "cannot set up the VTEP \(VTEP.name(vni: conf.vni))", details: "\(error)")
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
        let lease = try? FileLeaseStore(path: conf.storePath).leases().first { $0.node == conf.node }
        _ = try Delegate.exec("bridge", .del, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: lease, mtu: conf.mtu))
    }

    public func check(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        guard let lease = try FileLeaseStore(path: conf.storePath).leases().first(where: { $0.node == conf.node }) else {
            throw CNIError(.checkFailed, "no lease of \(conf.node) in \(conf.storePath)")
        }
        guard try NetlinkSocket().link(named: VTEP.name(vni: conf.vni)) != nil else {
            throw CNIError(.checkFailed, "no VTEP \(VTEP.name(vni: conf.vni))")
        }
        _ = try Delegate.exec("bridge", .check, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: lease, mtu: conf.mtu))
    }

    public func gc(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        let lease = try? FileLeaseStore(path: conf.storePath).leases().first { $0.node == conf.node }
        _ = try Delegate.exec("bridge", .gc, ctx, stdin: Vxlan.bridgeConfig(ctx, conf, lease: lease, mtu: conf.mtu))
    }

    /// 50 until this host has a lease and its VTEP.
    public func status(_ ctx: PluginContext) throws {
        let conf = try VxlanConfig(ctx.config, args: ctx.args, forAdd: false)
        guard (try? FileLeaseStore(path: conf.storePath).leases().contains { $0.node == conf.node }) == true else {
            throw CNIError(.notAvailable, "vxlan: \(conf.node) has no lease in \(conf.storePath) yet")
        }
        guard (try? NetlinkSocket().link(named: VTEP.name(vni: conf.vni))) != nil else {
            throw CNIError(.notAvailable, "vxlan: no VTEP \(VTEP.name(vni: conf.vni)) yet")
        }
    }
}

enum Vxlan {
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
        // CHECK (and a chained DEL) carry the runtime's prevResult: the bridge plugin needs it.
        if case .object(let original)? = try? JSONValue.parse(ctx.stdin), let prev = original["prevResult"] { o["prevResult"] = prev }
        return Array(JSONValue.object(o).serialized().utf8)
    }
}

struct VxlanConfig {
    let overlay: OverlayNetwork
    var vni: UInt32 = 1
    var port: UInt16 = 4789
    var underlay: String?
    var mtu: Int?
    var storePath: String
    var node: String
    var bridge: String
    var dataDir = "/var/lib/cni/networks"

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        guard let network = try f.prefix("network") else {
            throw CNIError(.invalidNetworkConfig, "missing \"network\"", details: "the overlay's CIDR, e.g. \"10.244.0.0/16\"")
        }
        overlay = try OverlayNetwork(network: network, subnetLength: try f.int("subnetLen", in: 1...126) ?? 24)
        vni = UInt32(try f.int("vni", in: 1...16_777_215) ?? 1)
        port = UInt16(try f.int("port", in: 1...65535) ?? 4789)
        underlay = try f.string("underlay")
        if let u = underlay { try VxlanConfig.interfaceName(u, "underlay") }
        mtu = try f.int("mtu", in: 576...65535)
        if try f.bool("ipMasq") == true {
            throw CNIError(.unsupportedField, "ipMasq is not supported by the vxlan plugin yet", details: "remove it; overlay traffic is not masqueraded")
        }
        var path = "/var/lib/cni/vxlan/\(conf.name).leases"
        if let s = try f.object("store") {
            switch try s.string("type") ?? "file" {
            case "file":
                if let p = try s.string("path") {
                    guard p.hasPrefix("/") else { throw Fields.invalid("store.path", .string(p), "must be an absolute path") }
                    path = p
                }
            case "etcd":
                throw CNIError(.unsupportedField, "store \"etcd\" is not supported yet", details: "it needs cni-overlayd; use {\"type\":\"file\"}")
            case let t:
                throw Fields.invalid("store.type", .string(t), "must be \"file\" or \"etcd\"")
            }
        }
        storePath = path
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
