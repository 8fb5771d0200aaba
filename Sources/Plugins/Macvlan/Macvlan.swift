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
public struct MacvlanPlugin: CNIPlugin {
    public static let type = "macvlan"
    public static let summary = "macvlan plugin (swift-cni): a macvlan of a host interface in the container"

    public init() {}

    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try MacvlanConfig(config, args: args) }

    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try MacvlanConfig(ctx.config, args: ctx.args)
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let masterNL = conf.linkInContainer ? cnl : try NetlinkSocket()
        let rollback = Rollback()
        defer {
            rollback.runIfArmed()
            if !rollback.failures.isEmpty { ctx.log("macvlan: rollback: \(rollback.failures.joined(separator: "; "))") }
        }
        let ifName = ctx.args.ifName
        let master = try Macvlan.master(conf, ctx.config.prevResult, masterNL)
        // Everything that can be refused is refused before IPAM runs: a failed ADD changes nothing.
        try Macvlan.usable(master, masterNL)
        if let mtu = conf.mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        if try cnl.link(named: ifName) != nil {
            throw CNIError(
                .conflict, "container interface \"\(ifName)\" already exists",
                details: "in \(ctx.args.netns); DEL the attachment first or choose another CNI_IFNAME")
        }
        if let ipam = conf.ipam { _ = try Delegate.find(ipam, in: ctx.args.path) }
        // IPAM (a child process) runs while the link is made; its rollback waits for it.
        let ipamTask = conf.ipam.map { ipam in BackgroundTask { try Delegate.add(ipam, ctx) } }
        if let ipamTask, let ipam = conf.ipam {
            rollback.add("IPAM DEL") { if (try? ipamTask.value()) != nil { try Delegate.run(ipam, .del, ctx) } }
        }
        let link: Link
        do {
            let temporary = "mvt" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            try masterNL.createMacvlan(
                name: temporary, master: master.index, mode: conf.mode, in: conf.linkInContainer ? nil : container,
                mtu: conf.mtu, mac: conf.mac, broadcastQueueLength: conf.broadcastQueueLength)
            let made = try cnl.requireLink(temporary)
            rollback.add("delete \(ifName) in the container") { try? cnl.deleteLink(made.index) }
            try cnl.rename(made.index, to: ifName)
            link = made
        } catch {
            throw CNIError(
                .kernelOperationFailed, "failed to create macvlan \"\(ifName)\" on \"\(master.name)\"", details: "\(error)")
        }

        var result = CNIResult()
        if let ipamTask {
            let ipam = try ipamTask.value()
            guard !ipam.ips.isEmpty else {
                throw CNIError(.invalidNetworkConfig, "IPAM plugin \"\(conf.ipam ?? "")\" returned no address")
            }
            result.ips = ipam.ips.map { CNIResult.IPConfig(address: $0.address, gateway: $0.gateway, interface: 0) }
            result.routes = ipam.routes
            result.dns = ipam.dns
        }
        do {
            if conf.ipam != nil {
                try container.configure(&result, index: link.index, ifName: ifName, nl: cnl, routeMetric: conf.routeMetric)
            } else {
                try cnl.setUp(link.index, arpNotify: true)
            }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure \(ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        if let dns = conf.dns, !dns.isEmpty { result.dns = dns }
        let now = try cnl.link(index: link.index) ?? link
        result.interfaces = [.init(name: now.name, mac: now.mac.description, mtu: now.mtu, sandbox: ctx.args.netns)]
        _ = try result.json(version: ctx.config.cniVersion)
        rollback.disarm()
        return result
    }

    /// Releases IPAM and deletes the interface; a missing namespace or interface is success.
    public func del(_ ctx: PluginContext) throws {
        let conf = try MacvlanConfig(ctx.config, args: ctx.args, forAdd: false)
        var failures = StepFailures()
        // IPAM DEL (a child process) runs beside the link deletion (measured: faster than one
        // after the other).
        let ipam = conf.ipam.map { ipam in BackgroundTask { try Delegate.run(ipam, .del, ctx) } }
        if !ctx.args.netns.isEmpty {
            failures.run("delete \(ctx.args.ifName) in \(ctx.args.netns)", code: .kernelOperationFailed) {
                try NetworkNamespace.deleteInterface(ctx.args.ifName, inNamespaceAt: ctx.args.netns)
            }
        }
        if let ipam { failures.run("IPAM DEL", code: .delegateFailed) { try ipam.value() } }
        try failures.throwIfAny("macvlan DEL was incomplete")
    }

    /// The interface is a macvlan in the configured mode on the master, with prevResult's MAC,
    /// addresses and routes; then IPAM CHECK.
    public func check(_ ctx: PluginContext) throws {
        let conf = try MacvlanConfig(ctx.config, args: ctx.args, forAdd: false)
        guard let prev = ctx.config.prevResult else {
            throw CNIError(.invalidNetworkConfig, "macvlan CHECK needs prevResult", details: "the runtime passes the ADD result")
        }
        if let ipam = conf.ipam { try Delegate.run(ipam, .check, ctx) }
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

    public func gc(_ ctx: PluginContext) throws {
        let conf = try MacvlanConfig(ctx.config, args: ctx.args, forAdd: false)
        if let ipam = conf.ipam { try Delegate.run(ipam, .gc, ctx) }
    }

    public func status(_ ctx: PluginContext) throws {
        let conf = try MacvlanConfig(ctx.config, args: ctx.args, forAdd: false)
        if let ipam = conf.ipam { try Delegate.run(ipam, .status, ctx) }
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
