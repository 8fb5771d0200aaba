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

    /// The master, able to carry VLANs, with no sub-interface of this VLAN ID in its namespace;
    /// the MTU within its own; CNI_IFNAME free in the container.
    public func prepare(_ conf: VlanConfig, _ add: AddSteps) throws -> SubInterfaceSite {
        try SubInterfaceSite(add.ctx, master: conf.master, prev: nil, linkInContainer: conf.linkInContainer, mtu: conf.mtu) { master, nl in
            if master.isLoopback || !master.isEthernet {
                throw Fields.invalid("master", .string(master.name), "is not an Ethernet device (kind \(master.kind ?? "loopback")), which a VLAN needs")
            }
            if let taken = try nl.links().first(where: { $0.kind == "vlan" && $0.parentIndex == master.index && $0.vlanID == conf.vlanId }) {
                throw Vlan.inUse(conf, master, by: "\"\(taken.name)\"")
            }
        }
    }

    /// The VLAN interface in the container.
    public struct Made {
        let site: SubInterfaceSite
        let link: Link
    }

    /// The VLAN interface, made in the container's namespace under a temporary name and renamed
    /// there; a VLAN ID another namespace's sub-interface of the master holds is code 107.
    public func makeInterface(_ conf: VlanConfig, _ p: SubInterfaceSite, _ add: AddSteps) throws -> Made {
        let what = "vlan \(conf.vlanId) \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\""
        let link = try add.makeInContainer(p.cnl, prefix: "vlt", what: what) { name in
            do {
                try p.masterNL.createVlan(
                    name: name, master: p.master.index, id: conf.vlanId, in: p.target, mtu: conf.mtu)
            } catch let e as NetlinkError where e.errno == EEXIST {
                throw Vlan.inUse(conf, p.master, by: "an interface in another network namespace")
            }
        }
        return Made(site: p, link: link)
    }

    /// IPAM's addresses and routes on the VLAN interface (or only the link up without IPAM).
    public func configure(_ conf: VlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        try add.address(m.link.index, in: m.site.container, m.site.cnl, with: ipam, routeMetric: conf.routeMetric)
    }

    /// Deletes the interface.
    public func teardown(_ conf: VlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a VLAN with the configured ID on the master, the configured MTU, with
    /// prevResult's addresses and routes.
    public func verify(_ conf: VlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let ifName = ctx.args.ifName
        let (cnl, l) = try ContainerCheck.link(ctx, kind: ("vlan", "a VLAN"))
        if l.vlanID != conf.vlanId { throw fail("interface \"\(ifName)\" has VLAN ID \(l.vlanID.map(String.init) ?? "none"), not \(conf.vlanId)") }
        if let mtu = conf.mtu, l.mtu != mtu { throw fail("interface \"\(ifName)\" has MTU \(l.mtu), the configuration says \(mtu)") }
        try ContainerCheck.master(of: l, conf.master, linkInContainer: conf.linkInContainer, cnl, ifName: ifName)
        try ContainerCheck.result(prev, l, cnl, ifName: ifName, mac: false)
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
