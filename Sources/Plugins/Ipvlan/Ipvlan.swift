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

    /// What ADD found before any change: the container's namespace, the master.
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        /// The socket of the master's namespace: the container's with linkInContainer.
        let masterNL: NetlinkSocket
        let master: Link
    }

    /// The master, usable; the MTU within its own; CNI_IFNAME free in the container.
    public func prepare(_ conf: IpvlanConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: ctx.config.prevResult, linkInContainer: conf.linkInContainer, masterNL)
        try Master.usable(master, for: "ipvlan", masterNL)
        if let mtu = conf.mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        try cnl.requireFree(ctx.args.ifName, in: ctx.args.netns)
        return Prepared(container: container, cnl: cnl, masterNL: masterNL, master: master)
    }

    /// The ipvlan in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The ipvlan, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: IpvlanConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "ipt", what: "ipvlan \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\"") { name in
            try p.masterNL.createIpvlan(
                name: name, master: p.master.index, mode: conf.mode, flag: conf.flag, in: conf.linkInContainer ? nil : p.container, mtu: conf.mtu)
        }
        return Made(prepared: p, link: link)
    }

    /// IPAM's addresses and routes (or, chained without IPAM, prevResult's) on the ipvlan, with
    /// arp_notify and ndisc_notify on: the master's neighbours learn the shared MAC's new
    /// addresses at once.
    public func configure(_ conf: IpvlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        guard let addresses = ipam ?? ctx.config.prevResult else { throw CNIError(.invalidNetworkConfig, "ipvlan needs ipam") }
        var result = CNIResult(addressesOf: addresses, onInterface: 0)
        let ifName = ctx.args.ifName
        do {
            try m.prepared.container.perform { try Sysctl.set(["net", "ipv6", "conf", ifName, "ndisc_notify"], "1") }
        } catch {
            // IPv6 disabled in the container: nothing to announce there.
        }
        do {
            try m.prepared.container.configure(&result, index: m.link.index, ifName: ifName, nl: m.prepared.cnl, routeMetric: conf.routeMetric)
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure \(ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        try result.list(containerInterface: m.link.index, m.prepared.cnl, ctx)
        return result
    }

    /// Deletes the interface.
    public func teardown(_ conf: IpvlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is an ipvlan in the configured mode and flag on the master, with prevResult's
    /// addresses and routes.
    public func verify(_ conf: IpvlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let ifName = ctx.args.ifName
        guard let l = try cnl.link(named: ifName) else { throw fail("interface \"\(ifName)\" is missing in \(ctx.args.netns)") }
        guard l.kind == "ipvlan" else { throw fail("interface \"\(ifName)\" is a \(l.kind ?? "plain link"), not an ipvlan") }
        if l.ipvlanMode != conf.mode { throw fail("interface \"\(ifName)\" is in mode \(l.ipvlanMode.map(\.description) ?? "unknown"), not \(conf.mode)") }
        if l.ipvlanFlag != conf.flag { throw fail("interface \"\(ifName)\" has flag \(l.ipvlanFlag.map(\.description) ?? "unknown"), not \(conf.flag)") }
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: nil, linkInContainer: conf.linkInContainer, masterNL)
        if l.parentIndex != master.index { throw fail("interface \"\(ifName)\" is not on master \"\(master.name)\"") }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: l.index, ifName: ifName) { throw fail(missing) }
    }
}
