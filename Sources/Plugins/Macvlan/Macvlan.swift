import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `macvlan` plugin: the container gets a macvlan sub-interface of a host NIC (its own MAC on
/// the host's network), made directly in the container's namespace under a temporary name and
/// renamed there, so a crash never leaves a stray macvlan on the host.
public struct MacvlanPlugin: MainPlugin {
    public static let type = "macvlan"
    public static let summary = "macvlan plugin (swift-cni): a macvlan of a host interface in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// ``MacvlanConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> MacvlanConfig {
        try MacvlanConfig(config, args: args, forAdd: forAdd)
    }

    /// The master, usable; the MTU within its own; CNI_IFNAME free in the container.
    public func prepare(_ conf: MacvlanConfig, _ add: AddSteps) throws -> SubInterfaceSite {
        try SubInterfaceSite(
            add.ctx, master: conf.master, prev: add.ctx.config.prevResult, linkInContainer: conf.linkInContainer, mtu: conf.mtu
        ) { master, nl in try Master.usable(master, for: "macvlan", nl) }
    }

    /// The macvlan in the container.
    public struct Made {
        let site: SubInterfaceSite
        let link: Link
    }

    /// The macvlan, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: MacvlanConfig, _ p: SubInterfaceSite, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "mvt", what: "macvlan \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\"") { name in
            try p.masterNL.createMacvlan(
                name: name, master: p.master.index, mode: conf.mode, in: p.target,
                mtu: conf.mtu, mac: conf.mac, broadcastQueueLength: conf.broadcastQueueLength)
        }
        return Made(site: p, link: link)
    }

    /// IPAM's addresses and routes on the macvlan (or only the link up without IPAM).
    public func configure(_ conf: MacvlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        try add.address(m.link.index, in: m.site.container, m.site.cnl, with: ipam, routeMetric: conf.routeMetric)
    }

    /// Deletes the interface (the macvlan goes with it).
    public func teardown(_ conf: MacvlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a macvlan in the configured mode on the master, with prevResult's MAC,
    /// addresses and routes.
    public func verify(_ conf: MacvlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        let (cnl, l) = try ContainerCheck.link(ctx, kind: ("macvlan", "a macvlan"))
        if l.macvlanMode != conf.mode { throw CNIError(.checkFailed, "interface \"\(ctx.args.ifName)\" is not in mode \(conf.mode)") }
        try ContainerCheck.master(of: l, conf.master, linkInContainer: conf.linkInContainer, cnl, ifName: ctx.args.ifName)
        try ContainerCheck.result(prev, l, cnl, ifName: ctx.args.ifName)
    }
}
