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

    /// What ADD found before any change: the container's namespace, the master.
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        /// The socket of the master's namespace: the container's with linkInContainer.
        let masterNL: NetlinkSocket
        let master: Link
    }

    /// The master, usable; the MTU within its own; CNI_IFNAME free in the container.
    public func prepare(_ conf: MacvlanConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: ctx.config.prevResult, linkInContainer: conf.linkInContainer, masterNL)
        try Master.usable(master, for: "macvlan", masterNL)
        if let mtu = conf.mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        try cnl.requireFree(ctx.args.ifName, in: ctx.args.netns)
        return Prepared(container: container, cnl: cnl, masterNL: masterNL, master: master)
    }

    /// The macvlan in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The macvlan, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: MacvlanConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "mvt", what: "macvlan \"\(add.ctx.args.ifName)\" on \"\(p.master.name)\"") { name in
            try p.masterNL.createMacvlan(
                name: name, master: p.master.index, mode: conf.mode, in: conf.linkInContainer ? nil : p.container,
                mtu: conf.mtu, mac: conf.mac, broadcastQueueLength: conf.broadcastQueueLength)
        }
        return Made(prepared: p, link: link)
    }

    /// IPAM's addresses and routes on the macvlan (or only the link up without IPAM).
    public func configure(_ conf: MacvlanConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        var result = CNIResult()
        do {
            if let ipam {
                result = CNIResult(addressesOf: ipam, onInterface: 0)
                try m.prepared.container.configure(
                    &result, index: m.link.index, ifName: ctx.args.ifName, nl: m.prepared.cnl, routeMetric: conf.routeMetric)
            } else {
                try m.prepared.cnl.setUp(m.link.index, arpNotify: true)
            }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        try result.list(containerInterface: m.link.index, m.prepared.cnl, ctx)
        return result
    }

    /// Deletes the interface (the macvlan goes with it).
    public func teardown(_ conf: MacvlanConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a macvlan in the configured mode on the master, with prevResult's MAC,
    /// addresses and routes.
    public func verify(_ conf: MacvlanConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        guard let l = try cnl.link(named: ctx.args.ifName) else { throw fail("interface \"\(ctx.args.ifName)\" is missing in \(ctx.args.netns)") }
        guard l.kind == "macvlan" else { throw fail("interface \"\(ctx.args.ifName)\" is a \(l.kind ?? "plain link"), not a macvlan") }
        if l.macvlanMode != conf.mode { throw fail("interface \"\(ctx.args.ifName)\" is not in mode \(conf.mode)") }
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(conf.master, prev: nil, linkInContainer: conf.linkInContainer, masterNL)
        if l.parentIndex != master.index { throw fail("interface \"\(ctx.args.ifName)\" is not on master \"\(master.name)\"") }
        if let mac = prev.interfaces.first(where: { $0.name == ctx.args.ifName })?.mac, MACAddress(mac) != l.mac {
            throw fail("interface \"\(ctx.args.ifName)\" has MAC \(l.mac), the result says \(mac)")
        }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: l.index, ifName: ctx.args.ifName) {
            throw fail(missing)
        }
    }
}
