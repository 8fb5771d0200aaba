import Base
import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// A routing policy rule that looks up a table (`ip rule add [from <source>] lookup <table>
/// [pref <priority>]`), as the kernel takes and reports it.
public struct RoutingRule: Sendable, Equatable, CustomStringConvertible {
    public var family: IPFamily
    /// The source prefix the rule matches; nil for every source ("from all").
    public var source: IPPrefix?
    public var table: UInt32
    /// Nil when adding: the kernel picks the one before the first rule after `local` (32765,
    /// then 32764, ... as `ip rule add` without `pref`).
    public var priority: UInt32?

    /// A rule sending traffic from `source` (every source when nil) to `table`.
    public init(family: IPFamily, source: IPPrefix?, table: UInt32, priority: UInt32? = nil) {
        self.family = family
        self.source = source.map(\.network)
        self.table = table
        self.priority = priority
    }

    public var description: String {
        (priority.map { "\($0): " } ?? "") + "from \(source?.description ?? "all") lookup \(table)"
    }
}

extension NetlinkSocket {
    /// Equivalent to `ip rule add from <source> lookup <table> [pref <priority>]`; EEXIST when the
    /// same rule exists.
    public func addRoutingRule(_ rule: RoutingRule) throws(NetlinkError) {
        try execute(ruleRequest(Int(RTM_NEWRULE), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, rule), "RTM_NEWRULE \(rule)")
    }

    /// Equivalent to `ip rule del from <source> lookup <table> [pref <priority>]`.
    public func deleteRoutingRule(_ rule: RoutingRule) throws(NetlinkError) {
        try execute(ruleRequest(Int(RTM_DELRULE), NLM_F_ACK, rule), "RTM_DELRULE \(rule)")
    }

    func ruleRequest(_ type: Int, _ flags: Int32, _ rule: RoutingRule) -> NetlinkRequest {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = fib_rule_hdr()
        h.family = rule.family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        h.src_len = UInt8(rule.source?.length ?? 0)
        h.table = rule.table < 256 ? UInt8(rule.table) : UInt8(RT_TABLE_UNSPEC.rawValue)
        h.action = UInt8(FR_ACT_TO_TBL)
        r.append(header: h)
        if let s = rule.source { r.attribute(Int(FRA_SRC), s.address.networkBytes) }
        r.attribute(Int(FRA_TABLE), u32: rule.table)
        if let p = rule.priority { r.attribute(Int(FRA_PRIORITY), u32: p) }
        return r
    }

    /// The table-lookup rules of `family`, in the kernel's order. Equivalent to `ip [-6] rule show`
    /// (rules with other actions, or matching more than the source, are left out).
    public func routingRules(family: IPFamily) throws(NetlinkError) -> [RoutingRule] {
        try dump(Int(RTM_GETRULE), family, header: fib_rule_hdr.self).compactMap { reply in
            let h = reply.header(as: fib_rule_hdr.self)
            guard h.action == UInt8(FR_ACT_TO_TBL), h.dst_len == 0, h.tos == 0 else { return nil }
            let a = reply.attributes(after: MemoryLayout<fib_rule_hdr>.size)
            for other in [FRA_IIFNAME, FRA_OIFNAME, FRA_FWMARK, FRA_DST, FRA_L3MDEV, FRA_UID_RANGE, FRA_IP_PROTO, FRA_SPORT_RANGE, FRA_DPORT_RANGE]
            where a[Int(other)] != nil {
                return nil
            }
            let source = a[Int(FRA_SRC)].flatMap { IPAddress(networkBytes: $0) }
                .flatMap { IPPrefix(address: $0, length: Int(h.src_len)) }
            return RoutingRule(family: family, source: source, table: a.u32(Int(FRA_TABLE)) ?? UInt32(h.table), priority: a.u32(Int(FRA_PRIORITY)) ?? 0)
        }
    }

    /// Every table that a rule of either family looks up or a route of either family is in.
    public func tablesInUse() throws(NetlinkError) -> Set<UInt32> {
        var out = Set<UInt32>()
        for f in [IPFamily.v4, .v6] {
            for reply in try dump(Int(RTM_GETRULE), f, header: fib_rule_hdr.self) {
                let table = reply.header(as: fib_rule_hdr.self).table
                out.insert(reply.attributes(after: MemoryLayout<fib_rule_hdr>.size).u32(Int(FRA_TABLE)) ?? UInt32(table))
            }
            for reply in try dump(Int(RTM_GETROUTE), f, header: rtmsg.self) {
                let table = reply.header(as: rtmsg.self).rtm_table
                out.insert(reply.attributes(after: MemoryLayout<rtmsg>.size).u32(Int(RTA_TABLE.rawValue)) ?? UInt32(table))
            }
        }
        return out
    }

    /// A dump request of `type` for `family` (both `fib_rule_hdr` and `rtmsg` begin with the
    /// family byte), its replies.
    private func dump<H>(_ type: Int, _ family: IPFamily, header: H.Type) throws(NetlinkError) -> [NetlinkReply] {
        var r = NetlinkRequest(type: type, flags: NLM_F_DUMP)
        var bytes = [UInt8](repeating: 0, count: MemoryLayout<H>.size)
        bytes[0] = family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        r.append(header: bytes.withUnsafeBytes { $0.load(as: H.self) })
        return try execute(r, type == Int(RTM_GETRULE) ? "RTM_GETRULE dump" : "RTM_GETROUTE dump")
    }
}
