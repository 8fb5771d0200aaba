import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `vrf` chained plugin, as the reference's: the interface joins VRF `vrfname` in the
/// container (made with its table, or the first free one, when it is not there yet), its
/// addresses and routes kept, in the VRF's table. DEL takes the interface out, and the VRF goes
/// with its last interface. ADD and DEL hold a lock on the namespace file: two interfaces joining
/// one VRF at once never make it twice.
public struct VrfPlugin: CNIPlugin {
    public static let type = "vrf"
    public static let summary = "vrf plugin (swift-cni): the interface in a VRF of the container"
    /// prevResult is the plugin's input: from 0.3.1 on, as the reference.
    public static let supportedVersions = CNIVersion.allSupported.filter { $0 >= .v0_3_1 }

    /// The plugin; it keeps no state outside the container.
    public init() {}

    /// Decodes and validates the configuration with nothing changed.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try VrfConfig(config) }

    /// The interface in the VRF (the VRF made first when it is missing), with its IPv6
    /// addresses and its routes back on it, in the VRF's table; returns prevResult.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try VrfConfig(ctx.config)
        let result = try ctx.chainedPrevResult(Self.type)
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        try NamespaceLock.hold(ctx.args.netns, plugin: Self.type) {
            let rollback = Rollback()
            defer { rollback.runIfArmed() }
            do {
                try VRFJoin(nl: try container.netlink(), conf: conf, ifName: ctx.args.ifName, netns: ctx.args.netns, rollback: rollback).run()
            } catch let e as CNIError {
                throw e
            } catch {
                throw CNIError(.kernelOperationFailed, "vrf: cannot put \(ctx.args.ifName) in VRF \(conf.name) in \(ctx.args.netns)", details: "\(error)")
            }
            rollback.disarm()
        }
        return result
    }

    /// Takes the interface out of the VRF and deletes the VRF when no interface is left in it.
    /// The namespace, the VRF or the interface gone is success (the reference's DEL fails on a
    /// missing interface).
    public func del(_ ctx: PluginContext) throws {
        let conf = try VrfConfig(ctx.config)
        guard !ctx.args.netns.isEmpty, let ns = try? NetworkNamespace(path: ctx.args.netns) else { return }
        try NamespaceLock.hold(ctx.args.netns, plugin: Self.type) {
            do {
                let nl = try ns.netlink()
                guard let vrf = try nl.link(named: conf.name), vrf.kind == "vrf" else { return }
                if let link = try nl.link(named: ctx.args.ifName), link.master == vrf.index { try nl.setMaster(link.index, 0) }
                if try !nl.links().contains(where: { $0.master == vrf.index }) {
                    try Self.delete(nl, vrf.index)
                }
            } catch {
                throw CNIError(.kernelOperationFailed, "vrf: cannot take \(ctx.args.ifName) out of VRF \(conf.name) in \(ctx.args.netns)", details: "\(error)")
            }
        }
    }

    /// The VRF is there, a VRF, with the configured table; the interface is in it.
    public func check(_ ctx: PluginContext) throws {
        let conf = try VrfConfig(ctx.config)
        _ = try ctx.checkedPrevResult(Self.type)
        let nl = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment).netlink()
        guard let vrf = try nl.link(named: conf.name) else { throw CNIError(.checkFailed, "vrf: no VRF \"\(conf.name)\" in \(ctx.args.netns)") }
        guard vrf.kind == "vrf" else { throw CNIError(.checkFailed, "vrf: \"\(conf.name)\" is a \(vrf.kind ?? "plain link"), not a VRF") }
        if let t = conf.table, vrf.vrfTable != t {
            throw CNIError(.checkFailed, "vrf: VRF \"\(conf.name)\" has table \(vrf.vrfTable.map(String.init) ?? "none"), the configuration says \(t)")
        }
        guard let link = try nl.link(named: ctx.args.ifName) else { throw CNIError(.checkFailed, "vrf: no interface \"\(ctx.args.ifName)\"") }
        if link.master != vrf.index { throw CNIError(.checkFailed, "vrf: \(ctx.args.ifName) is not in VRF \"\(conf.name)\"") }
    }

    /// Deletes link `index`; one gone already is fine.
    static func delete(_ nl: NetlinkSocket, _ index: Int32) throws(NetlinkError) {
        do { try nl.deleteLink(index) } catch { if error.errno != ENODEV { throw error } }
    }

    /// Nothing to collect: everything lives in the container's namespace.
    public func gc(_ ctx: PluginContext) throws {}

    /// Always ready.
    public func status(_ ctx: PluginContext) throws {}
}

/// The vrf plugin's configuration (the reference's keys).
struct VrfConfig {
    /// `vrfname`: the VRF device in the container.
    var name: String
    /// The VRF's routing table; the first free one when nil and the VRF is made.
    var table: UInt32?

    init(_ conf: NetConf) throws(CNIError) {
        let f = conf.fields
        guard let name = try f.interfaceName("vrfname"), !name.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "vrf needs \"vrfname\"", details: "the name of the VRF device in the container")
        }
        self.name = name
        if let t = try f.int("table", in: 0...Int(UInt32.max)) {
            if t == 0 {
                table = nil
            } else if (253...255).contains(t) {
                throw Fields.invalid("table", .number(JSONNumber(t)), "is the kernel's \(["default", "main", "local"][t - 253]) table")
            } else {
                table = UInt32(t)
            }
        }
    }
}

/// ADD's steps, under the lock.
struct VRFJoin {
    let nl: NetlinkSocket
    let conf: VrfConfig
    let ifName: String
    let netns: String
    let rollback: Rollback

    func run() throws {
        guard let link = try nl.link(named: ifName) else { throw CNIError(.invalidNetworkConfig, "vrf: no interface \"\(ifName)\" in \(netns)") }
        let vrf = try findOrMake()
        if link.master == vrf.index { return }  // a repeated ADD
        if let m = link.master {
            let name = try nl.link(index: m)?.name ?? "index \(m)"
            throw CNIError(.invalidNetworkConfig, "vrf: \(ifName) has a master already: \(name)", details: "an interface joins one VRF, and no bridge")
        }
        // Enslaving cycles the link: the kernel drops its IPv6 addresses (unless
        // keep_addr_on_down) and its gateway routes; both are taken first and put back.
        let table = vrf.vrfTable ?? 0
        let v6 = try nl.addresses(link.index, family: .v6).filter { $0.scope == 0 }
        let routes = try (nl.routes(family: .v4) + nl.routes(family: .v6)).filter { $0.outputIndex == link.index && $0.scope == 0 }
        try nl.setMaster(link.index, vrf.index)
        rollback.add("take \(ifName) out of \(conf.name)") { try nl.setMaster(link.index, 0) }
        let now = Set(try nl.addresses(link.index, family: .v6).map(\.prefix))
        for a in v6 where !now.contains(a.prefix) { try nl.addAddress(link.index, a.prefix, noDAD: true) }
        // The routes the kernel makes again with the addresses (their prefixes, IPv6
        // link-local) are in the VRF's table already; the others follow, the link's routes
        // first (a gateway route needs the route to its gateway).
        let remade = Set(v6.map(\.prefix.network)).union([IPPrefix("fe80::/64")!])
        let moving = routes.filter { r in r.gateway != nil || !(r.destination.map(remade.contains) ?? false) }
        for r in moving.onLinkFirst {
            var moved = r
            moved.table = table
            try nl.replaceRoute(moved)
        }
    }

    /// The VRF, made (up, with its table) when missing; one there with another table than the
    /// configured one is code 7, and so is a link of that name that is no VRF.
    func findOrMake() throws -> Link {
        if let l = try nl.link(named: conf.name) {
            guard l.kind == "vrf" else { throw CNIError(.invalidNetworkConfig, "vrf: \"\(conf.name)\" in \(netns) is a \(l.kind ?? "plain link"), not a VRF") }
            if let t = conf.table, l.vrfTable != t {
                throw CNIError(.invalidNetworkConfig, "vrf: VRF \"\(conf.name)\" exists with table \(l.vrfTable.map(String.init) ?? "none"), not \(t)")
            }
            return l
        }
        let table = try conf.table ?? freeTable()
        try nl.createVRF(name: conf.name, table: table)
        let made = try nl.requireLink(conf.name)
        rollback.add("delete VRF \(conf.name)") { try nl.deleteLink(made.index) }
        try nl.setUp(made.index)
        return made
    }

    /// The first table from 1 that no VRF, rule or route of the namespace uses.
    func freeTable() throws -> UInt32 {
        var used = try nl.tablesInUse()
        for l in try nl.links() { if let t = l.vrfTable { used.insert(t) } }
        var t: UInt32 = 1
        while used.contains(t) || (253...255).contains(t) { t += 1 }
        return t
    }
}
