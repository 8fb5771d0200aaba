import Base
import CNI
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

extension NetworkNamespace {
    /// Applies an IPAM result to the interface `index` (`ifName`) of this namespace, as the
    /// reference plugins' `ipam.ConfigureIface`: for IPv6, `disable_ipv6` off, `accept_dad` as
    /// `enableDAD` says, `keep_addr_on_down` and `ndisc_notify` (through /proc, on a namespace
    /// thread: only when there is IPv6); the addresses (DAD skipped unless enabled); the link up with
    /// arp_notify on (one netlink request); the routes, a route without `gw` going via the gateway
    /// of its family, each with a metric of its own (``NetlinkSocket/addRouteBeside(_:)``): the
    /// route's `priority`, else `routeMetric`, else ``RouteMetric/automatic(ifName:)``. The metric
    /// each route got is written back into `result.routes`. `nl` is a socket of this namespace.
    public func configure(
        _ result: inout CNIResult, index: Int32, ifName: String, nl: NetlinkSocket, enableDAD: Bool = false,
        routeMetric: UInt32? = nil
    ) throws {
        if result.ips.contains(where: { $0.address.family == .v6 }) {
            try perform {
                try? Sysctl.set(["net", "ipv6", "conf", "lo", "disable_ipv6"], "0")
                try Sysctl.set(["net", "ipv6", "conf", ifName, "disable_ipv6"], "0")
                try Sysctl.set(["net", "ipv6", "conf", ifName, "accept_dad"], enableDAD ? "1" : "0")
                try? Sysctl.set(["net", "ipv6", "conf", ifName, "keep_addr_on_down"], "1")
                try? Sysctl.set(["net", "ipv6", "conf", ifName, "ndisc_notify"], "1")
            }
        }
        for ipc in result.ips { try nl.addAddress(index, ipc.address, noDAD: !enableDAD) }
        try nl.setUp(index, arpNotify: true)
        let automatic = RouteMetric.automatic(ifName: ifName)
        for i in result.routes.indices {
            let r = result.routes[i]
            let gw = r.gw ?? result.ips.first { $0.address.family == r.dst.family }?.gateway
            let metric = try nl.addRouteBeside(
                KernelRoute(
                    destination: r.dst, gateway: gw, outputIndex: index, table: r.table.map(UInt32.init),
                    scope: UInt8(r.scope ?? 0), priority: r.priority.map(UInt32.init) ?? routeMetric ?? automatic,
                    mtu: r.mtu.map(UInt32.init), advmss: r.advmss.map(UInt32.init)))
            result.routes[i].priority = Int(metric)
        }
    }
}

/// How a container interface's routes get their metrics, so that a second interface's default
/// route (or any route another interface already holds) is added beside the first instead of
/// failing with EEXIST, and the kernel's choice between them is never left to chance.
public enum RouteMetric {
    /// The base of automatic metrics, as netavark's default metric and NetworkManager's for
    /// ethernet.
    public static let base: UInt32 = 100

    /// `base` + the number the interface name ends with: eth0 100, eth1 101, net1 101; a name
    /// without a number 100. So the interface a runtime named first carries the traffic, whatever
    /// order the runtime added the networks in.
    public static func automatic(ifName: String) -> UInt32 { base + InterfaceName.ordinal(ifName) }

}

extension NetlinkSocket {
    /// What of `ips` and `routes` (main-table routes) is missing on interface `index`, as a message
    /// for CHECK; nil when everything is there. A route whose `priority` the result names must
    /// have that metric. A route not in the main table but in another on the same interface
    /// counts (sbr moves them to a table per address).
    public func missingConfiguration(_ ips: [CNIResult.IPConfig], _ routes: [CNIResult.Route], index: Int32, ifName: String)
        throws -> String?
    {
        let have = Set(try addresses(index).map(\.prefix))
        for ipc in ips where !have.contains(ipc.address) { return "address \(ipc.address) is missing on \(ifName)" }
        for fam in [IPFamily.v4, .v6] {
            let present = try self.routes(family: fam)
            var anywhere: [KernelRoute]?  // every table, listed only when the main table lacks a route
            for r in routes where r.dst.family == fam && r.table == nil {
                let dst: IPPrefix? = r.dst.length == 0 ? nil : r.dst
                var mine = present.filter { $0.destination == dst && $0.outputIndex == index }
                if mine.isEmpty {
                    // A chained plugin (sbr) may have moved the interface's routes to a table
                    // of their own: there, they are still the interface's.
                    if anywhere == nil { anywhere = try self.routes(family: fam, anyTable: true) }
                    mine = anywhere!.filter { $0.destination == dst && $0.outputIndex == index }
                }
                if mine.isEmpty { return "route to \(r.dst) is missing on \(ifName)" }
                if let p = r.priority, !mine.contains(where: { KernelRoute.effectiveMetric($0.priority, fam) == KernelRoute.effectiveMetric(UInt32(p), fam) }) {
                    return
                        "route to \(r.dst) on \(ifName) has metric \(mine.map { String(KernelRoute.effectiveMetric($0.priority, fam)) }.joined(separator: ", ")), the result says \(p)"
                }
            }
        }
        return nil
    }
}
