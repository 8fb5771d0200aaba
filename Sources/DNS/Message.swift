/// DNS wire format (RFC 1035, 6891): a hardened parser for the queries a resolver receives and the
/// pieces of the answers it writes. No Foundation: the daemon's hot path.

import Base

/// A resource record type (RFC 1035 3.2.2, RFC 3596, RFC 6891): the ones the responder answers
/// or reads by name, any other by number.
public struct RRType: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral {
    public let rawValue: UInt16
    /// The type with number `rawValue`.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The type with number `value`, written as a literal.
    public init(integerLiteral value: UInt16) { rawValue = value }

    public static let a: RRType = 1
    public static let ns: RRType = 2
    public static let soa: RRType = 6
    public static let ptr: RRType = 12
    public static let aaaa: RRType = 28
    public static let opt: RRType = 41
    public static let any: RRType = 255
}

/// Response codes (RFC 1035 4.1.1, RFC 6895).
public enum RCode {
    public static let noError: UInt8 = 0
    public static let formErr: UInt8 = 1
    public static let servFail: UInt8 = 2
    public static let nxDomain: UInt8 = 3
    public static let notImp: UInt8 = 4
    public static let refused: UInt8 = 5
    /// Extended (16): the upper 8 bits go in the OPT record, the lower 4 (0) in the header.
    public static let badVers: UInt16 = 16
}

/// A name as its labels (raw bytes, never interpreted as C strings or dotted text).
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public var labels: [[UInt8]]
    /// The name of `labels`, most specific first.
    public init(labels: [[UInt8]]) { self.labels = labels }

    /// From dotted text of plain labels ("web.dns.podman"); nil for an empty label or one over 63.
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasSuffix(".") { t = t.dropLast() }
        if t.isEmpty {
            labels = []
            return
        }
        var out: [[UInt8]] = []
        for part in t.split(separator: ".", omittingEmptySubsequences: false) {
            let b = Array(part.utf8)
            guard !b.isEmpty, b.count <= 63 else { return nil }
            out.append(b)
        }
        guard out.reduce(1, { $0 + $1.count + 1 }) <= 255 else { return nil }
        labels = out
    }

    /// ASCII letters lowercased; other bytes unchanged (RFC 4343).
    public var lowercased: DNSName {
        // Names are mostly lowercase already: no copy then.
        if !labels.contains(where: { $0.contains { $0 >= 65 && $0 <= 90 } }) { return self }
        return DNSName(labels: labels.map { $0.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } })
    }

    /// The wire length (labels plus the root byte).
    public var wireLength: Int { labels.reduce(1) { $0 + $1.count + 1 } }

    /// Whether `suffix` ends this name (both lowercased by the caller).
    public func hasSuffix(_ suffix: DNSName) -> Bool {
        let n = suffix.labels.count, m = labels.count
        guard n <= m else { return false }
        for i in 0..<n where labels[m - n + i] != suffix.labels[i] { return false }
        return true
    }

    /// The name without its last labels, as many as `suffix` has (the caller checked it ends with it).
    public func dropping(_ suffix: DNSName) -> DNSName { DNSName(labels: Array(labels.dropLast(suffix.labels.count))) }

    /// This name followed by `other`.
    public func appending(_ other: DNSName) -> DNSName { DNSName(labels: labels + other.labels) }

    /// Appends the name in wire format, uncompressed.
    public func write(to out: inout [UInt8]) {
        for l in labels {
            out.append(UInt8(l.count))
            out.append(contentsOf: l)
        }
        out.append(0)
    }

    /// Dotted text with bytes outside [A-Za-z0-9-_] escaped as \DDD (for logs and tests).
    public var description: String {
        if labels.isEmpty { return "." }
        return labels.map { l in
            l.map { b -> String in
                let ok = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 45 || b == 95
                if ok { return String(UnicodeScalar(b)) }
                let d = String(b)
                return "\\" + String(repeating: "0", count: 3 - d.count) + d
            }.joined()
        }.joined(separator: ".")
    }
}

/// EDNS(0) from a query's OPT record.
public struct EDNS: Sendable, Equatable {
    public var udpSize: UInt16
    public var version: UInt8
    public var dnssecOK: Bool
}

/// A query that passed every check.
public struct Query: Sendable {
    public var id: UInt16
    /// The second header word as received (RD and CD are echoed from it).
    public var flags: UInt16
    public var name: DNSName
    /// The question exactly as received (echoed in the answer).
    public var questionBytes: ArraySlice<UInt8>
    public var type: RRType
    public var qclass: UInt16
    public var edns: EDNS?
}

/// What the parser makes of a datagram or TCP message.
public enum Parsed: Sendable {
    /// No answer at all: too short to carry an ID, or a response (QR=1: never answer one, it could
    /// start a loop between two servers).
    case drop(String)
    /// An error answer: the header with `rcode`, the question echoed when it was readable.
    case error(id: UInt16, flags: UInt16, rcode: UInt8, question: ArraySlice<UInt8>?, reason: String)
    case query(Query)
}

/// The hardened parser of queries: bounded everywhere, never trusting a length or pointer.
public enum DNSParser {
    /// At most this many compression pointers in one name (RFC 9267 suggests a cap; 126 is
    /// what a 255-octet name can need at most).
    public static let maxPointerHops = 126

    struct Failure: Error { let reason: String }

    /// The query in `m`, or the error to answer it with (nil id: not worth an answer).
    public static func parse(_ m: [UInt8]) -> Parsed {
        guard m.count >= 12 else { return .drop("message shorter than a header (\(m.count) bytes)") }
        let id = u16(m, 0), flags = u16(m, 2)
        if flags & 0x8000 != 0 { return .drop("a response (QR=1)") }
        let qd = u16(m, 4), an = u16(m, 6), ns = u16(m, 8), ar = u16(m, 10)
        let opcode = (flags >> 11) & 0xF
        var question: ArraySlice<UInt8>?
        var name = DNSName(labels: [])
        var type: RRType = 0, qclass: UInt16 = 0
        var at = 12
        if qd >= 1 && m.count == 12 { return .drop("QDCOUNT \(qd) without question bytes") }
        if qd >= 1 {
            do {
                let start = at
                name = try readName(m, &at)
                guard at + 4 <= m.count else { throw Failure(reason: "question ends inside its type and class") }
                type = RRType(rawValue: u16(m, at))
                qclass = u16(m, at + 2)
                at += 4
                question = m[start..<at]
            } catch {
                let f = error as? Failure
                return .error(id: id, flags: flags, rcode: RCode.formErr, question: nil, reason: f?.reason ?? "bad question")
            }
        }
        if opcode != 0 {
            return .error(id: id, flags: flags, rcode: RCode.notImp, question: question, reason: "opcode \(opcode)")
        }
        guard qd == 1 else {
            return .error(id: id, flags: flags, rcode: RCode.formErr, question: qd > 1 ? question : nil, reason: "QDCOUNT \(qd)")
        }
        // The other sections: each record read with bounds checks; only OPT is kept.
        var edns: EDNS?
        do {
            for i in 0..<(Int(an) + Int(ns) + Int(ar)) {
                _ = try readName(m, &at)
                guard at + 10 <= m.count else { throw Failure(reason: "record \(i + 1) ends inside its header") }
                let rtype = u16(m, at), rclass = u16(m, at + 2)
                let ttl = UInt32(u16(m, at + 4)) << 16 | UInt32(u16(m, at + 6))
                let rdlen = Int(u16(m, at + 8))
                at += 10
                guard at + rdlen <= m.count else { throw Failure(reason: "record \(i + 1) data runs past the end") }
                at += rdlen
                if rtype == RRType.opt.rawValue {
                    guard i >= Int(an) + Int(ns) else { throw Failure(reason: "OPT outside the additional section") }
                    guard edns == nil else { throw Failure(reason: "two OPT records") }
                    edns = EDNS(udpSize: rclass, version: UInt8((ttl >> 16) & 0xFF), dnssecOK: ttl & 0x8000 != 0)
                }
            }
        } catch {
            return .error(id: id, flags: flags, rcode: RCode.formErr, question: question, reason: (error as? Failure)?.reason ?? "bad record")
        }
        // Bytes after the last record are ignored, always.
        return .query(Query(id: id, flags: flags, name: name, questionBytes: question!, type: type, qclass: qclass, edns: edns))
    }

    /// A name at `at` (advanced past it): labels of 1-63 bytes, compression pointers only to
    /// earlier offsets inside the message and after the header, at most ``maxPointerHops``, 255
    /// octets in all. Label types 01 and 10 (0x40-0xBF) are refused.
    static func readName(_ m: [UInt8], _ at: inout Int) throws -> DNSName {
        var labels: [[UInt8]] = []
        var pos = at
        var jumped = false
        var hops = 0
        var length = 1
        var lowestJump = pos
        while true {
            guard pos < m.count else { throw Failure(reason: "name runs past the end") }
            let b = m[pos]
            switch b & 0xC0 {
            case 0x00:
                if b == 0 {
                    if !jumped { at = pos + 1 }
                    return DNSName(labels: labels)
                }
                let len = Int(b)
                guard pos + 1 + len <= m.count else { throw Failure(reason: "label runs past the end") }
                length += len + 1
                guard length <= 255 else { throw Failure(reason: "name longer than 255 octets") }
                labels.append(Array(m[(pos + 1)...(pos + len)]))
                pos += 1 + len
            case 0xC0:
                guard pos + 1 < m.count else { throw Failure(reason: "pointer runs past the end") }
                let target = Int(b & 0x3F) << 8 | Int(m[pos + 1])
                // Only backward: before the name's own start, past the header.
                guard target >= 12, target < lowestJump else { throw Failure(reason: "compression pointer \(target) is not backward") }
                hops += 1
                guard hops <= maxPointerHops else { throw Failure(reason: "too many compression pointers") }
                if !jumped { at = pos + 2 }
                jumped = true
                lowestJump = target
                pos = target
            default:
                throw Failure(reason: "label type 0x\(String(b & 0xC0, radix: 16))")
            }
        }
    }

    @inline(__always) static func u16(_ m: [UInt8], _ i: Int) -> UInt16 { UInt16(m[i]) << 8 | UInt16(m[i + 1]) }
}

/// Writes answers: header, echoed question, records (owner names compressed to the question),
/// OPT when the query had one.
public struct ResponseWriter {
    public private(set) var bytes: [UInt8] = []
    var counts: (an: UInt16, ns: UInt16, ar: UInt16) = (0, 0, 0)

    /// Header flags: QR, opcode 0, AA as given, RD and CD echoed, RA as given, `rcode` (low 4 bits).
    public init(id: UInt16, queryFlags: UInt16, rcode: UInt8, authoritative: Bool, recursionAvailable: Bool, question: ArraySlice<UInt8>?) {
        var f: UInt16 = 0x8000
        if authoritative { f |= 0x0400 }
        f |= queryFlags & 0x0100  // RD
        f |= queryFlags & 0x0010  // CD
        if recursionAvailable { f |= 0x0080 }
        f |= UInt16(rcode & 0xF)
        bytes.reserveCapacity(128)
        put16(id)
        put16(f)
        put16(question == nil ? 0 : 1)
        put16(0)
        put16(0)
        put16(0)
        if let question { bytes += question }
    }

    public var count: Int { bytes.count }
    /// Records in the answer section so far.
    public var answerCount: Int { Int(counts.an) }

    /// A record whose owner is the question's name (a pointer to offset 12).
    public mutating func answer(type: RRType, ttl: UInt32, rdata: [UInt8]) {
        bytes.append(0xC0)
        bytes.append(12)
        header(type: type, ttl: ttl, rdlen: rdata.count)
        bytes += rdata
        counts.an += 1
        set(6, counts.an)
    }

    /// The SOA of `zone` in the authority section (negative answers, RFC 2308): the minimum is
    /// the negative TTL.
    public mutating func authoritySOA(zone: DNSName, ttl: UInt32) {
        authoritySOA(ResponseWriter.soaRecord(zone: zone, ttl: ttl))
    }

    /// An SOA record made by `soaRecord` (made once per network, not per answer).
    public mutating func authoritySOA(_ record: [UInt8]) {
        bytes += record
        counts.ns += 1
        set(8, counts.ns)
    }

    /// The whole SOA record of `zone` (owner, type, class, TTL, rdata), for `authoritySOA(_:)`.
    public static func soaRecord(zone: DNSName, ttl: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        zone.write(to: &out)
        var rdata: [UInt8] = []
        DNSName(labels: [Array("ns".utf8)] + zone.labels).write(to: &rdata)
        DNSName(labels: [Array("hostmaster".utf8)] + zone.labels).write(to: &rdata)
        for v: UInt32 in [1, 3600, 600, 86400, ttl] { rdata += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        out += [UInt8(RRType.soa.rawValue >> 8), UInt8(RRType.soa.rawValue & 0xFF), 0, 1]
        out += [UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xFF), UInt8(ttl >> 8 & 0xFF), UInt8(ttl & 0xFF)]
        out += [UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)]
        return out + rdata
    }

    /// An A or AAAA record for the question's name, written without an intermediate array.
    public mutating func answer(address a: IPAddress, ttl: UInt32) {
        bytes.append(0xC0)
        bytes.append(12)
        switch a {
        case .v4(let v):
            header(type: RRType.a, ttl: ttl, rdlen: 4)
            for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
        case .v6(let v):
            header(type: RRType.aaaa, ttl: ttl, rdlen: 16)
            for shift in stride(from: 120, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt128(shift))) }
        }
        counts.an += 1
        set(6, counts.an)
    }

    /// The OPT record: our UDP size, the extended rcode's upper bits, version 0.
    public mutating func opt(udpSize: UInt16, extendedRCode: UInt16 = 0) {
        bytes.append(0)
        put16(RRType.opt.rawValue)
        put16(udpSize)
        bytes.append(UInt8((extendedRCode >> 4) & 0xFF))
        bytes.append(0)
        put16(0)
        put16(0)
        counts.ar += 1
        set(10, counts.ar)
    }

    /// Sets TC and drops every record (the client asks again over TCP).
    public mutating func truncate(keepingOPT udpSize: UInt16?) {
        let qlen = bytes[5] == 1 ? questionLength() : 0
        bytes.removeSubrange((12 + qlen)...)
        bytes[2] |= 0x02
        counts = (0, 0, 0)
        set(6, 0)
        set(8, 0)
        set(10, 0)
        if let udpSize { opt(udpSize: udpSize) }
    }

    func questionLength() -> Int {
        var at = 12
        _ = try? DNSParser.readName(bytes, &at)
        return at + 4 - 12
    }

    mutating func header(type: RRType, ttl: UInt32, rdlen: Int) {
        put16(type.rawValue)
        put16(1)
        put16(UInt16(ttl >> 16))
        put16(UInt16(ttl & 0xFFFF))
        put16(UInt16(rdlen))
    }

    /// Appends a big-endian 16-bit value (no temporary array).
    @inline(__always) mutating func put16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(v & 0xFF))
    }

    mutating func set(_ offset: Int, _ v: UInt16) {
        bytes[offset] = UInt8(v >> 8)
        bytes[offset + 1] = UInt8(v & 0xFF)
    }
}
