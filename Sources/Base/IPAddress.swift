/// The address family of an ``IPAddress``.
public enum IPFamily: Sendable, Hashable, CustomStringConvertible {
    case v4, v6
    /// 32 or 128.
    public var bitWidth: Int { self == .v4 ? 32 : 128 }
    /// "4" or "6", as `ips[].version` spells it.
    public var versionString: String { self == .v4 ? "4" : "6" }
    public var description: String { self == .v4 ? "IPv4" : "IPv6" }
}

/// An IPv4 or IPv6 address. Parses the forms Go's `net.ParseIP` accepts (no zone, no leading
/// zeros in IPv4 octets) and prints IPv6 in RFC 5952 form, as Go does.
public enum IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    public var family: IPFamily {
        if case .v4 = self { return .v4 }
        return .v6
    }

    /// The address as an unsigned integer of the family's width.
    public var bits: UInt128 {
        switch self {
        case .v4(let v): return UInt128(v)
        case .v6(let v): return v
        }
    }

    /// The address of `family` with the given integer value (truncated to the family's width).
    public init(family: IPFamily, bits: UInt128) {
        switch family {
        case .v4: self = .v4(UInt32(truncatingIfNeeded: bits))
        case .v6: self = .v6(bits)
        }
    }

    /// Parses a textual address; nil if it is not one.
    public init?(_ text: some StringProtocol) {
        let u = Array(text.utf8)
        if u.contains(UInt8(ascii: ":")) {
            guard let v = IPAddress.parse6(u) else { return nil }
            self = .v6(v)
        } else {
            guard let v = IPAddress.parse4(u[...]) else { return nil }
            self = .v4(v)
        }
    }

    static func parse4(_ u: ArraySlice<UInt8>) -> UInt32? {
        var result: UInt32 = 0
        var parts = 0
        var value: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for c in u {
            if c == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                result = result << 8 | value
                parts += 1
                value = 0
                digits = 0
                continue
            }
            guard c >= 0x30, c <= 0x39 else { return nil }
            if digits == 1 && leadingZero { return nil }  // "01"
            if digits == 0 { leadingZero = c == 0x30 }
            value = value * 10 + UInt32(c - 0x30)
            digits += 1
            guard value <= 255 else { return nil }
        }
        guard digits > 0, parts == 3 else { return nil }
        return result << 8 | value
    }

    static func parse6(_ u: [UInt8]) -> UInt128? {
        var groups: [UInt16] = []
        var gapAt: Int? = nil
        var i = 0
        let n = u.count
        if n >= 2 && u[0] == UInt8(ascii: ":") && u[1] == UInt8(ascii: ":") {
            gapAt = 0
            i = 2
            if i == n { return 0 }
        } else if n > 0 && u[0] == UInt8(ascii: ":") {
            return nil
        }
        while i < n {
            // An embedded IPv4 address ends the text.
            var j = i
            var sawDot = false
            while j < n && u[j] != UInt8(ascii: ":") {
                if u[j] == UInt8(ascii: ".") { sawDot = true }
                j += 1
            }
            if sawDot {
                guard j == n, let v4 = parse4(u[i..<j]) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xFFFF))
                i = n
                break
            }
            let len = j - i
            guard len >= 1, len <= 4 else { return nil }
            var g: UInt16 = 0
            for k in i..<j {
                let c = u[k]
                let d: UInt16
                switch c {
                case 0x30...0x39: d = UInt16(c - 0x30)
                case 0x41...0x46: d = UInt16(c - 0x41 + 10)
                case 0x61...0x66: d = UInt16(c - 0x61 + 10)
                default: return nil
                }
                g = g << 4 | d
            }
            groups.append(g)
            i = j
            if i == n { break }
            // u[i] == ':'
            i += 1
            if i < n && u[i] == UInt8(ascii: ":") {
                guard gapAt == nil else { return nil }
                gapAt = groups.count
                i += 1
                if i == n { break }
            } else if i == n {
                return nil  // trailing single ':'
            }
        }
        if let gap = gapAt {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: [UInt16](repeating: 0, count: 8 - groups.count), at: gap)
        }
        guard groups.count == 8 else { return nil }
        var v: UInt128 = 0
        for g in groups { v = v << 16 | UInt128(g) }
        return v
    }

    public var description: String {
        switch self {
        case .v4(let v):
            return "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
        case .v6(let v):
            var groups = [UInt16](repeating: 0, count: 8)
            for k in 0..<8 { groups[k] = UInt16(truncatingIfNeeded: v >> UInt128(112 - 16 * k)) }
            // IPv4-mapped addresses print with a dotted tail.
            if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
                let v4 = IPAddress.v4(UInt32(truncatingIfNeeded: v))
                return "::ffff:\(v4)"
            }
            // The longest run of two or more zero groups becomes "::" (the first on a tie).
            var bestStart = -1
            var bestLen = 0
            var k = 0
            while k < 8 {
                if groups[k] == 0 {
                    var e = k
                    while e < 8 && groups[e] == 0 { e += 1 }
                    if e - k > bestLen { bestStart = k; bestLen = e - k }
                    k = e
                } else {
                    k += 1
                }
            }
            if bestLen < 2 { bestStart = -1 }
            var out = ""
            k = 0
            while k < 8 {
                if k == bestStart {
                    out += "::"
                    k += bestLen
                    continue
                }
                if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
                out += String(groups[k], radix: 16)
                k += 1
            }
            return out
        }
    }

    /// IPv4 before IPv6, then numeric order.
    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case (.v4(let x), .v4(let y)): return x < y
        case (.v6(let x), .v6(let y)): return x < y
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }

    /// The address in network byte order: 4 or 16 bytes.
    public var networkBytes: [UInt8] {
        let width = family == .v4 ? 4 : 16
        let v = bits
        return (0..<width).map { UInt8(truncatingIfNeeded: v >> UInt128(8 * (width - 1 - $0))) }
    }

    /// The address from 4 or 16 bytes in network byte order; nil for any other length.
    public init?(networkBytes b: some Collection<UInt8>) {
        guard b.count == 4 || b.count == 16 else { return nil }
        var v: UInt128 = 0
        for x in b { v = v << 8 | UInt128(x) }
        self.init(family: b.count == 4 ? .v4 : .v6, bits: v)
    }

    /// The address `n` further on (wrapping within the family's width).
    public func advanced(by n: Int) -> IPAddress {
        let width = family.bitWidth
        let mask: UInt128 = width == 128 ? ~0 : (UInt128(1) << UInt128(width)) - 1
        let delta = n >= 0 ? UInt128(n) : (mask &- UInt128(-n) &+ 1)
        return IPAddress(family: family, bits: (bits &+ delta) & mask)
    }
}

/// An address with a prefix length, as in `10.1.2.3/24`. The address keeps its host bits, so the
/// same type serves interface addresses (`ips[].address`) and networks (see ``network``).
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// `address`/`length`; nil when the length is beyond the family's width. The host bits are kept.
    public init?(address: IPAddress, length: Int) {
        guard length >= 0, length <= address.family.bitWidth else { return nil }
        self.address = address
        self.length = length
    }

    /// Parses `address/length`; nil if either part is invalid.
    public init?(_ text: some StringProtocol) {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let lenText = text[text.index(after: slash)...]
        guard let addr = IPAddress(text[..<slash]), !lenText.isEmpty, lenText.utf8.count <= 3,
            lenText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let len = Int(lenText)
        else { return nil }
        self.init(address: addr, length: len)
    }

    public var family: IPFamily { address.family }

    /// The mask as an integer of the family's width.
    public var maskBits: UInt128 {
        let width = family.bitWidth
        if length == 0 { return 0 }
        let all: UInt128 = width == 128 ? ~0 : (UInt128(1) << UInt128(width)) - 1
        return all & ~((UInt128(1) << UInt128(width - length)) &- 1)
    }

    /// The same prefix with the host bits cleared (`10.1.2.3/24` -> `10.1.2.0/24`).
    public var network: IPPrefix {
        IPPrefix(address: IPAddress(family: family, bits: address.bits & maskBits), length: length)!
    }

    /// The last address of the prefix (the IPv4 broadcast address).
    public var lastAddress: IPAddress {
        let width = family.bitWidth
        let all: UInt128 = width == 128 ? ~0 : (UInt128(1) << UInt128(width)) - 1
        return IPAddress(family: family, bits: (address.bits & maskBits) | (all & ~maskBits))
    }

    /// Whether `ip` lies inside this prefix.
    public func contains(_ ip: IPAddress) -> Bool {
        ip.family == family && (ip.bits & maskBits) == (address.bits & maskBits)
    }

    /// Whether the two prefixes share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard family == other.family else { return false }
        return contains(other.network.address) || other.contains(network.address)
    }

    /// `address/length`, the address with its host bits.
    public var description: String { "\(address)/\(length)" }
}

/// The transport protocols port mappings name (IANA numbers).
/// An IP protocol number (IPPROTO_*), as a port mapping or a conntrack filter names it.
public struct IPProtocol: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public let rawValue: UInt8
    /// The protocol with IANA number `rawValue`.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The protocol with IANA number `value`, written as a literal.
    public init(integerLiteral value: UInt8) { rawValue = value }

    public static let tcp: IPProtocol = 6
    public static let udp: IPProtocol = 17
    public static let sctp: IPProtocol = 132
    /// The protocols a port mapping may name, by their names.
    public static let named: [String: IPProtocol] = ["tcp": .tcp, "udp": .udp, "sctp": .sctp]

    /// The protocol `name` names (`tcp`, `udp`, `sctp`, any case); nil for anything else.
    public init?(name: String) {
        guard let p = Self.named[name.lowercased()] else { return nil }
        self = p
    }

    /// `tcp`, `udp`, `sctp`, else the number.
    public var description: String { Self.named.first { $0.value == self }?.key ?? String(rawValue) }
}

extension IPAddress {
    /// `1.2.3.4:9153` or `[::1]:9153` (port 1-65535); nil otherwise.
    public static func parseHostPort(_ s: String) -> (host: IPAddress, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = s[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        return IPAddress(String(host)).map { ($0, port) }
    }
}

/// A 48-bit hardware address, as links, FDB entries and results carry it.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    /// The address of `bytes` (six for Ethernet; kept as given otherwise).
    public init(bytes: some Collection<UInt8>) { self.bytes = Array(bytes) }

    /// `aa:bb:cc:dd:ee:ff` (also with `-`, any case); nil unless six two-digit hexadecimal bytes.
    public init?(_ text: String) {
        let parts =
            text.split(separator: ":", omittingEmptySubsequences: false).count == 6
            ? text.split(separator: ":", omittingEmptySubsequences: false) : text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard p.count == 2, let b = UInt8(p, radix: 16) else { return nil }
            out.append(b)
        }
        bytes = out
    }

    /// The group bit (the first octet's lowest): multicast or broadcast, never an interface's own.
    public var isMulticast: Bool { bytes.first.map { $0 & 1 == 1 } ?? false }

    /// Lowercase, colon-separated (`02:42:ac:11:00:02`), as `ip link` and results write it.
    public var description: String {
        bytes.map { b in
            let h = String(b, radix: 16)
            return h.count == 1 ? "0" + h : h
        }.joined(separator: ":")
    }
}
