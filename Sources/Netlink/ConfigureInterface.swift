import CNI

extension NetworkNamespace {
    /// Applies an IPAM result to the interface `index` (`ifName`) of this namespace, as the
    /// reference plugins' `ipam.ConfigureIface`: arp_notify (and ndisc_notify) on; for IPv6,
    /// `disable_ipv6` off, `accept_dad` as `enableDAD` says and `keep_addr_on_down`; the addresses
    /// (DAD skipped unless enabled); the link up; the routes, a route without `gw` going via the
    /// gateway of its family. `nl` is a socket of this namespace.
    public func configure(
        _ result: CNIResult, index: Int32, ifName: String, nl: NetlinkSocket, enableDAD: Bool = false
    ) throws {
        let hasV6 = result.ips.contains { $0.address.family == .v6 }
        try perform {
            try Sysctl.set(["net", "ipv4", "conf", ifName, "arp_notify"], "1")
            if hasV6 {
                try? Sysctl.set(["net", "ipv6", "conf", "lo", "disable_ipv6"], "0")
                try Sysctl.set(["net", "ipv6", "conf", ifName, "disable_ipv6"], "0")
                try Sysctl.set(["net", "ipv6", "conf", ifName, "accept_dad"], enableDAD ? "1" : "0")
                try? Sysctl.set(["net", "ipv6", "conf", ifName, "keep_addr_on_down"], "1")
                try? Sysctl.set(["net", "ipv6", "conf", ifName, "ndisc_notify"], "1")
            }
        }
        for ipc in result.ips { try nl.addAddress(index, ipc.address, noDAD: !enableDAD) }
        try nl.setUp(index)
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
