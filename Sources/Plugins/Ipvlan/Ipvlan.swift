import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `ipvlan` plugin: the container gets an ipvlan sub-interface of a host NIC (the NIC's MAC,
/// its own addresses), made directly in the container's namespace under a temporary name and
/// renamed there, so a crash never leaves a stray ipvlan on the host and the name never collides
/// with a host interface.
public struct IpvlanPlugin: MainPlugin {
    public static let type = "ipvlan"
    public static let summary = "ipvlan plugin (swift-cni): an ipvlan of a host interface in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// ``IpvlanConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> IpvlanConfig {
        try IpvlanConfig(config, args: args, forAdd: forAdd)
    }

    /// The master, usable; the MTU within its own; CNI_IFNAME free in the container.
    public func prepare(_ conf: IpvlanConfig, _ add: AddSteps) throws -> SubInterfaceSite {
        try SubInterfaceSite(
            add.ctx, master: conf.master, prev: add.ctx.config.prevResult, linkInContainer: conf.linkInContainer, mtu: conf.mtu
        ) { master, nl in try Master.usable(master, for: "ipvlan", nl) }
    }

    /// The ipvlan in the container.
    public struct Made {
        let site: SubInterfaceSite
        let link: Link
    }

    /// The ipvlan, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: IpvlanConfig, _ p: SubInterfaceSite, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "ipt", what: "ipvlan \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\"") { name in
            try p.masterNL.createIpvlan(
                name: name, master: p.master.index, mode: conf.mode, flag: conf.flag, in: p.target, mtu: conf.mtu)
        }
        return Made(site: p, link: link)
    }

    /// IPAM's addresses and routes (or, chained without IPAM, prevResult's) on the ipvlan, with
    /// arp_notify and ndisc_notify on: the master's neighbours learn the shared MAC's new
    /// addresses at once.
    public func configure(_ conf: IpvlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        guard let addresses = ipam ?? add.ctx.config.prevResult else { throw CNIError(.invalidNetworkConfig, "ipvlan needs ipam") }
        let ifName = add.ctx.args.ifName
        do {
            try m.site.container.perform { try Sysctl.set(["net", "ipv6", "conf", ifName, "ndisc_notify"], "1") }
        } catch {
            // IPv6 disabled in the container: nothing to announce there.
        }
        return try add.address(m.link.index, in: m.site.container, m.site.cnl, with: addresses, routeMetric: conf.routeMetric)
    }

    /// Deletes the interface.
    public func teardown(_ conf: IpvlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is an ipvlan in the configured mode and flag on the master, with prevResult's
    /// addresses and routes.
    public func verify(_ conf: IpvlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let ifName = ctx.args.ifName
        let (cnl, l) = try ContainerCheck.link(ctx, kind: ("ipvlan", "an ipvlan"))
        if l.ipvlanMode != conf.mode { throw fail("interface \"\(ifName)\" is in mode \(l.ipvlanMode.map(\.description) ?? "unknown"), not \(conf.mode)") }
        if l.ipvlanFlag != conf.flag { throw fail("interface \"\(ifName)\" has flag \(l.ipvlanFlag.map(\.description) ?? "unknown"), not \(conf.flag)") }
        try ContainerCheck.master(of: l, conf.master, linkInContainer: conf.linkInContainer, cnl, ifName: ifName)
        try ContainerCheck.result(prev, l, cnl, ifName: ifName, mac: false)
    }
}
