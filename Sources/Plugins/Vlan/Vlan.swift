import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `vlan` plugin: the container gets an 802.1Q sub-interface of a host interface, made
/// directly in the container's namespace under a temporary name and renamed there.
public struct VlanPlugin: MainPlugin {
    public static let type = "vlan"
    public static let summary = "vlan plugin (swift-cni): an 802.1Q sub-interface of a host interface in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// ``VlanConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> VlanConfig {
        try VlanConfig(config, args: args, forAdd: forAdd)
    }

    /// What ADD found before any change: the container's namespace, the master.
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        /// The socket of the master's namespace: the container's with linkInContainer.
        let masterNL: NetlinkSocket
        let master: Link
    }

    /// The master, able to carry VLANs; the MTU within its own; CNI_IFNAME free in the container;
    /// no sub-interface of the master with this VLAN ID in the master's namespace.
    public func prepare(_ conf: VlanConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: nil, linkInContainer: conf.linkInContainer, masterNL)
        if master.isLoopback || !master.isEthernet {
            throw Fields.invalid("master", .string(master.name), "is not an Ethernet device (kind \(master.kind ?? "loopback")), which a VLAN needs")
        }
        if let mtu = conf.mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        if let taken = try masterNL.links().first(where: { $0.kind == "vlan" && $0.parentIndex == master.index && $0.vlanID == conf.vlanId }) {
            throw Vlan.inUse(conf, master, by: "\"\(taken.name)\"")
        }
        try cnl.requireFree(ctx.args.ifName, in: ctx.args.netns)
        return Prepared(container: container, cnl: cnl, masterNL: masterNL, master: master)
    }

    /// The VLAN interface in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The VLAN interface, made in the container's namespace under a temporary name and renamed
    /// there; a VLAN ID another namespace's sub-interface of the master holds is code 107.
    public func makeInterface(_ conf: VlanConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let what = "vlan \(conf.vlanId) \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\""
        let link = try add.makeInContainer(p.cnl, prefix: "vlt", what: what) { name in
            do {
                try p.masterNL.createVlan(
                    name: name, master: p.master.index, id: conf.vlanId, in: conf.linkInContainer ? nil : p.container, mtu: conf.mtu)
            } catch let e as NetlinkError where e.errno == EEXIST {
                throw Vlan.inUse(conf, p.master, by: "an interface in another network namespace")
            }
        }
        return Made(prepared: p, link: link)
    }

    /// IPAM's addresses and routes on the VLAN interface (or only the link up without IPAM).
    public func configure(_ conf: VlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        var result = ipam.map { CNIResult(addressesOf: $0, onInterface: 0) } ?? CNIResult()
        do {
            if ipam != nil {
                try m.prepared.container.configure(&result, index: m.link.index, ifName: ctx.args.ifName, nl: m.prepared.cnl, routeMetric: conf.routeMetric)
            } else {
                try m.prepared.cnl.setUp(m.link.index, arpNotify: true)
            }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        try result.list(containerInterface: m.link.index, m.prepared.cnl, ctx)
        return result
    }

    /// Deletes the interface.
    public func teardown(_ conf: VlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a VLAN with the configured ID on the master, the configured MTU, with
    /// prevResult's addresses and routes.
    public func verify(_ conf: VlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let ifName = ctx.args.ifName
        guard let l = try cnl.link(named: ifName) else { throw fail("interface \"\(ifName)\" is missing in \(ctx.args.netns)") }
        guard l.kind == "vlan" else { throw fail("interface \"\(ifName)\" is a \(l.kind ?? "plain link"), not a VLAN") }
        if l.vlanID != conf.vlanId { throw fail("interface \"\(ifName)\" has VLAN ID \(l.vlanID.map(String.init) ?? "none"), not \(conf.vlanId)") }
        if let mtu = conf.mtu, l.mtu != mtu { throw fail("interface \"\(ifName)\" has MTU \(l.mtu), the configuration says \(mtu)") }
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: nil, linkInContainer: conf.linkInContainer, masterNL)
        if l.parentIndex != master.index { throw fail("interface \"\(ifName)\" is not on master \"\(master.name)\"") }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: l.index, ifName: ifName) { throw fail(missing) }
    }
}

enum Vlan {
    /// Code 107: the kernel allows one sub-interface per master and VLAN ID.
    static func inUse(_ conf: VlanConfig, _ master: Link, by holder: String) -> CNIError {
        CNIError(
            .conflict, "VLAN \(conf.vlanId) of master \"\(master.name)\" is in use by \(holder)",
            details: "the kernel allows one sub-interface per master and VLAN ID: DEL that attachment first, or use another vlanId")
    }
}
