import Base
import CNftnl

#if canImport(Glibc)
    import Glibc
#endif

/// One field of a concatenated set key or map value.
public enum FieldType: Sendable, Equatable {
    case ipv4, ipv6, proto, port

    /// nft's type ids (ipv4_addr 7, ipv6_addr 8, inet_proto 12, inet_service 13), so `nft list`
    /// shows our maps as it would its own.
    var nftType: UInt32 {
        switch self {
        case .ipv4: return 7
        case .ipv6: return 8
        case .proto: return 12
        case .port: return 13
        }
    }
    /// The bytes the field takes in a key: every field of a concatenation fills whole 32-bit registers.
    var width: Int { self == .ipv6 ? 16 : 4 }
    var text: String {
        switch self {
        case .ipv4: return "ipv4_addr"
        case .ipv6: return "ipv6_addr"
        case .proto: return "inet_proto"
        case .port: return "inet_service"
        }
    }

    static func concatType(_ fields: [FieldType]) -> UInt32 { fields.reduce(0) { $0 << 6 | $1.nftType } }
    static func length(_ fields: [FieldType]) -> UInt32 { UInt32(fields.reduce(0) { $0 + $1.width }) }
    static func text(_ fields: [FieldType]) -> String { fields.map(\.text).joined(separator: " . ") }
}

/// A value of one field.
public enum FieldValue: Sendable, Hashable, CustomStringConvertible {
    case address(IPAddress)
    case proto(IPProtocol)
    case port(UInt16)

    var bytes: [UInt8] {
        switch self {
        case .address(let a): return a.networkBytes
        case .proto(let p): return [p.rawValue, 0, 0, 0]
        case .port(let p): return [UInt8(p >> 8), UInt8(p & 0xFF), 0, 0]
        }
    }

    public var description: String {
        switch self {
        case .address(let a): return a.description
        case .proto(let p): return p.description
        case .port(let p): return String(p)
        }
    }

    static func bytes(_ values: [FieldValue]) -> [UInt8] { values.flatMap(\.bytes) }
    /// `a . b . c`: a key or value as nft writes it.
    public static func text(_ values: [FieldValue]) -> String { values.map(\.description).joined(separator: " . ") }

    /// Splits key or value bytes by `fields`; nil when they do not fit.
    static func parse(_ b: UnsafeRawBufferPointer, _ fields: [FieldType]) -> [FieldValue]? {
        guard b.count == Int(FieldType.length(fields)) else { return nil }
        var out: [FieldValue] = []
        var i = 0
        for f in fields {
            let chunk = UnsafeRawBufferPointer(rebasing: b[i..<(i + f.width)])
            switch f {
            case .ipv4, .ipv6:
                guard let a = IPAddress(networkBytes: chunk) else { return nil }
                out.append(.address(a))
            case .proto: out.append(.proto(IPProtocol(rawValue: chunk[0])))
            case .port: out.append(.port(UInt16(chunk[0]) << 8 | UInt16(chunk[1])))
            }
            i += f.width
        }
        return out
    }
}

/// A map's shape: the key fields and the value fields.
public struct MapType: Sendable, Equatable {
    public let key: [FieldType]
    public let value: [FieldType]
    /// A map from `key` fields to `value` fields.
    public init(key: [FieldType], value: [FieldType]) {
        self.key = key
        self.value = value
    }
    var text: String { "type \(FieldType.text(key)) : \(FieldType.text(value));" }
}

/// An element of a data map, with an owner-tag comment.
public struct MapElement: Sendable, Equatable {
    public let key: [FieldValue]
    public let value: [FieldValue]
    public let comment: String
    /// An element mapping `key` to `value`, tagged with `comment`.
    public init(key: [FieldValue], value: [FieldValue], comment: String) {
        self.key = key
        self.value = value
        self.comment = comment
    }
}

extension Batch {
    /// `add map <t> <name> { type <key> : <value>; }`; `id` lets rules of the same batch refer to it.
    public mutating func addMap(_ t: TableRef, _ name: String, _ type: MapType, id: UInt32) {
        messages.append(
            Message(text: "add map \(t.text) \(name) { \(type.text) }") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_NEWSET, t.family, NLM_F_CREATE, seq)
                    let o = Batch.set(t, name)
                    nftnl_set_set_u32(o, attr(NFTNL_SET_FLAGS), UInt32(NFT_SET_MAP.rawValue))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_TYPE), FieldType.concatType(type.key))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_LEN), FieldType.length(type.key))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_DATA_TYPE), FieldType.concatType(type.value))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_DATA_LEN), FieldType.length(type.value))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_ID), id)
                    nftnl_set_nlmsg_build_payload(nlh, o)
                    nftnl_set_free(o)
                }
            })
    }

    /// `create element <t> <map> { <key> comment "<c>" : <value>, ... }`: exclusive, so a key that
    /// is already there fails the whole batch with EEXIST instead of being silently kept.
    public mutating func addElements(_ t: TableRef, _ map: String, _ elements: [MapElement]) {
        self.elements(
            "create element \(t.text) \(map)", NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, t, map,
            elements.map {
                (
                    "\(FieldValue.text($0.key)) comment \"\($0.comment)\" : \(FieldValue.text($0.value))",
                    ElementSpec(key: FieldValue.bytes($0.key), data: FieldValue.bytes($0.value), comment: $0.comment)
                )
            })
    }

    /// `delete element <t> <map> { <key>, ... }`.
    public mutating func deleteElements(_ t: TableRef, _ map: String, keys: [[FieldValue]]) {
        var seen = Set<[UInt8]>()
        let keys = keys.filter { seen.insert(FieldValue.bytes($0)).inserted }  // each once
        self.elements(
            "delete element \(t.text) \(map)", NFT_MSG_DELSETELEM, 0, t, map, keys.map { (FieldValue.text($0), ElementSpec(key: FieldValue.bytes($0))) })
    }
}

extension NFTSocket {
    /// The data map element of `key`, if any, found by its key (no listing).
    public func element(_ table: TableRef, _ map: String, _ type: MapType, key: [FieldValue]) throws(NFTError) -> MapElement? {
        var out: MapElement?
        try withElement(table, map, key: FieldValue.bytes(key)) { e in
            var vlen: UInt32 = 0
            guard let v = nftnl_set_elem_get(e, attr(NFTNL_SET_ELEM_DATA), &vlen),
                let value = FieldValue.parse(UnsafeRawBufferPointer(start: v, count: Int(vlen)), type.value)
            else { return }
            out = MapElement(key: key, value: value, comment: NFTSocket.comment(e))
        }
        return out
    }

    /// The elements of data map `map` in `table`; none when the table or map does not exist.
    public func elements(_ table: TableRef, _ map: String, _ type: MapType) throws(NFTError) -> [MapElement] {
        var out: [MapElement] = []
        try forEachElement(table, map) { e in
            var len: UInt32 = 0
            var vlen: UInt32 = 0
            guard let k = nftnl_set_elem_get(e, attr(NFTNL_SET_ELEM_KEY), &len),
                let key = FieldValue.parse(UnsafeRawBufferPointer(start: k, count: Int(len)), type.key),
                let v = nftnl_set_elem_get(e, attr(NFTNL_SET_ELEM_DATA), &vlen),
                let value = FieldValue.parse(UnsafeRawBufferPointer(start: v, count: Int(vlen)), type.value)
            else { return }
            out.append(MapElement(key: key, value: value, comment: NFTSocket.comment(e)))
        }
        return out
    }
}
