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
        let master = try Macvlan.master(conf, ctx.config.prevResult, masterNL)
        try Macvlan.usable(master, masterNL)
        if let mtu = conf.mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        if try cnl.link(named: ctx.args.ifName) != nil {
            throw CNIError(
                .conflict, "container interface \"\(ctx.args.ifName)\" already exists",
                details: "in \(ctx.args.netns); DEL the attachment first or choose another CNI_IFNAME")
        }
        return Prepared(container: container, cnl: cnl, masterNL: masterNL, master: master)
    }

    /// The macvlan in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The macvlan, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: MacvlanConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let ifName = add.ctx.args.ifName
        do {
            let temporary = "mvt" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            try p.masterNL.createMacvlan(
                name: temporary, master: p.master.index, mode: conf.mode, in: conf.linkInContainer ? nil : p.container,
                mtu: conf.mtu, mac: conf.mac, broadcastQueueLength: conf.broadcastQueueLength)
            let made = try p.cnl.requireLink(temporary)
            let cnl = p.cnl
            add.undo("delete \(ifName) in the container") { try? cnl.deleteLink(made.index) }
            try p.cnl.rename(made.index, to: ifName)
            return Made(prepared: p, link: made)
        } catch {
            throw CNIError(
                .kernelOperationFailed, "failed to create macvlan \"\(ifName)\" on \"\(p.master.name)\"", details: "\(error)")
        }
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
        let now = try m.prepared.cnl.link(index: m.link.index) ?? m.link
        result.interfaces = [.init(name: now.name, mac: now.mac.description, mtu: now.mtu, sandbox: ctx.args.netns)]
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
        let master = try Macvlan.master(conf, nil, masterNL)
        if l.parentIndex != master.index { throw fail("interface \"\(ctx.args.ifName)\" is not on master \"\(master.name)\"") }
        if let mac = prev.interfaces.first(where: { $0.name == ctx.args.ifName })?.mac, MACAddress(mac) != l.mac {
            throw fail("interface \"\(ctx.args.ifName)\" has MAC \(l.mac), the result says \(mac)")
        }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: l.index, ifName: ctx.args.ifName) {
            throw fail(missing)
        }
    }
}

enum Macvlan {
    /// The master: `master`, else (chained) the last host interface of prevResult, else the
    /// interface of the IPv4 default route. Code 7 naming it when it does not exist.
    /// Refuses a master the kernel would refuse after IPAM ran (macvlan_port_create): not an
    /// Ethernet device, a loopback, or a port of a bridge or bond (its frames belong to that
    /// master: the kernel says EBUSY).
    static func usable(_ master: Link, _ nl: NetlinkSocket) throws {
        func refuse(_ why: String) -> CNIError { Fields.invalid("master", .string(master.name), why) }
        if master.isLoopback { throw refuse("is a loopback device, which cannot carry a macvlan") }
        if !master.isEthernet { throw refuse("is not an Ethernet device (kind \(master.kind ?? "none")), which a macvlan needs") }
        let links = try nl.links()
        if let upper = master.master, let owner = links.first(where: { $0.index == upper }),
            ["bridge", "bond", "team", "openvswitch"].contains(owner.kind ?? "")
        {
            throw refuse("is a port of \(owner.kind!) \"\(owner.name)\"; use \"\(owner.name)\" or a device of its own as master")
        }
    }

    static func master(_ conf: MacvlanConfig, _ prev: CNIResult?, _ nl: NetlinkSocket) throws -> Link {
        var name = conf.master
        if name == nil, let hostIf = prev?.interfaces.last(where: { $0.sandbox == nil || $0.sandbox == "" }) {
            name = hostIf.name
        }
        let found: Link?
        if let name {
            found = try nl.link(named: name)
            guard let found else {
                throw CNIError(
                    .invalidNetworkConfig, "master \"\(name)\" not found",
                    details: conf.linkInContainer ? "looked in the container (linkInContainer)" : "looked on the host")
            }
            return found
        }
        let routes = try nl.routes(family: .v4)
        guard let idx = routes.first(where: { $0.destination == nil && $0.outputIndex != nil })?.outputIndex,
            let l = try nl.link(index: idx)
        else {
            throw CNIError(
                .invalidNetworkConfig, "no master given and no default route to take it from",
                details: "set \"master\" to the host interface the containers should share")
        }
        return l
    }
}
