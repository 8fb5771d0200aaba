import Base
import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// A token bucket filter's settings as the kernel holds them (`tc qdisc ... tbf`): bytes and
/// bytes per second; `bufferTicks` is the bucket's size as time at the rate, in the kernel's
/// 64 ns scheduler ticks.
public struct TokenBucket: Sendable, Equatable, CustomStringConvertible {
    /// Bytes per second.
    public var rate: UInt64
    /// The bucket, in bytes: what may leave at once, over the rate.
    public var burst: UInt64
    /// The queue behind the bucket, in bytes.
    public var limit: UInt32
    /// The bucket as time at `rate`, in scheduler ticks (what TCA_TBF_PARMS carries).
    public var bufferTicks: UInt32

    /// The kernel's scheduler tick: PSCHED_TICKS2NS(1) = 1 << PSCHED_SHIFT nanoseconds.
    public static let tickNanoseconds: UInt64 = 64
    /// The longest bucket the kernel keeps (tbf_change caps the buffer at ~0U nanoseconds).
    public static let maxBufferNanoseconds = UInt64(UInt32.max)

    /// The bucket of `burst` bytes at `rate` bytes per second and a queue of `latency`
    /// microseconds at the rate behind it (the reference plugin's 25 ms); nil when the rate or
    /// burst is 0 or the queue does not fit the kernel's 32-bit field. A burst longer than the
    /// kernel's longest bucket (4.29 s at the rate) is kept as that.
    public init?(rate: UInt64, burst: UInt64, latencyMicroseconds: UInt64 = 25_000) {
        guard rate > 0, burst > 0, burst <= UInt64(UInt32.max) else { return nil }
        let (queue, overflow) = rate.multipliedReportingOverflow(by: latencyMicroseconds)
        guard !overflow, queue / 1_000_000 + burst <= UInt64(UInt32.max) else { return nil }
        self.rate = rate
        self.burst = burst
        limit = UInt32(queue / 1_000_000 + burst)
        let ns = min(UInt64((Double(burst) * 1e9 / Double(rate)).rounded(.down)), Self.maxBufferNanoseconds)
        bufferTicks = UInt32(ns / Self.tickNanoseconds)
    }

    init(rate: UInt64, limit: UInt32, bufferTicks: UInt32) {
        self.rate = rate
        self.limit = limit
        self.bufferTicks = bufferTicks
        burst = UInt64(Double(bufferTicks) * Double(Self.tickNanoseconds) * Double(rate) / 1e9)
    }

    /// Whether the kernel holds the same bucket (the rate, queue and buffer it was given).
    public func sameAs(_ other: TokenBucket) -> Bool {
        rate == other.rate && limit == other.limit && bufferTicks == other.bufferTicks
    }

    public var description: String { "rate \(rate * 8) bit/s, burst \(burst * 8) bit, limit \(limit) bytes" }
}

/// A queueing discipline as the kernel reports it (`tc qdisc show`).
public struct Qdisc: Sendable, Equatable {
    /// The link it is attached to.
    public let index: Int32
    /// `1:0` is 0x0001_0000.
    public let handle: UInt32
    /// TC_H_ROOT, TC_H_INGRESS or a class.
    public let parent: UInt32
    /// "tbf", "ingress", "noqueue", "pfifo_fast", ...
    public let kind: String
    /// The bucket of a tbf.
    public let tokenBucket: TokenBucket?

    /// Whether it is the link's root qdisc.
    public var isRoot: Bool { parent == Qdisc.root }
    /// Whether it is the link's ingress qdisc.
    public var isIngress: Bool { parent == Qdisc.ingress }

    /// TC_H_ROOT: the parent of the root qdisc.
    public static let root: UInt32 = 0xFFFF_FFFF
    /// TC_H_INGRESS: the parent of the ingress qdisc.
    public static let ingress: UInt32 = 0xFFFF_FFF1

    init(_ reply: NetlinkReply) {
        let h = reply.header(as: tcmsg.self)
        let a = reply.attributes(after: MemoryLayout<tcmsg>.size)
        index = h.tcm_ifindex
        handle = h.tcm_handle
        parent = h.tcm_parent
        kind = a.string(Int(TCA_KIND)) ?? ""
        if kind == "tbf", let o = a.nested(Int(TCA_OPTIONS)), let p = o[Int(TCA_TBF_PARMS)],
            p.count >= MemoryLayout<tc_tbf_qopt>.size
        {
            let q = Array(p).withUnsafeBytes { $0.loadUnaligned(as: tc_tbf_qopt.self) }
            let rate = o.u64(Int(TCA_TBF_RATE64)) ?? UInt64(q.rate.rate)
            tokenBucket = TokenBucket(rate: rate, limit: q.limit, bufferTicks: q.buffer)
        } else {
            tokenBucket = nil
        }
    }
}

/// A filter that redirects every packet a link receives to another link (what the ingress of a
/// link is shaped through), as the kernel reports it.
public struct IngressRedirect: Sendable, Equatable {
    /// The filter's priority.
    public let priority: UInt16
    /// The link the packets go to (mirred egress redirect).
    public let target: Int32
}

extension NetlinkRequest {
    /// RTM_*QDISC or RTM_*TFILTER with its `tcmsg`.
    static func tc(_ type: Int, flags: Int32, index: Int32, handle: UInt32 = 0, parent: UInt32 = 0, info: UInt32 = 0) -> NetlinkRequest {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = tcmsg()
        h.tcm_family = UInt8(AF_UNSPEC)
        h.tcm_ifindex = index
        h.tcm_handle = handle
        h.tcm_parent = parent
        h.tcm_info = info
        r.append(header: h)
        return r
    }
}

extension NetlinkSocket {
    /// The root qdisc of link `index` becomes a token bucket filter with handle 1: (replacing
    /// what was there). Equivalent to `tc qdisc replace dev <link> root handle 1: tbf rate <r>
    /// burst <b> limit <l>`.
    public func setRootTokenBucket(_ index: Int32, _ bucket: TokenBucket) throws(NetlinkError) {
        var r = NetlinkRequest.tc(
            Int(RTM_NEWQDISC), flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, index: index, handle: 0x0001_0000, parent: Qdisc.root)
        r.attribute(Int(TCA_KIND), string: "tbf")
        r.nest(Int(TCA_OPTIONS)) { r in
            var q = tc_tbf_qopt()
            q.rate.rate = UInt32(min(bucket.rate, UInt64(UInt32.max)))
            q.limit = bucket.limit
            q.buffer = bucket.bufferTicks
            r.attribute(Int(TCA_TBF_PARMS), withUnsafeBytes(of: q) { Array($0) })
            if bucket.rate >= UInt64(UInt32.max) {
                r.attribute(Int(TCA_TBF_RATE64), withUnsafeBytes(of: bucket.rate) { Array($0) })
            }
        }
        try execute(r, "RTM_NEWQDISC tbf on index \(index)")
    }

    /// Adds the ingress qdisc (handle ffff:) to link `index`. Equivalent to `tc qdisc add dev
    /// <link> handle ffff: ingress`.
    public func addIngressQdisc(_ index: Int32) throws(NetlinkError) {
        var r = NetlinkRequest.tc(
            Int(RTM_NEWQDISC), flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, index: index, handle: 0xFFFF_0000, parent: Qdisc.ingress)
        r.attribute(Int(TCA_KIND), string: "ingress")
        try execute(r, "RTM_NEWQDISC ingress on index \(index)")
    }

    /// Every packet link `index` receives goes out of link `target` instead (a u32 filter that
    /// matches all, priority 1, with a mirred egress redirect). Equivalent to `tc filter add dev
    /// <link> parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress
    /// redirect dev <target>`.
    public func redirectIngress(_ index: Int32, to target: Int32) throws(NetlinkError) {
        let all = UInt32(UInt16(ETH_P_ALL).bigEndian)
        var r = NetlinkRequest.tc(
            Int(RTM_NEWTFILTER), flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, index: index, parent: 0xFFFF_0000, info: 1 << 16 | all)
        r.attribute(Int(TCA_KIND), string: "u32")
        r.nest(Int(TCA_OPTIONS)) { r in
            r.attribute(Int(TCA_U32_CLASSID), u32: 0x0001_0001)
            // tc_u32_sel (16 bytes) with one key of mask 0: every packet matches.
            var sel = [UInt8](repeating: 0, count: 16 + MemoryLayout<tc_u32_key>.size)
            sel[0] = UInt8(TC_U32_TERMINAL)
            sel[2] = 1  // nkeys
            r.attribute(Int(TCA_U32_SEL), sel)
            r.nest(Int(TCA_U32_ACT)) { r in
                r.nest(1) { r in
                    r.attribute(Int(TCA_ACT_KIND), string: "mirred")
                    r.nest(Int(TCA_ACT_OPTIONS)) { r in
                        var m = tc_mirred()
                        m.action = TC_ACT_STOLEN
                        m.eaction = TCA_EGRESS_REDIR
                        m.ifindex = UInt32(bitPattern: target)
                        r.attribute(Int(TCA_MIRRED_PARMS), withUnsafeBytes(of: m) { Array($0) })
                    }
                }
            }
        }
        try execute(r, "RTM_NEWTFILTER u32 mirred on index \(index) to \(target)")
    }

    /// Deletes the root qdisc (`root`) or the ingress qdisc of link `index`, and with it its
    /// filters; one that is not there is success. Equivalent to `tc qdisc del dev <link> root`
    /// (or `ingress`).
    public func deleteQdisc(_ index: Int32, root: Bool) throws(NetlinkError) {
        let r = NetlinkRequest.tc(
            Int(RTM_DELQDISC), flags: NLM_F_ACK, index: index, handle: root ? 0 : 0xFFFF_0000, parent: root ? Qdisc.root : Qdisc.ingress)
        do {
            try execute(r, "RTM_DELQDISC \(root ? "root" : "ingress") on index \(index)")
        } catch let e where e.errno == ENOENT || e.errno == EINVAL || e.errno == ENODEV {
            // No such qdisc (the default root cannot be deleted: EINVAL/ENOENT), or no such link.
        }
    }

    /// The qdiscs of link `index`. Equivalent to `tc qdisc show dev <link>`.
    public func qdiscs(_ index: Int32) throws(NetlinkError) -> [Qdisc] {
        let r = NetlinkRequest.tc(Int(RTM_GETQDISC), flags: NLM_F_DUMP, index: index)
        return try execute(r, "RTM_GETQDISC dump").map(Qdisc.init).filter { $0.index == index }
    }

    /// The redirects of link `index`'s ingress (u32 filters with a mirred egress redirect).
    /// Equivalent to `tc filter show dev <link> ingress`.
    public func ingressRedirects(_ index: Int32) throws(NetlinkError) -> [IngressRedirect] {
        let r = NetlinkRequest.tc(Int(RTM_GETTFILTER), flags: NLM_F_DUMP, index: index, parent: 0xFFFF_0000)
        let replies: [NetlinkReply]
        do {
            replies = try execute(r, "RTM_GETTFILTER dump")
        } catch let e where e.errno == EINVAL || e.errno == ENOENT {
            return []  // no ingress qdisc
        }
        var out: [IngressRedirect] = []
        for reply in replies {
            let h = reply.header(as: tcmsg.self)
            let a = reply.attributes(after: MemoryLayout<tcmsg>.size)
            guard h.tcm_ifindex == index, a.string(Int(TCA_KIND)) == "u32", let acts = a.nested(Int(TCA_OPTIONS))?.nested(Int(TCA_U32_ACT))
            else { continue }
            for (_, act) in acts.entries {
                let action = NetlinkAttributes(Array(act))
                guard action.string(Int(TCA_ACT_KIND)) == "mirred", let p = action.nested(Int(TCA_ACT_OPTIONS))?[Int(TCA_MIRRED_PARMS)],
                    p.count >= MemoryLayout<tc_mirred>.size
                else { continue }
                let m = Array(p).withUnsafeBytes { $0.loadUnaligned(as: tc_mirred.self) }
                if m.eaction == TCA_EGRESS_REDIR {
                    out.append(IngressRedirect(priority: UInt16(h.tcm_info >> 16), target: Int32(bitPattern: m.ifindex)))
                }
            }
        }
        return out
    }

    /// Creates an IFB device (the link a shaped ingress is redirected to) with `mtu`, then gives
    /// it `alias` (the kernel takes an alias only on a link that exists) and brings it up; the
    /// link made. Equivalent to `ip link add <name> mtu <mtu> type ifb; ip link set <name> alias
    /// <alias> up`. A failure after the creation leaves the IFB for the caller to delete.
    public func createIFB(name: String, mtu: Int, alias: String) throws(NetlinkError) -> Link {
        var r = NetlinkRequest.newLink(name, mtu: mtu)
        r.nest(Int(IFLA_LINKINFO)) { r in r.attribute(Int(IFLA_INFO_KIND), string: "ifb") }
        try execute(r, "RTM_NEWLINK ifb \(name)")
        let ifb = try requireLink(name)
        let up = LinkFlags.up.rawValue
        try modifyLink(ifb.index, "alias, up", ifFlags: up, change: up) { r in r.attribute(Int(IFLA_IFALIAS), string: alias) }
        return ifb
    }
}
