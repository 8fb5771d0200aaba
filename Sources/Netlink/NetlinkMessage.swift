import CLinux

/// Builds one netlink request: the 16-byte `nlmsghdr`, a family header (`ifinfomsg`, `ifaddrmsg`,
/// `rtmsg`, ...) and attributes, each 4-byte aligned. Length, sequence number and port id are
/// stamped by ``NetlinkSocket/execute(_:_:)``.
public struct NetlinkRequest: Sendable {
    public private(set) var bytes: [UInt8]
    /// The message type, e.g. `RTM_NEWLINK`.
    public let type: UInt16
    public let flags: UInt16
    /// Whether this is a dump (NLM_F_DUMP): replies are collected up to NLMSG_DONE.
    public var isDump: Bool { flags & UInt16(NLM_F_DUMP) == UInt16(NLM_F_DUMP) }

    /// A request of message `type` with `flags` (NLM_F_REQUEST and NLM_F_ACK are added when sent).
    public init(type: Int, flags: Int32) {
        self.type = UInt16(type)
        self.flags = UInt16(flags | NLM_F_REQUEST)
        bytes = [UInt8](repeating: 0, count: 16)
    }

    mutating func align() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// Appends a fixed-size C header (`ifinfomsg` and the like) as raw bytes.
    public mutating func append<T>(header: T) {
        withUnsafeBytes(of: header) { bytes.append(contentsOf: $0) }
        align()
    }

    /// Appends an attribute with a raw payload.
    public mutating func attribute(_ type: Int, _ payload: some Collection<UInt8>) {
        let len = 4 + payload.count
        bytes.append(UInt8(len & 0xFF))
        bytes.append(UInt8(len >> 8))
        bytes.append(UInt8(type & 0xFF))
        bytes.append(UInt8((type >> 8) & 0xFF))
        bytes.append(contentsOf: payload)
        align()
    }

    /// Appends attribute `type` holding one byte.
    public mutating func attribute(_ type: Int, u8 v: UInt8) { attribute(type, [v]) }
    /// Appends attribute `type` holding a 16-bit value in host order.
    public mutating func attribute(_ type: Int, u16 v: UInt16) { attribute(type, withUnsafeBytes(of: v) { Array($0) }) }
    /// Appends attribute `type` holding a 32-bit value in host order.
    public mutating func attribute(_ type: Int, u32 v: UInt32) { attribute(type, withUnsafeBytes(of: v) { Array($0) }) }
    /// Appends attribute `type` holding a signed 32-bit value in host order.
    public mutating func attribute(_ type: Int, i32 v: Int32) { attribute(type, withUnsafeBytes(of: v) { Array($0) }) }
    /// A NUL-terminated string attribute.
    public mutating func attribute(_ type: Int, string s: String) { attribute(type, Array(s.utf8) + [0]) }

    /// A nested attribute; `body` appends its content (NLA_F_NESTED is not set, as iproute2).
    public mutating func nest(_ type: Int, _ body: (inout NetlinkRequest) -> Void) {
        let start = bytes.count
        attribute(type, [UInt8]())
        body(&self)
        let len = bytes.count - start
        bytes[start] = UInt8(len & 0xFF)
        bytes[start + 1] = UInt8(len >> 8)
    }

    /// The final bytes with the header stamped.
    func stamped(sequence: UInt32, portID: UInt32) -> [UInt8] {
        var out = bytes
        func put32(_ at: Int, _ v: UInt32) { for i in 0..<4 { out[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        put32(0, UInt32(out.count))
        out[4] = UInt8(type & 0xFF); out[5] = UInt8(type >> 8)
        out[6] = UInt8(flags & 0xFF); out[7] = UInt8(flags >> 8)
        put32(8, sequence)
        put32(12, portID)
        return out
    }
}

/// One reply message: its type and the bytes after the `nlmsghdr`.
public struct NetlinkReply: Sendable {
    public let type: UInt16
    public let payload: [UInt8]

    /// The family header at the start of the payload (`ifinfomsg`, ...), zero-filled if short.
    public func header<T>(as: T.Type) -> T {
        var buf = [UInt8](repeating: 0, count: MemoryLayout<T>.size)
        for i in 0..<min(buf.count, payload.count) { buf[i] = payload[i] }
        return buf.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// The attributes after a family header of `headerSize` bytes.
    public func attributes(after headerSize: Int) -> NetlinkAttributes {
        let start = (headerSize + 3) & ~3
        return NetlinkAttributes(start <= payload.count ? Array(payload[start...]) : [])
    }
}

/// Attributes (`rtattr`/`nlattr` TLVs) read with bounds checks; a malformed length ends the walk.
public struct NetlinkAttributes: Sendable {
    public let entries: [(type: Int, value: ArraySlice<UInt8>)]

    /// The attributes in `bytes`; parsing stops at the first malformed one.
    public init(_ bytes: [UInt8]) {
        var out: [(Int, ArraySlice<UInt8>)] = []
        var i = 0
        while i + 4 <= bytes.count {
            let len = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            let type = (Int(bytes[i + 2]) | Int(bytes[i + 3]) << 8) & 0x3FFF  // NLA_TYPE_MASK
            guard len >= 4, i + len <= bytes.count else { break }
            out.append((type, bytes[(i + 4)..<(i + len)]))
            i += (len + 3) & ~3
        }
        entries = out
    }

    /// The payload of the first attribute of `type`.
    public subscript(type: Int) -> ArraySlice<UInt8>? { entries.first { $0.type == type }?.value }

    /// Attribute `type` as one byte.
    public func u8(_ type: Int) -> UInt8? { self[type].flatMap { $0.first } }
    /// Attribute `type` as a 16-bit value in host order.
    public func u16(_ type: Int) -> UInt16? { int(type, 2).map { UInt16($0) } }
    /// Attribute `type` as a 32-bit value in host order.
    public func u32(_ type: Int) -> UInt32? { int(type, 4).map { UInt32($0) } }
    /// Attribute `type` as a signed 32-bit value in host order.
    public func i32(_ type: Int) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }
    /// Attribute `type` as a 64-bit value in host order.
    public func u64(_ type: Int) -> UInt64? { int(type, 8) }

    func int(_ type: Int, _ size: Int) -> UInt64? {
        guard let v = self[type], v.count >= size else { return nil }
        var r: UInt64 = 0
        for (k, b) in v.prefix(size).enumerated() { r |= UInt64(b) << (8 * UInt64(k)) }
        return r
    }

    /// A NUL-terminated string.
    public func string(_ type: Int) -> String? {
        guard let v = self[type] else { return nil }
        return String(decoding: v.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The attributes nested in attribute `type`.
    public func nested(_ type: Int) -> NetlinkAttributes? { self[type].map { NetlinkAttributes(Array($0)) } }
}
