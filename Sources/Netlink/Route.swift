import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// A route as the kernel takes and reports it.
public struct KernelRoute: Sendable, Equatable {
    /// The destination; nil for the default route of the family.
    public var destination: IPPrefix?
    public var family: IPFamily
    public var gateway: IPAddress?
    /// Output link index.
    public var outputIndex: Int32?
    /// Main table (254) when nil.
    public var table: UInt32?
    /// RT_SCOPE_UNIVERSE (0), RT_SCOPE_LINK (253), RT_SCOPE_HOST (254).
    public var scope: UInt8
    public var priority: UInt32?
    public var mtu: UInt32?
    public var advmss: UInt32?
    /// The gateway is on the link even though no address says so (RTNH_F_ONLINK).
    public var onLink: Bool
    /// The source address the kernel picks for traffic on the route (RTA_PREFSRC).
    public var source: IPAddress?
    /// Who made it (`proto`: RTPROT_KERNEL for an address's own route); RTPROT_BOOT when nil.
    public var protocolID: UInt8?

    /// A route to `destination` (nil: the default route), as the kernel reports or takes it.
    public init(
        destination: IPPrefix?, family: IPFamily? = nil, gateway: IPAddress? = nil, outputIndex: Int32? = nil,
        table: UInt32? = nil, scope: UInt8 = 0, priority: UInt32? = nil, mtu: UInt32? = nil, advmss: UInt32? = nil,
        onLink: Bool = false, source: IPAddress? = nil, protocolID: UInt8? = nil
    ) {
        self.destination = destination.map(\.network)
        self.family = family ?? destination?.family ?? gateway?.family ?? .v4
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.table = table
        self.scope = scope
        self.priority = priority
        self.mtu = mtu
        self.advmss = advmss
        self.onLink = onLink
        self.source = source
        self.protocolID = protocolID
    }
}

extension Sequence where Element == KernelRoute {
    /// The routes in the order they can be added: those straight on a link first, then those
    /// through a gateway (a gateway route needs the route to its gateway). Stable otherwise.
    public var onLinkFirst: [KernelRoute] { sorted { ($0.gateway == nil ? 0 : 1) < ($1.gateway == nil ? 0 : 1) } }
}

extension KernelRoute {
    /// The metric the kernel records for `metric` in `family` (IPv6 stores 0 as 1024).
    public static func effectiveMetric(_ metric: UInt32?, _ family: IPFamily) -> UInt32 {
        let m = metric ?? 0
        return family == .v6 && m == 0 ? 1024 : m
    }
}

extension NetlinkSocket {
    /// Adds `route` with its metric, or with the next metric above it that no route to the same
    /// destination in the same table holds, and returns the metric it got. Never appends to
    /// another route (no multipath: the kernel would spread a container's traffic over its
    /// networks). A concurrent add that takes the metric first (EEXIST) makes it look again.
    @discardableResult
    public func addRouteBeside(_ route: KernelRoute) throws(NetlinkError) -> UInt32 {
        var route = route
        let dst = route.destination.flatMap { $0.length == 0 ? nil : $0 }
        var attempt = 0
        while true {
            let held = Set(
                try routes(family: route.family, table: route.table)
                    .filter { $0.destination.flatMap { $0.length == 0 ? nil : $0 } == dst }
                    .map { KernelRoute.effectiveMetric($0.priority, route.family) })
            var metric = KernelRoute.effectiveMetric(route.priority, route.family)
            while held.contains(metric) {
                guard metric < UInt32.max else {
                    throw NetlinkError(operation: "RTM_NEWROUTE \(describe(route))", errno: EEXIST)
                }
                metric += 1
            }
            route.priority = metric
            do {
                try addRoute(route)
                return metric
            } catch {
                attempt += 1
                if error.errno != EEXIST || attempt == 16 { throw error }
            }
        }
    }

}

extension NetlinkSocket {
    /// Equivalent to `ip route add <dst> [via <gw>] [dev <link>] [onlink] [table <t>] [scope <s>]
    /// [metric <p>] [mtu <m>] [advmss <a>]`.
    public func addRoute(_ route: KernelRoute) throws(NetlinkError) {
        try execute(routeRequest(Int(RTM_NEWROUTE), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, route), "RTM_NEWROUTE \(describe(route))")
    }

    /// Equivalent to `ip route replace ...`.
    public func replaceRoute(_ route: KernelRoute) throws(NetlinkError) {
        try execute(routeRequest(Int(RTM_NEWROUTE), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, route), "RTM_NEWROUTE replace \(describe(route))")
    }

    /// Equivalent to `ip route del ...`.
    public func deleteRoute(_ route: KernelRoute) throws(NetlinkError) {
        try execute(routeRequest(Int(RTM_DELROUTE), NLM_F_ACK, route), "RTM_DELROUTE \(describe(route))")
    }

    func describe(_ r: KernelRoute) -> String {
        (r.destination?.description ?? "default") + (r.gateway.map { " via \($0)" } ?? "")
            + (r.outputIndex.map { " dev \($0)" } ?? "")
    }

    func routeRequest(_ type: Int, _ flags: Int32, _ route: KernelRoute) -> NetlinkRequest {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = rtmsg()
        h.rtm_family = route.family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        h.rtm_dst_len = UInt8(route.destination?.length ?? 0)
        let table = route.table ?? UInt32(RT_TABLE_MAIN.rawValue)
        h.rtm_table = table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
        h.rtm_protocol = type == Int(RTM_DELROUTE) ? 0 : route.protocolID ?? UInt8(RTPROT_BOOT)
        h.rtm_scope = route.scope
        h.rtm_type = UInt8(RTN_UNICAST)
        h.rtm_flags = route.onLink ? UInt32(RTNH_F_ONLINK) : 0
        r.append(header: h)
        if let d = route.destination { r.attribute(Int(RTA_DST.rawValue), d.address.networkBytes) }
        if let g = route.gateway { r.attribute(Int(RTA_GATEWAY.rawValue), g.networkBytes) }
        if let s = route.source { r.attribute(Int(RTA_PREFSRC.rawValue), s.networkBytes) }
        if let o = route.outputIndex { r.attribute(Int(RTA_OIF.rawValue), i32: o) }
        if let p = route.priority { r.attribute(Int(RTA_PRIORITY.rawValue), u32: p) }
        r.attribute(Int(RTA_TABLE.rawValue), u32: table)
        if route.mtu != nil || route.advmss != nil {
            r.nest(Int(RTA_METRICS.rawValue)) { r in
                if let m = route.mtu { r.attribute(Int(RTAX_MTU), u32: m) }
                if let a = route.advmss { r.attribute(Int(RTAX_ADVMSS), u32: a) }
            }
        }
        return r
    }

    /// The routes of a family in `table` (main when nil; every table with `anyTable`).
    /// Equivalent to `ip [-6] route show [table <t>|all]` (unicast routes only).
    public func routes(family: IPFamily, table: UInt32? = nil, anyTable: Bool = false) throws(NetlinkError) -> [KernelRoute] {
        var r = NetlinkRequest(type: Int(RTM_GETROUTE), flags: NLM_F_DUMP)
        var h = rtmsg()
        h.rtm_family = family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        r.append(header: h)
        let wanted = table ?? UInt32(RT_TABLE_MAIN.rawValue)
        return try execute(r, "RTM_GETROUTE dump").compactMap { reply in
            let h = reply.header(as: rtmsg.self)
            let a = reply.attributes(after: MemoryLayout<rtmsg>.size)
            let t = a.u32(Int(RTA_TABLE.rawValue)) ?? UInt32(h.rtm_table)
            guard t == wanted || anyTable, h.rtm_type == UInt8(RTN_UNICAST) else { return nil }
            let dst = a[Int(RTA_DST.rawValue)].flatMap { IPAddress(networkBytes: $0) }
                .flatMap { IPPrefix(address: $0, length: Int(h.rtm_dst_len)) }
            let metrics = a.nested(Int(RTA_METRICS.rawValue))
            return KernelRoute(
                destination: dst, family: family,
                gateway: a[Int(RTA_GATEWAY.rawValue)].flatMap { IPAddress(networkBytes: $0) },
                outputIndex: a.i32(Int(RTA_OIF.rawValue)), table: t, scope: h.rtm_scope,
                priority: a.u32(Int(RTA_PRIORITY.rawValue)), mtu: metrics?.u32(Int(RTAX_MTU)),
                advmss: metrics?.u32(Int(RTAX_ADVMSS)), onLink: h.rtm_flags & UInt32(RTNH_F_ONLINK) != 0,
                source: a[Int(RTA_PREFSRC.rawValue)].flatMap { IPAddress(networkBytes: $0) }, protocolID: h.rtm_protocol)
        }
    }
}

extension NetlinkSocket {
    /// The index of the interface the kernel routes `destination` through; nil when it has no
    /// route. Equivalent to `ip route get <destination>`.
    public func routeInterface(to destination: IPAddress) throws(NetlinkError) -> Int32? {
        var r = NetlinkRequest(type: Int(RTM_GETROUTE), flags: 0)
        var h = rtmsg()
        h.rtm_family = destination.family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        h.rtm_dst_len = destination.family == .v4 ? 32 : 128
        r.append(header: h)
        r.attribute(Int(RTA_DST.rawValue), destination.networkBytes)
        let replies: [NetlinkReply]
        do {
            replies = try execute(r, "RTM_GETROUTE \(destination)")
        } catch {
            if error.errno == ENETUNREACH || error.errno == EHOSTUNREACH { return nil }
            throw error
        }
        return replies.first.flatMap { $0.attributes(after: MemoryLayout<rtmsg>.size).i32(Int(RTA_OIF.rawValue)) }
    }
}
