import CNI

extension NetworkNamespace {
    /// Applies an IPAM result to the interface `index` (`ifName`) of this namespace, as the
    /// reference plugins' `ipam.ConfigureIface`: for IPv6, `disable_ipv6` off, `accept_dad` as
    /// `enableDAD` says, `keep_addr_on_down` and `ndisc_notify` (through /proc, on a namespace
    /// thread: only when there is IPv6); the addresses (DAD skipped unless enabled); the link up with
    /// arp_notify on (one netlink request); the routes, a route without `gw` going via the gateway
    /// of its family. `nl` is a socket of this namespace.
    public func configure(
        _ result: CNIResult, index: Int32, ifName: String, nl: NetlinkSocket, enableDAD: Bool = false
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
        for r in result.routes {
            let gw = r.gw ?? result.ips.first { $0.address.family == r.dst.family }?.gateway
            try nl.addRoute(
                KernelRoute(
                    destination: r.dst, gateway: gw, outputIndex: index, table: r.table.map(UInt32.init),
                    scope: UInt8(r.scope ?? 0), priority: r.priority.map(UInt32.init), mtu: r.mtu.map(UInt32.init),
                    advmss: r.advmss.map(UInt32.init)))
        }
    }
}

extension NetlinkSocket {
    /// What of `ips` and `routes` (main-table routes) is missing on interface `index`, as a message
    /// for CHECK; nil when everything is there.
    public func missingConfiguration(_ ips: [CNIResult.IPConfig], _ routes: [CNIResult.Route], index: Int32, ifName: String)
        throws -> String?
    {
        let have = Set(try addresses(index).map(\.prefix))
        for ipc in ips where !have.contains(ipc.address) { return "address \(ipc.address) is missing on \(ifName)" }
        for fam in [IPFamily.v4, .v6] {
            let present = try self.routes(family: fam)
            for r in routes where r.dst.family == fam && r.table == nil {
                let dst: IPPrefix? = r.dst.length == 0 ? nil : r.dst
                if !present.contains(where: { $0.destination == dst && $0.outputIndex == index }) {
                    return "route to \(r.dst) is missing on \(ifName)"
                }
            }
        }
        return nil
    }
}
