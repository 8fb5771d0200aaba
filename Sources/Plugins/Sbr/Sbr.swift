import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `sbr` chained plugin (source-based routing), as the reference's: traffic from each of the
/// interface's addresses is looked up in a table of its own (a rule `from <address> lookup
/// <table>`), which gets the interface's routes and a default route through the gateway; the
/// main table keeps none of them, so the interface is used only by traffic from its addresses.
/// With `table`, only the rules are added, to that table. Everything lives in the container's
/// namespace (GC has nothing to collect); ADD and DEL hold a lock on the namespace file, so
/// two attachments of one container never pick the same table.
public struct SbrPlugin: CNIPlugin {
    public static let type = "sbr"
    public static let summary = "sbr plugin (swift-cni): source-based routing for an interface of the container"
    /// The first table the plugin picks (the reference's).
    static let firstTable: UInt32 = 100

    /// The plugin; it keeps no state outside the container.
    public init() {}

    /// Decodes and validates the configuration with nothing changed.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try SbrConfig(config) }

    /// The rules (and without `table`, the tables) for the addresses prevResult gives the
    /// interface; returns prevResult. A failure puts back everything it changed.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try SbrConfig(ctx.config)
        let result = try ctx.chainedPrevResult(Self.type)
        let ips = try Self.addresses(result, ctx.args.ifName)
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        try NamespaceLock.hold(ctx.args.netns, plugin: Self.type) { try Self.route(ctx, conf, ips, container) }
        return result
    }

    /// ADD's work, under the lock.
    static func route(_ ctx: PluginContext, _ conf: SbrConfig, _ ips: [CNIResult.IPConfig], _ container: NetworkNamespace) throws {
        let rollback = Rollback()
        defer { rollback.runIfArmed() }
        do {
            let nl = try container.netlink()
            guard let link = try nl.link(named: ctx.args.ifName) else {
                throw CNIError(.invalidNetworkConfig, "sbr: no interface \"\(ctx.args.ifName)\" in \(ctx.args.netns)")
            }
            if let table = conf.table {
                let listed = try nl.routingRules(family: .v4) + nl.routingRules(family: .v6)
                for ip in ips { try Self.rule(nl, ip.address.address, table: table, listed: listed, rollback) }
            } else {
                try SourceTables(nl: nl, link: link, conf: conf, rollback: rollback).make(ips)
            }
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "sbr: cannot set up source-based routing for \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        rollback.disarm()
    }

    /// Removes the rules of the interface's addresses (those on it and prevResult's); the
    /// interface's routes in the tables the plugin chose go back to the main table. Nothing left
    /// (the namespace or the interface gone) is success.
    public func del(_ ctx: PluginContext) throws {
        let conf = try SbrConfig(ctx.config)
        guard !ctx.args.netns.isEmpty, let ns = try? NetworkNamespace(path: ctx.args.netns) else { return }
        try NamespaceLock.hold(ctx.args.netns, plugin: Self.type) {
            var addresses = Set<IPAddress>()
            var gateways = Set(conf.gateways.values)
            if let prev = ctx.config.prevResult, let ips = try? Self.addresses(prev, ctx.args.ifName) {
                addresses.formUnion(ips.map(\.address.address))
                for ip in ips where conf.gateways[ip.address.family] == nil { if let g = ip.gateway { gateways.insert(g) } }
            }
            do {
                try Self.tidy(try ns.netlink(), ctx.args.ifName, addresses: addresses, table: conf.table, added: gateways)
            } catch {
                throw CNIError(.kernelOperationFailed, "sbr: cannot remove the rules of \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
            }
        }
    }

    /// DEL's work: the rules from `addresses` and the interface's (to `table` only, when set);
    /// the interface's routes in the tables the plugin chose go back to the main table, but the
    /// default routes through `added` (the gateways ADD gave the tables).
    static func tidy(_ nl: NetlinkSocket, _ ifName: String, addresses: Set<IPAddress>, table: UInt32?, added: Set<IPAddress>) throws {
        var addresses = addresses
        let link = try nl.link(named: ifName)
        if let link { for a in try nl.addresses(link.index) { addresses.insert(a.prefix.address) } }
        for f in [IPFamily.v4, .v6] {
            for r in try nl.routingRules(family: f) {
                guard let src = r.source, src.length == f.bitWidth, addresses.contains(src.address) else { continue }
                if let table, r.table != table { continue }
                do {
                    try nl.deleteRoutingRule(r)
                } catch {
                    if error.errno != ENOENT { throw error }
                }
                guard table == nil, r.table >= firstTable, let link else { continue }
                let routes = try nl.routes(family: f, table: r.table).filter { $0.outputIndex == link.index }
                for route in routes.onLinkFirst {
                    let own =
                        route.destination == nil && route.gateway.map(added.contains) == true
                        && KernelRoute.effectiveMetric(route.priority, f) == KernelRoute.effectiveMetric(nil, f)
                    if !own {
                        var back = route
                        back.table = nil
                        try SourceTables.add(nl, back)
                    }
                    _ = try SourceTables.delete(nl, route)
                }
            }
        }
    }

    /// Each address of the interface has its rule; without `table`, its table has the default
    /// route through its gateway on the interface.
    public func check(_ ctx: PluginContext) throws {
        let conf = try SbrConfig(ctx.config)
        let prev = try ctx.checkedPrevResult(Self.type)
        let ips = try Self.addresses(prev, ctx.args.ifName)
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let nl = try container.netlink()
        guard let link = try nl.link(named: ctx.args.ifName) else {
            throw CNIError(.checkFailed, "sbr: no interface \"\(ctx.args.ifName)\" in \(ctx.args.netns)")
        }
        for ip in ips {
            let a = ip.address.address
            let rules = try nl.routingRules(family: a.family).filter { $0.source == IPPrefix(address: a, length: a.family.bitWidth) }
            guard let rule = rules.first(where: { conf.table == nil ? $0.table >= Self.firstTable : $0.table == conf.table }) else {
                throw CNIError(.checkFailed, "sbr: no rule from \(a) lookup \(conf.table.map(String.init) ?? "a table of its own")")
            }
            guard conf.table == nil, let gw = conf.gateways[a.family] ?? ip.gateway else { continue }
            let routes = try nl.routes(family: a.family, table: rule.table)
            if !routes.contains(where: { $0.destination == nil && $0.gateway == gw && $0.outputIndex == link.index }) {
                throw CNIError(.checkFailed, "sbr: table \(rule.table) (from \(a)) has no default route via \(gw) on \(ctx.args.ifName)")
            }
        }
    }

    /// Nothing to collect: everything lives in the container's namespace.
    public func gc(_ ctx: PluginContext) throws {}

    /// Always ready.
    public func status(_ ctx: PluginContext) throws {}

    /// prevResult's addresses on `ifName` (those naming no interface too, as the reference).
    static func addresses(_ result: CNIResult, _ ifName: String) throws(CNIError) -> [CNIResult.IPConfig] {
        let ips = result.sandboxIPs(ifName)
        if ips.isEmpty {
            throw CNIError(
                .invalidNetworkConfig, "sbr: prevResult has no address on \(ifName)",
                details: "sbr routes by source address: it comes after the plugin that gives the interface its addresses")
        }
        return ips
    }

    /// The rule from `address` (its host prefix) to `table`, unless it exists.
    /// `listed`: the namespace's rules, as read before the first change.
    static func rule(_ nl: NetlinkSocket, _ address: IPAddress, table: UInt32, listed: [RoutingRule], _ rollback: Rollback) throws {
        let r = RoutingRule(family: address.family, source: IPPrefix(address: address, length: address.family.bitWidth), table: table)
        // Without a priority the kernel would add the same rule again, one place higher.
        if listed.contains(where: { $0.source == r.source && $0.table == table }) { return }
        try nl.addRoutingRule(r)
        rollback.add("delete rule \(r)") { try nl.deleteRoutingRule(r) }
    }

}

/// Without `table`: a table per address, holding the interface's routes that belong to the
/// address and a default route through its gateway; those routes then leave the main table.
struct SourceTables {
    let nl: NetlinkSocket
    let link: Link
    let conf: SbrConfig
    let rollback: Rollback
    /// RT_SCOPE_LINK.
    static let scopeLink: UInt8 = 253

    /// Does it for `ips`, in order (the first gets the first free table from 100).
    func make(_ ips: [CNIResult.IPConfig]) throws {
        var used = try nl.tablesInUse()
        let rules = try nl.routingRules(family: .v4) + nl.routingRules(family: .v6)
        let main = try (nl.routes(family: .v4) + nl.routes(family: .v6)).filter { $0.outputIndex == link.index }
        var next = SbrPlugin.firstTable
        for ip in ips {
            let a = ip.address.address
            let host = IPPrefix(address: a, length: a.family.bitWidth)
            // A repeated ADD finds its rule, and keeps its table.
            let table: UInt32
            if let r = rules.first(where: { $0.source == host && $0.table >= SbrPlugin.firstTable }) {
                table = r.table
            } else {
                var t = next
                while used.contains(t) { t += 1 }
                table = t
            }
            used.insert(table)
            next = table + 1
            try SbrPlugin.rule(nl, a, table: table, listed: rules, rollback)
            for r in main.filter({ belongs($0, to: ip.address) }).onLinkFirst {
                var copy = r
                copy.table = table
                try replace(copy)
            }
            if let gw = conf.gateways[a.family] ?? ip.gateway {
                try replace(KernelRoute(destination: nil, family: a.family, gateway: gw, outputIndex: link.index, table: table))
            }
        }
        try tidyMain(main, ips)
    }

    /// Whether route `r` of the link is `address`'s: of its family, with its source or a
    /// gateway in its subnet, or neither (a route straight on the link); an IPv6 route through a
    /// link-local gateway too.
    func belongs(_ r: KernelRoute, to address: IPPrefix) -> Bool {
        guard r.family == address.family else { return false }
        if let s = r.source { return address.network.contains(s) }
        guard let g = r.gateway else { return true }
        return address.network.contains(g) || (g.family == .v6 && IPPrefix("fe80::/10")!.contains(g))
    }

    /// Adds or replaces `route` in its table; rollback deletes it.
    func replace(_ route: KernelRoute) throws {
        try nl.replaceRoute(route)
        rollback.add("delete the route to \(route.destination?.description ?? "default") in table \(route.table ?? 254)") {
            try nl.deleteRoute(route)
        }
    }

    /// The main table keeps none of the link's routes but the IPv6 link-local one (neighbour
    /// discovery and link-local traffic from any source need it); with `addSourceHints`, it
    /// keeps the subnet routes of the addresses, with the address as their source hint.
    func tidyMain(_ main: [KernelRoute], _ ips: [CNIResult.IPConfig]) throws {
        let linkLocal = IPPrefix("fe80::/64")!
        var keep: [KernelRoute] = main.filter { $0.destination == linkLocal }
        if conf.addSourceHints {
            for ip in ips {
                let subnet = ip.address.network
                let existing = main.first { $0.destination == subnet && $0.gateway == nil }
                var hinted = existing ?? KernelRoute(destination: subnet, outputIndex: link.index, scope: SourceTables.scopeLink)
                hinted.source = ip.address.address
                if ip.address.family == .v4 { hinted.scope = SourceTables.scopeLink }
                try nl.replaceRoute(hinted)
                if let existing {
                    rollback.add("put back the route to \(subnet)") { try nl.replaceRoute(existing) }
                } else {
                    rollback.add("delete the route to \(subnet)") { try nl.deleteRoute(hinted) }
                }
                keep.append(hinted)
                keep += main.filter { $0.destination == subnet && $0.gateway == nil }
            }
        }
        // Gateway routes first (the reverse of the order they can be added): put back in
        // reverse, the route to a gateway comes back before the routes through it.
        for r in main.onLinkFirst.reversed() where !keep.contains(r) {
            guard try Self.delete(nl, r) else { continue }
            rollback.add("put back the route to \(r.destination?.description ?? "default") in the main table") { try Self.add(nl, r) }
        }
    }

    /// Adds `route`; one that is there is fine.
    static func add(_ nl: NetlinkSocket, _ route: KernelRoute) throws {
        do {
            try nl.addRoute(route)
        } catch {
            if error.errno != EEXIST { throw error }
        }
    }

    /// Deletes `route`; false when it was gone already.
    static func delete(_ nl: NetlinkSocket, _ route: KernelRoute) throws(NetlinkError) -> Bool {
        do {
            try nl.deleteRoute(route)
            return true
        } catch {
            if error.errno == ESRCH || error.errno == ENOENT { return false }
            throw error
        }
    }
}
