import Base

/// One allocation range: a subnet with the inclusive bounds addresses are handed out from, and the
/// gateway, which is never handed out. Built only through ``init(subnet:rangeStart:rangeEnd:gateway:path:)``,
/// which applies the reference plugin's defaults and checks.
public struct IPRange: Sendable, Hashable, CustomStringConvertible {
    /// The subnet (network address, no host bits).
    public let subnet: IPPrefix
    public let rangeStart: IPAddress
    public let rangeEnd: IPAddress
    public let gateway: IPAddress

    /// Defaults as the reference: `rangeStart` = subnet + 1 (the gateway is skipped while
    /// allocating), `rangeEnd` = the last address (IPv4: the one before broadcast), `gateway` =
    /// subnet + 1. Code 7 naming `path` and the value for host bits in the subnet, a subnet too
    /// small to allocate from, bounds or gateway outside the subnet, and start after end.
    public init(subnet: IPPrefix, rangeStart: IPAddress?, rangeEnd: IPAddress?, gateway: IPAddress?, path: String)
        throws(IPAMError)
    {
        let net = subnet.network
        if net.address != subnet.address {
            throw IPAMError.invalid(
                "\(path).subnet", .string(subnet.description), "has host bits set; the network is \(net)")
        }
        if subnet.length > subnet.family.bitWidth - 2 {
            throw IPAMError.invalid(
                "\(path).subnet", .string(subnet.description),
                "a /\(subnet.length) network is too small to allocate from")
        }
        self.subnet = net
        func inside(_ ip: IPAddress?, _ key: String) throws(IPAMError) -> IPAddress? {
            guard let ip else { return nil }
            if !net.contains(ip) {
                throw IPAMError.invalid("\(path).\(key)", .string(ip.description), "is not in subnet \(net)")
            }
            return ip
        }
        let first = net.address.advanced(by: 1)
        let last = net.family == .v4 ? net.lastAddress.advanced(by: -1) : net.lastAddress
        self.rangeStart = try inside(rangeStart, "rangeStart") ?? first
        self.rangeEnd = try inside(rangeEnd, "rangeEnd") ?? last
        self.gateway = try inside(gateway, "gateway") ?? first
        if self.rangeStart > self.rangeEnd {
            throw IPAMError.invalid(
                "\(path).rangeStart", .string(self.rangeStart.description), "is after rangeEnd \(self.rangeEnd)")
        }
    }

    public var family: IPFamily { subnet.family }

    /// Whether `ip` can be handed out from this range (between the bounds, not the gateway).
    public func contains(_ ip: IPAddress) -> Bool {
        ip.family == family && ip >= rangeStart && ip <= rangeEnd
    }

    /// Whether the address spans of two ranges meet.
    public func overlaps(_ other: IPRange) -> Bool {
        family == other.family && rangeStart <= other.rangeEnd && other.rangeStart <= rangeEnd
    }

    /// `start-end` as the reference prints ranges in errors.
    public var description: String { "\(rangeStart)-\(rangeEnd)" }

    /// The number of addresses that can be handed out (gateway excluded), capped at `Int.max`.
    public var capacity: Int {
        let span = rangeEnd.bits - rangeStart.bits + 1
        let n = span > UInt128(Int.max) ? Int.max : Int(span)
        return contains(gateway) ? n - 1 : n
    }
}

/// A set of ranges of one family: one address is allocated from each set per attachment
/// (dual-stack = a v4 set and a v6 set).
public struct RangeSet: Sendable, Hashable, CustomStringConvertible {
    public let ranges: [IPRange]

    /// Code 7 when the set is empty, mixes families, or has overlapping ranges.
    public init(_ ranges: [IPRange], path: String) throws(IPAMError) {
        guard let first = ranges.first else {
            throw IPAMError(.invalidConfig, "invalid \(path)", details: "a range set needs at least one range")
        }
        for (i, r) in ranges.enumerated() {
            if r.family != first.family {
                throw IPAMError(
                    .invalidConfig, "invalid \(path)[\(i)].subnet \"\(r.subnet)\"",
                    details: "mixes \(r.family) with \(first.family) in one range set")
            }
            for (j, other) in ranges.enumerated() where j < i && r.overlaps(other) {
                throw IPAMError(
                    .invalidConfig, "invalid \(path)[\(i)] \(r)", details: "overlaps \(path)[\(j)] \(other)")
            }
        }
        self.ranges = ranges
    }

    public var family: IPFamily { ranges[0].family }

    /// The range `ip` can be handed out from, if any.
    public func range(containing ip: IPAddress) -> IPRange? { ranges.first { $0.contains(ip) } }

    /// Whether a range of this set shares an address with a range of `other`.
    public func overlaps(_ other: RangeSet) -> Bool {
        ranges.contains { r in other.ranges.contains { r.overlaps($0) } }
    }

    /// `start-end,start-end`.
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    /// Round-robin candidates: from the address after `last` (when it lies in the set; else from the
    /// first range's start), through every range in order, wrapping once; gateways skipped.
    public func candidates(after last: IPAddress?) -> RangeIterator {
        RangeIterator(set: self, after: last)
    }
}

/// Walks a range set once, as the reference allocator does.
public struct RangeIterator: Sequence, IteratorProtocol {
    let set: RangeSet
    var rangeIndex: Int
    var current: IPAddress?
    var start: IPAddress?
    var done = false

    init(set: RangeSet, after last: IPAddress?) {
        self.set = set
        if let last, let i = set.ranges.firstIndex(where: { $0.rangeStart <= last && last <= $0.rangeEnd && $0.family == last.family }) {
            rangeIndex = i
            current = last
        } else {
            rangeIndex = 0
            current = nil
        }
    }

    /// The next candidate with the range it belongs to.
    public mutating func next() -> (IPAddress, IPRange)? {
        while !done {
            var r = set.ranges[rangeIndex]
            let ip: IPAddress
            if let cur = current {
                if cur == r.rangeEnd {
                    rangeIndex = (rangeIndex + 1) % set.ranges.count
                    r = set.ranges[rangeIndex]
                    ip = r.rangeStart
                } else {
                    ip = cur.advanced(by: 1)
                }
            } else {
                ip = r.rangeStart
            }
            current = ip
            if let s = start {
                if s == ip {
                    done = true
                    return nil
                }
            } else {
                start = ip
            }
            if ip == r.gateway { continue }
            return (ip, r)
        }
        return nil
    }
}
