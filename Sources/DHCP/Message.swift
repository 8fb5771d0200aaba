/// DHCPv4 wire format (RFC 2131, 2132), the groundwork of the dhcp IPAM plugin and its daemon
/// (issue #20): messages built and parsed with bounds checks, options kept in order and long
/// options (RFC 3396) joined, and the lease a reply describes: address, gateway, classless
/// (RFC 3442) and classful static routes, DNS servers, domain and search list (RFC 3397). No I/O.

import Base

/// A DHCP message type (option 53).
public enum DHCPMessageType: UInt8, Sendable, CaseIterable {
    case discover = 1, offer, request, decline, ack, nak, release, inform
}

/// A message that cannot be read: what is wrong and where.
public struct DHCPError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    /// The failure `description`.
    public init(_ description: String) { self.description = description }
}

/// Option codes the plugin and the daemon use (RFC 2132 and later).
public enum DHCPOption {
    public static let pad: UInt8 = 0
    public static let subnetMask: UInt8 = 1
    public static let routers: UInt8 = 3
    public static let dnsServers: UInt8 = 6
    public static let hostName: UInt8 = 12
    public static let domainName: UInt8 = 15
    public static let staticRoutes: UInt8 = 33
    public static let requestedAddress: UInt8 = 50
    public static let leaseTime: UInt8 = 51
    public static let messageType: UInt8 = 53
    public static let serverID: UInt8 = 54
    public static let parameterRequestList: UInt8 = 55
    public static let maxMessageSize: UInt8 = 57
    public static let renewalTime: UInt8 = 58
    public static let rebindingTime: UInt8 = 59
    public static let clientID: UInt8 = 61
    public static let domainSearch: UInt8 = 119
    public static let classlessRoutes: UInt8 = 121
    public static let end: UInt8 = 255
}

/// One DHCP message (BOOTP header, then the options after the magic cookie).
public struct DHCPMessage: Sendable, Equatable {
    /// 1 BOOTREQUEST (client to server), 2 BOOTREPLY.
    public var op: UInt8
    public var xid: UInt32
    public var secs: UInt16 = 0
    /// The broadcast flag: the server answers to the broadcast address (a client that cannot
    /// take unicast before it has its address).
    public var broadcast = false
    public var ciaddr = IPAddress(family: .v4, bits: 0)
    public var yiaddr = IPAddress(family: .v4, bits: 0)
    public var siaddr = IPAddress(family: .v4, bits: 0)
    public var giaddr = IPAddress(family: .v4, bits: 0)
    /// The client's hardware address (6 bytes for Ethernet).
    public var chaddr: [UInt8]
    /// Options in order; a code given several times in the message is one entry, its data joined.
    public var options: [(code: UInt8, data: [UInt8])] = []

    static let cookie: [UInt8] = [99, 130, 83, 99]
    static let fixedSize = 236

    /// A message `op` of transaction `xid` from hardware address `chaddr`.
    public init(op: UInt8, xid: UInt32, chaddr: [UInt8]) {
        self.op = op
        self.xid = xid
        self.chaddr = chaddr
    }

    /// Equal header fields and the same options in the same order.
    public static func == (a: DHCPMessage, b: DHCPMessage) -> Bool {
        a.op == b.op && a.xid == b.xid && a.secs == b.secs && a.broadcast == b.broadcast && a.ciaddr == b.ciaddr
            && a.yiaddr == b.yiaddr && a.siaddr == b.siaddr && a.giaddr == b.giaddr && a.chaddr == b.chaddr
            && a.options.elementsEqual(b.options, by: { $0.code == $1.code && $0.data == $1.data })
    }

    /// The data of option `code`, nil when absent.
    public func option(_ code: UInt8) -> [UInt8]? { options.first { $0.code == code }?.data }

    /// Sets option `code` (replacing it).
    public mutating func set(_ code: UInt8, _ data: [UInt8]) {
        if let i = options.firstIndex(where: { $0.code == code }) { options[i].data = data } else { options.append((code, data)) }
    }

    /// Option 53.
    public var type: DHCPMessageType? { option(DHCPOption.messageType).flatMap { $0.count == 1 ? DHCPMessageType(rawValue: $0[0]) : nil } }

    /// The message on the wire: options longer than 255 bytes split in consecutive instances
    /// (RFC 3396), the end option, padded to the BOOTP minimum of 300 bytes.
    public func encoded() -> [UInt8] {
        var b = [op, 1, UInt8(min(chaddr.count, 16)), 0]
        b += be32(xid) + be16(secs) + be16(broadcast ? 0x8000 : 0)
        for a in [ciaddr, yiaddr, siaddr, giaddr] { b += a.networkBytes }
        b += Array(chaddr.prefix(16)) + [UInt8](repeating: 0, count: 16 - min(chaddr.count, 16))
        b += [UInt8](repeating: 0, count: 64 + 128) + Self.cookie
        for o in options where o.code != DHCPOption.pad && o.code != DHCPOption.end {
            var rest = o.data[...]
            repeat {
                let part = rest.prefix(255)
                b += [o.code, UInt8(part.count)] + part
                rest = rest.dropFirst(part.count)
            } while !rest.isEmpty
        }
        b.append(DHCPOption.end)
        if b.count < 300 { b += [UInt8](repeating: 0, count: 300 - b.count) }
        return b
    }

    /// Reads a message; a short header, a missing cookie or an option running past the end is
    /// an error naming it. Options after the end option, and padding, are ignored.
    public init(parsing bytes: [UInt8]) throws(DHCPError) {
        guard bytes.count >= Self.fixedSize + 4 else { throw DHCPError("message of \(bytes.count) bytes: shorter than a BOOTP header and cookie") }
        guard Array(bytes[236..<240]) == Self.cookie else { throw DHCPError("no DHCP magic cookie") }
        op = bytes[0]
        let hlen = min(Int(bytes[2]), 16)
        xid = be32(bytes, 4)
        secs = UInt16(bytes[8]) << 8 | UInt16(bytes[9])
        broadcast = bytes[10] & 0x80 != 0
        func addr(_ at: Int) -> IPAddress { IPAddress(networkBytes: bytes[at..<(at + 4)])! }
        ciaddr = addr(12)
        yiaddr = addr(16)
        siaddr = addr(20)
        giaddr = addr(24)
        chaddr = Array(bytes[28..<(28 + hlen)])
        var i = 240
        var order: [UInt8] = []
        var data: [UInt8: [UInt8]] = [:]
        while i < bytes.count {
            let code = bytes[i]
            if code == DHCPOption.end { break }
            if code == DHCPOption.pad {
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { throw DHCPError("option \(code) at byte \(i) has no length") }
            let len = Int(bytes[i + 1])
            guard i + 2 + len <= bytes.count else { throw DHCPError("option \(code) at byte \(i) runs past the message (\(len) bytes)") }
            if data[code] == nil { order.append(code) }
            data[code, default: []] += bytes[(i + 2)..<(i + 2 + len)]
            i += 2 + len
        }
        options = order.map { ($0, data[$0]!) }
    }
}

/// A static route a lease gives: to `destination` through `router` (0.0.0.0: on the link).
public struct DHCPRoute: Sendable, Equatable {
    public var destination: IPPrefix
    public var router: IPAddress
    /// The route is on the link (router 0.0.0.0, RFC 3442): `scope link`, no gateway.
    public var onLink: Bool { router.bits == 0 }
    /// A route to `destination` through `router`.
    public init(destination: IPPrefix, router: IPAddress) {
        self.destination = destination.network
        self.router = router
    }
}

/// What an ACK (or OFFER) says the client has, read from its options.
public struct DHCPLease: Sendable, Equatable {
    public var address: IPPrefix
    public var serverID: IPAddress?
    /// Option 3's first router.
    public var gateway: IPAddress?
    /// Option 121 when given (option 33 and 3 are then ignored, RFC 3442), else option 33's.
    public var routes: [DHCPRoute] = []
    public var dnsServers: [IPAddress] = []
    public var domain: String?
    public var search: [String] = []
    /// Seconds: the lease (option 51), renewal T1 (58, default half), rebinding T2 (59, 7/8).
    public var leaseTime: UInt32
    public var renewalTime: UInt32
    public var rebindingTime: UInt32

    /// The lease of `m` (yiaddr with option 1's mask); an option that is malformed is an error
    /// naming it, one that is absent takes its default (no mask: the classful one is not
    /// guessed, /32; no lease time: infinite).
    public init(_ m: DHCPMessage) throws(DHCPError) {
        let maskLength =
            try m.option(DHCPOption.subnetMask).map { b throws(DHCPError) -> Int in
                guard b.count == 4 else { throw DHCPError("option 1 (subnet mask) has \(b.count) bytes") }
                let v = be32(b, 0)
                let inverse = ~v  // a mask: ones, then zeros; its inverse is zeros, then ones
                guard inverse & (inverse &+ 1) == 0 else {
                    throw DHCPError("option 1 (subnet mask) \(b.map(String.init).joined(separator: ".")) is not a mask")
                }
                return v.nonzeroBitCount
            } ?? 32
        address = IPPrefix(address: m.yiaddr, length: maskLength)!
        serverID = try m.option(DHCPOption.serverID).map { b throws(DHCPError) in try Self.addresses(b, code: 54).first! }
        gateway = try m.option(DHCPOption.routers).flatMap { b throws(DHCPError) in try Self.addresses(b, code: 3).first }
        dnsServers = try m.option(DHCPOption.dnsServers).map { b throws(DHCPError) in try Self.addresses(b, code: 6) } ?? []
        domain = m.option(DHCPOption.domainName).map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        search = try m.option(DHCPOption.domainSearch).map { b throws(DHCPError) in try DomainList.decode(b) } ?? []
        if let b = m.option(DHCPOption.classlessRoutes) {
            routes = try ClasslessRoutes.decode(b)
        } else if let b = m.option(DHCPOption.staticRoutes) {
            let a = try Self.addresses(b, code: 33)
            guard a.count % 2 == 0 else { throw DHCPError("option 33 (static routes) has an odd number of addresses") }
            routes = stride(from: 0, to: a.count, by: 2).map { DHCPRoute(destination: Self.classful(a[$0]), router: a[$0 + 1]) }
        }
        leaseTime = try Self.seconds(m, DHCPOption.leaseTime) ?? UInt32.max
        renewalTime = try Self.seconds(m, DHCPOption.renewalTime) ?? (leaseTime == .max ? .max : leaseTime / 2)
        rebindingTime = try Self.seconds(m, DHCPOption.rebindingTime) ?? (leaseTime == .max ? .max : UInt32(UInt64(leaseTime) * 7 / 8))
    }

    static func addresses(_ b: [UInt8], code: UInt8) throws(DHCPError) -> [IPAddress] {
        guard !b.isEmpty, b.count % 4 == 0 else { throw DHCPError("option \(code) has \(b.count) bytes, not a list of IPv4 addresses") }
        return stride(from: 0, to: b.count, by: 4).map { IPAddress(networkBytes: b[$0..<($0 + 4)])! }
    }

    static func seconds(_ m: DHCPMessage, _ code: UInt8) throws(DHCPError) -> UInt32? {
        guard let b = m.option(code) else { return nil }
        guard b.count == 4 else { throw DHCPError("option \(code) has \(b.count) bytes, not 4") }
        return be32(b, 0)
    }

    /// Option 33's destinations carry no mask: the address's class decides (RFC 2132 5.8).
    /// A destination with bits set past its class's mask is a host route.
    static func classful(_ a: IPAddress) -> IPPrefix {
        let first = a.networkBytes[0]
        let length = first < 128 ? 8 : first < 192 ? 16 : first < 224 ? 24 : 32
        let prefix = IPPrefix(address: a, length: length)!
        return prefix.network.address == a ? prefix : IPPrefix(address: a, length: 32)!
    }
}

/// Option 121 (RFC 3442): per route, the prefix length, the significant octets of the
/// destination, the router.
public enum ClasslessRoutes {
    /// The routes in `b`; a length over 32 or a route cut short is an error.
    public static func decode(_ b: [UInt8]) throws(DHCPError) -> [DHCPRoute] {
        var out: [DHCPRoute] = []
        var i = 0
        while i < b.count {
            let width = Int(b[i])
            guard width <= 32 else { throw DHCPError("option 121: prefix length \(width) over 32 at byte \(i)") }
            let octets = (width + 7) / 8
            guard i + 1 + octets + 4 <= b.count else { throw DHCPError("option 121: the route at byte \(i) is cut short") }
            var dst = [UInt8](b[(i + 1)..<(i + 1 + octets)])
            dst += [UInt8](repeating: 0, count: 4 - octets)
            let router = IPAddress(networkBytes: b[(i + 1 + octets)..<(i + 5 + octets)])!
            out.append(DHCPRoute(destination: IPPrefix(address: IPAddress(networkBytes: dst)!, length: width)!, router: router))
            i += 1 + octets + 4
        }
        return out
    }

    /// `routes` as option 121 data.
    public static func encode(_ routes: [DHCPRoute]) -> [UInt8] {
        routes.flatMap { r -> [UInt8] in
            [UInt8(r.destination.length)] + r.destination.address.networkBytes.prefix((r.destination.length + 7) / 8) + r.router.networkBytes
        }
    }
}

/// Option 119 (RFC 3397): domain names in DNS wire format, compression pointers into the
/// option's own data allowed.
public enum DomainList {
    /// The names in `b`; a pointer that loops or points past the data, or a label past the end,
    /// is an error.
    public static func decode(_ b: [UInt8]) throws(DHCPError) -> [String] {
        var names: [String] = []
        var i = 0
        while i < b.count {
            var labels: [String] = []
            var at = i, jumps = 0, end: Int?
            while true {
                guard at < b.count else { throw DHCPError("option 119: a name runs past the data") }
                let len = Int(b[at])
                if len == 0 {
                    if end == nil { end = at + 1 }
                    break
                }
                if len & 0xC0 == 0xC0 {
                    guard at + 1 < b.count else { throw DHCPError("option 119: a pointer is cut short") }
                    let target = (len & 0x3F) << 8 | Int(b[at + 1])
                    jumps += 1
                    guard target < at, jumps <= 64 else { throw DHCPError("option 119: a compression pointer loops or points forward") }
                    if end == nil { end = at + 2 }
                    at = target
                    continue
                }
                guard len < 64, at + 1 + len <= b.count else { throw DHCPError("option 119: a label runs past the data") }
                labels.append(String(decoding: b[(at + 1)..<(at + 1 + len)], as: UTF8.self))
                at += 1 + len
            }
            names.append(labels.joined(separator: "."))
            i = end!
        }
        return names
    }

    /// `names` in wire format, without compression.
    public static func encode(_ names: [String]) -> [UInt8] {
        names.flatMap { n -> [UInt8] in
            n.split(separator: ".").flatMap { l -> [UInt8] in [UInt8(min(l.utf8.count, 63))] + Array(l.utf8.prefix(63)) } + [0]
        }
    }
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
/// The big-endian 32-bit value at `i` of `b` (four bytes there, checked by the caller).
func be32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
