import Base
import CNftnl

#if canImport(Glibc)
    import Glibc
#endif

/// A table family.
public enum TableFamily: Sendable {
    case inet, ip, ip6, bridge
    var nfproto: UInt16 {
        switch self {
        case .inet: return UInt16(NFPROTO_INET)
        case .ip: return UInt16(NFPROTO_IPV4)
        case .ip6: return UInt16(NFPROTO_IPV6)
        case .bridge: return UInt16(NFPROTO_BRIDGE)
        }
    }
    var text: String {
        switch self {
        case .inet: return "inet"
        case .ip: return "ip"
        case .ip6: return "ip6"
        case .bridge: return "bridge"
        }
    }
}

/// A table: family and name.
public struct TableRef: Sendable, Hashable {
    public let family: TableFamily
    public let name: String
    /// The table `name` of `family`.
    public init(_ family: TableFamily, _ name: String) {
        self.family = family
        self.name = name
    }
    /// `<family> <name>`, as nft names a table.
    public var text: String { "\(family.text) \(name)" }
}

/// The rules this project writes. Each shape knows its expressions and its nft text, so a batch
/// renders to exactly what it programs.
public enum Rule: Sendable, Equatable {
    /// `ip saddr vmap @<map>` (or `ip6 saddr ...`).
    case sourceVerdictMap(IPFamily, map: String)
    /// `ip daddr <prefix> return` (or `ip6 daddr ...`).
    case destinationReturn(IPPrefix)
    /// `masquerade`.
    case masquerade
    /// `iifname vmap @<map>`.
    case inputInterfaceVerdictMap(map: String)
    /// `ether saddr <mac> return`.
    case sourceMACReturn([UInt8])
    /// `drop`.
    case drop
    /// `fib daddr type local jump <chain>`: only packets to an address of this host.
    case jumpIfLocalDestination(chain: String)
    /// `meta nfproto <f> dnat <ip|ip6> to [<ip|ip6> daddr .] meta l4proto . th dport map @<map>`:
    /// the map gives the new address and port.
    case dnatMap(IPFamily, map: String, byAddress: Bool)
    /// `ct status dnat <ip|ip6> daddr vmap @<map>`: connections we translated, by their new address.
    case dnatDestinationVerdictMap(IPFamily, map: String)
    /// `<ip|ip6> saddr <prefix> masquerade`.
    case sourceMasquerade(IPPrefix)
    /// `ct state established,related <ip|ip6> daddr vmap @<map>`: replies to connections of an address.
    case establishedDestinationVerdictMap(IPFamily, map: String)
    /// `oifname vmap @<map>`.
    case outputInterfaceVerdictMap(map: String)
    /// `oifname "<name>" return`.
    case outputInterfaceReturn(String)
    /// `jump <chain>`.
    case jump(String)
    /// `accept`.
    case accept

    public var text: String {
        switch self {
        case .establishedDestinationVerdictMap(let f, let map): return "ct state established,related \(f == .v4 ? "ip" : "ip6") daddr vmap @\(map)"
        case .outputInterfaceVerdictMap(let map): return "oifname vmap @\(map)"
        case .outputInterfaceReturn(let name): return "oifname \"\(name)\" return"
        case .jump(let c): return "jump \(c)"
        case .accept: return "accept"
        case .inputInterfaceVerdictMap(let map): return "iifname vmap @\(map)"
        case .sourceMACReturn(let mac):
            return "ether saddr \(mac.map { b in let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }.joined(separator: ":")) return"
        case .drop: return "drop"
        case .sourceVerdictMap(let f, let map): return "\(f == .v4 ? "ip" : "ip6") saddr vmap @\(map)"
        case .destinationReturn(let p): return "\(p.family == .v4 ? "ip" : "ip6") daddr \(p.network) return"
        case .masquerade: return "masquerade"
        case .jumpIfLocalDestination(let c): return "fib daddr type local jump \(c)"
        case .dnatMap(let f, let map, let byAddress):
            let ip = f == .v4 ? "ip" : "ip6"
            return "meta nfproto \(f == .v4 ? "ipv4" : "ipv6") dnat \(ip) to \(byAddress ? "\(ip) daddr . " : "")meta l4proto . th dport map @\(map)"
        case .dnatDestinationVerdictMap(let f, let map): return "ct status dnat \(f == .v4 ? "ip" : "ip6") daddr vmap @\(map)"
        case .sourceMasquerade(let p): return "\(p.family == .v4 ? "ip" : "ip6") saddr \(p.network) masquerade"
        }
    }

    /// The expressions, appended to `rule`. `setID` names a map created in the same batch.
    func build(_ rule: OpaquePointer, setID: UInt32?) {
        let w = ExpressionWriter(rule: rule, setID: setID)
        switch self {
        case .jumpIfLocalDestination(let chain):
            w.fibLocalDestination()
            w.verdict(NFT_JUMP.rawValue, chain: chain)
        case .dnatMap(let f, let map, let byAddress):
            w.dnatMap(f, map: map, byAddress: byAddress)
        case .dnatDestinationVerdictMap(let f, let map):
            w.ctBitsSet(NFT_CT_STATUS, UInt32(IPS_DST_NAT.rawValue))
            w.nfproto(f)
            w.address(f, source: false)
            w.lookup(map, into: NFT_REG_VERDICT.rawValue)
        case .sourceMasquerade(let p):
            w.prefixMatch(p, source: true)
            w.expr("masq") { _ in }
        case .sourceVerdictMap(let f, let map):
            w.nfproto(f)
            w.address(f, source: true)
            w.lookup(map, into: NFT_REG_VERDICT.rawValue)
        case .destinationReturn(let p):
            w.prefixMatch(p, source: false)
            w.verdict(NFT_RETURN.rawValue)
        case .masquerade:
            w.expr("masq") { _ in }
        case .inputInterfaceVerdictMap(let map):
            w.meta(NFT_META_IIFNAME.rawValue)
            w.lookup(map, into: NFT_REG_VERDICT.rawValue)
        case .sourceMACReturn(let mac):
            w.payload(NFT_PAYLOAD_LL_HEADER.rawValue, 6, 6)
            w.cmp(NFT_CMP_EQ, mac)
            w.verdict(NFT_RETURN.rawValue)
        case .drop:
            w.verdict(NF_DROP)
        case .establishedDestinationVerdictMap(let f, let map):
            w.ctBitsSet(NFT_CT_STATE, Rule.ctStateEstablished | Rule.ctStateRelated)
            w.nfproto(f)
            w.address(f, source: false)
            w.lookup(map, into: NFT_REG_VERDICT.rawValue)
        case .outputInterfaceVerdictMap(let map):
            w.meta(NFT_META_OIFNAME.rawValue)
            w.lookup(map, into: NFT_REG_VERDICT.rawValue)
        case .outputInterfaceReturn(let name):
            w.meta(NFT_META_OIFNAME.rawValue)
            w.cmp(NFT_CMP_EQ, ElementKey.interface(name).bytes)
            w.verdict(NFT_RETURN.rawValue)
        case .jump(let chain):
            w.verdict(NFT_JUMP.rawValue, chain: chain)
        case .accept:
            w.verdict(NF_ACCEPT)
        }
    }
}

/// Appends libnftnl expressions to one rule: the building blocks of ``Rule/build(_:setID:)``.
struct ExpressionWriter {
    let rule: OpaquePointer
    /// The id of a map created in the same batch, for lookups.
    let setID: UInt32?

    func expr(_ name: String, _ configure: (OpaquePointer) -> Void) {
        let e = nftnl_expr_alloc(name)!
        configure(e)
        nftnl_rule_add_expr(rule, e)
    }

    func meta(_ key: UInt32, into reg: UInt32 = NFT_REG_1.rawValue) {
        expr("meta") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_DREG), reg)
        }
    }

    func payload(_ base: UInt32, _ offset: UInt32, _ len: UInt32, into reg: UInt32 = NFT_REG_1.rawValue) {
        expr("payload") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_BASE), base)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_LEN), len)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_DREG), reg)
        }
    }

    /// Compares register 1 with `data`.
    func cmp(_ op: nft_cmp_ops, _ data: [UInt8]) {
        var d = data
        expr("cmp") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CMP_SREG), NFT_REG_1.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CMP_OP), op.rawValue)
            nftnl_expr_set(e, attr(NFTNL_EXPR_CMP_DATA), &d, UInt32(d.count))
        }
    }

    /// Register 1 = (register 1 & mask) ^ 0.
    func mask(_ bits: [UInt8]) {
        var m = bits
        var xor = [UInt8](repeating: 0, count: bits.count)
        expr("bitwise") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_SREG), NFT_REG_1.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_DREG), NFT_REG_1.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_LEN), UInt32(bits.count))
            nftnl_expr_set(e, attr(NFTNL_EXPR_BITWISE_MASK), &m, UInt32(bits.count))
            nftnl_expr_set(e, attr(NFTNL_EXPR_BITWISE_XOR), &xor, UInt32(bits.count))
        }
    }

    func verdict(_ code: Int32, chain: String? = nil) {
        expr("immediate") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_DREG), NFT_REG_VERDICT.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: code))
            if let chain { nftnl_expr_set_str(e, attr(NFTNL_EXPR_IMM_CHAIN), chain) }
        }
    }

    func lookup(_ map: String, into dreg: UInt32) {
        expr("lookup") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SREG), NFT_REG_1.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_DREG), dreg)
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_LOOKUP_SET), map)
            if let setID { nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SET_ID), setID) }
        }
    }

    func nfproto(_ f: IPFamily) {
        meta(NFT_META_NFPROTO.rawValue)
        cmp(NFT_CMP_EQ, [UInt8(f == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)])
    }

    /// `ip saddr` / `ip daddr` (or ip6) into register 1.
    func address(_ f: IPFamily, source: Bool) {
        let (off, len): (UInt32, UInt32) = f == .v4 ? (source ? 12 : 16, 4) : (source ? 8 : 24, 16)
        payload(NFT_PAYLOAD_NETWORK_HEADER.rawValue, off, len)
    }

    func prefixMatch(_ p: IPPrefix, source: Bool) {
        nfproto(p.family)
        address(p.family, source: source)
        mask(IPAddress(family: p.family, bits: p.maskBits).networkBytes)
        cmp(NFT_CMP_EQ, p.network.address.networkBytes)
    }

    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    /// `fib daddr type local`.
    func fibLocalDestination() {
        expr("fib") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_FLAGS), UInt32(NFTA_FIB_F_DADDR.rawValue))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_RESULT), NFT_FIB_RESULT_ADDRTYPE.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_DREG), NFT_REG_1.rawValue)
        }
        cmp(NFT_CMP_EQ, u32(UInt32(RTN_LOCAL)))
    }

    /// `ct <key> & bits != 0` (`ct status dnat`, `ct state established,related`).
    func ctBitsSet(_ key: nft_ct_keys, _ bits: UInt32) {
        expr("ct") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CT_KEY), key.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CT_DREG), NFT_REG_1.rawValue)
        }
        mask(u32(bits))
        cmp(NFT_CMP_NEQ, u32(0))
    }

    /// `dnat ip[6] to [ip daddr .] meta l4proto . th dport map @map`. The key is a concatenation
    /// in 32-bit registers from NFT_REG32_00 (= NFT_REG_1); the map's data (address . port) lands
    /// in the same place.
    func dnatMap(_ f: IPFamily, map: String, byAddress: Bool) {
        nfproto(f)
        var reg = UInt32(NFT_REG32_00.rawValue)
        if byAddress {
            address(f, source: false)
            reg += f == .v4 ? 1 : 4
        }
        meta(NFT_META_L4PROTO.rawValue, into: reg == NFT_REG32_00.rawValue ? NFT_REG_1.rawValue : reg)
        payload(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue, 2, 2, into: reg + 1)
        lookup(map, into: NFT_REG_1.rawValue)
        expr("nat") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_TYPE), UInt32(NFT_NAT_DNAT.rawValue))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_FAMILY), UInt32(f == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_ADDR_MIN), NFT_REG_1.rawValue)
            // The port follows the address: 32-bit register 1 (IPv4) or 128-bit register 2 (IPv6).
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_PROTO_MIN), f == .v4 ? NFT_REG32_01.rawValue : NFT_REG_2.rawValue)
        }
    }
}

extension Rule {
    /// `ct state` bits (NF_CT_STATE_BIT: 1 << (ctinfo + 1)): established (ctinfo 0), related (1).
    static let ctStateEstablished: UInt32 = 1 << 1
    static let ctStateRelated: UInt32 = 1 << 2
}

/// The key type of a verdict map.
public enum MapKeyType: Sendable {
    case ipv4, ipv6, interfaceName
    /// nft's own type ids (ipv4_addr 7, ipv6_addr 8, ifname 41), so `nft list` shows the map as
    /// it would its own.
    var nftType: UInt32 {
        switch self {
        case .ipv4: return 7
        case .ipv6: return 8
        case .interfaceName: return 41
        }
    }
    var length: UInt32 { self == .ipv4 ? 4 : 16 }
    var text: String {
        switch self {
        case .ipv4: return "ipv4_addr"
        case .ipv6: return "ipv6_addr"
        case .interfaceName: return "ifname"
        }
    }
}

/// A map element's key: an address, or an interface name (padded to IFNAMSIZ).
public enum ElementKey: Sendable, Hashable, CustomStringConvertible {
    case address(IPAddress)
    case interface(String)

    var bytes: [UInt8] {
        switch self {
        case .address(let a): return a.networkBytes
        case .interface(let n): return Array(Array(n.utf8).prefix(15)) + [UInt8](repeating: 0, count: 16 - min(15, n.utf8.count))
        }
    }

    init?(_ bytes: UnsafeRawBufferPointer, _ type: MapKeyType) {
        if type == .interfaceName {
            self = .interface(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
        } else if let a = IPAddress(networkBytes: bytes) {
            self = .address(a)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .address(let a): return a.description
        case .interface(let n): return "\"\(n)\""
        }
    }
}

/// An element of a verdict map: a key that jumps to a chain, with an owner-tag comment.
public struct VerdictElement: Sendable, Equatable {
    public let key: ElementKey
    public let jump: String
    public let comment: String
    /// An element sending `key` to chain `jump`, tagged with `comment`.
    public init(key: ElementKey, jump: String, comment: String) {
        self.key = key
        self.jump = jump
        self.comment = comment
    }
}

/// One atomic nftables transaction, built with libnftnl, kept also as nft text (``text``) so that
/// tests compare golden text without root and `--dry-run` can print it.
public struct Batch: Sendable {
    /// One message of the transaction, with its nft text.
    public struct Message: Sendable {
        public let text: String
        let build: @Sendable (UInt32) -> [UInt8]
        /// What the message makes, for ``repair(_:)``.
        var role: Role = .other
    }

    enum Role: Sendable, Equatable {
        case table, chain(String), other
    }

    public internal(set) var messages: [Message] = []
    /// The chains this batch adds, in order, with the number of rules it adds to each: the layout
    /// a table made by it must still have (``NFTSocket/missingLayout(_:_:)``).
    public internal(set) var layout: [(chain: String, rules: Int)] = []
    /// An empty transaction.
    public init() {}

    /// The batch that puts a damaged layout back in one transaction, for a table that exists:
    /// every chain and map again (kept if there), each chain that has rules here flushed and
    /// given them again; the maps' elements and the chains without rules (an administrator's
    /// own chain) are left as they are.
    public func repair(_ t: TableRef) -> Batch {
        var b = Batch()
        for m in messages {
            switch m.role {
            case .table: b.addTable(t)
            case .chain(let name):
                b.messages.append(m)
                if (layout.first { $0.chain == name }?.rules ?? 0) > 0 { b.flushChain(t, name) }
            case .other: b.messages.append(m)
            }
        }
        b.layout = layout
        return b
    }

    /// The batch as `nft -f` input, one command a line.
    public var text: String { messages.map(\.text).joined(separator: "\n") }

    /// A BATCH_BEGIN/END control message.
    static func control(_ type: UInt16, seq: UInt32) -> [UInt8] {
        buffer { p in
            if type == UInt16(NFNL_MSG_BATCH_BEGIN) { _ = nftnl_batch_begin(p, seq) } else { _ = nftnl_batch_end(p, seq) }
        }
    }

    /// Runs `fill` on a zeroed buffer of `capacity` bytes and returns the netlink message it wrote
    /// (length from its header). libnftnl writes without a bounds check, so every caller sizes
    /// `capacity` for what it builds: the default holds any table, chain, map or rule message
    /// (names are at most 256 bytes), and ``elements(_:_:_:_:_:_:)`` splits element lists into
    /// messages it sizes itself. A message that still came out longer stops the process before
    /// anything is sent.
    static func buffer(capacity: Int = Batch.defaultCapacity, _ fill: (UnsafeMutablePointer<CChar>) -> Void) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: capacity)
        buf.withUnsafeMutableBytes { fill($0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        let length = Int(le32(buf, 0))
        precondition(length <= capacity, "an nftables message of \(length) bytes overran its \(capacity)-byte buffer")
        return Array(buf.prefix(length))
    }

    static let defaultCapacity = 16384

    static func header(_ p: UnsafeMutablePointer<CChar>, _ type: nf_tables_msg_types, _ family: TableFamily, _ flags: Int32, _ seq: UInt32)
        -> UnsafeMutablePointer<nlmsghdr>
    {
        nftnl_nlmsg_build_hdr(p, UInt16(type.rawValue), family.nfproto, UInt16(flags | NLM_F_ACK), seq)
    }

    /// `add table` (`create table` when `exclusive`: fails with EEXIST if it exists).
    public mutating func addTable(_ t: TableRef, exclusive: Bool = false) {
        messages.append(
            Message(
                text: "\(exclusive ? "create" : "add") table \(t.text)",
                build: { seq in
                    Batch.buffer { p in
                        let nlh = Batch.header(p, NFT_MSG_NEWTABLE, t.family, NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0), seq)
                        let o = nftnl_table_alloc()!
                        nftnl_table_set_str(o, attr(NFTNL_TABLE_NAME), t.name)
                        nftnl_table_set_u32(o, attr(NFTNL_TABLE_FAMILY), UInt32(t.family.nfproto))
                        nftnl_table_nlmsg_build_payload(nlh, o)
                        nftnl_table_free(o)
                    }
                }, role: .table))
    }

    /// `delete table`.
    public mutating func deleteTable(_ t: TableRef) {
        messages.append(
            Message(text: "delete table \(t.text)") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_DELTABLE, t.family, 0, seq)
                    let o = nftnl_table_alloc()!
                    nftnl_table_set_str(o, attr(NFTNL_TABLE_NAME), t.name)
                    nftnl_table_set_u32(o, attr(NFTNL_TABLE_FAMILY), UInt32(t.family.nfproto))
                    nftnl_table_nlmsg_build_payload(nlh, o)
                    nftnl_table_free(o)
                }
            })
    }

    /// A base chain hook: only what this project uses.
    public enum Hook: Sendable {
        /// `type nat hook postrouting priority srcnat (100); policy accept;`
        case natPostrouting
        /// Bridge family: `type filter hook prerouting priority -300; policy accept;`
        case bridgePrerouting
        /// `type nat hook prerouting priority dstnat (-100); policy accept;`
        case natPrerouting
        /// `type nat hook output priority -100; policy accept;`
        case natOutput
        /// `type filter hook forward priority filter (0); policy accept;`
        case filterForward

        var text: String {
            switch self {
            case .natPrerouting: return "type nat hook prerouting priority dstnat; policy accept;"
            case .natOutput: return "type nat hook output priority -100; policy accept;"
            case .natPostrouting: return "type nat hook postrouting priority srcnat; policy accept;"
            case .bridgePrerouting: return "type filter hook prerouting priority -300; policy accept;"
            case .filterForward: return "type filter hook forward priority filter; policy accept;"
            }
        }
        var chainType: String { self == .bridgePrerouting || self == .filterForward ? "filter" : "nat" }
        var number: UInt32 {
            switch self {
            case .natPostrouting: return UInt32(NF_INET_POST_ROUTING.rawValue)
            case .natPrerouting: return UInt32(NF_INET_PRE_ROUTING.rawValue)
            case .natOutput: return UInt32(NF_INET_LOCAL_OUT.rawValue)
            case .bridgePrerouting: return 0  // NF_BR_PRE_ROUTING
            case .filterForward: return UInt32(NF_INET_FORWARD.rawValue)
            }
        }
        var priority: Int32 {
            switch self {
            case .natPostrouting: return 100
            case .natPrerouting, .natOutput: return -100
            case .bridgePrerouting: return -300
            case .filterForward: return 0
            }
        }
    }

    /// `add chain` (a regular chain, or a base chain with `hook`); existing chains are kept.
    public mutating func addChain(_ t: TableRef, _ name: String, hook: Hook? = nil) {
        let text = hook.map { "add chain \(t.text) \(name) { \($0.text) }" } ?? "add chain \(t.text) \(name)"
        if !layout.contains(where: { $0.chain == name }) { layout.append((name, 0)) }
        messages.append(
            Message(
                text: text,
                build: { seq in
                    Batch.buffer { p in
                        let nlh = Batch.header(p, NFT_MSG_NEWCHAIN, t.family, NLM_F_CREATE, seq)
                        let o = nftnl_chain_alloc()!
                        nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TABLE), t.name)
                        nftnl_chain_set_str(o, attr(NFTNL_CHAIN_NAME), name)
                        if let hook {
                            nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TYPE), hook.chainType)
                            nftnl_chain_set_u32(o, attr(NFTNL_CHAIN_HOOKNUM), hook.number)
                            nftnl_chain_set_s32(o, attr(NFTNL_CHAIN_PRIO), hook.priority)
                            nftnl_chain_set_u32(o, attr(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
                        }
                        nftnl_chain_nlmsg_build_payload(nlh, o)
                        nftnl_chain_free(o)
                    }
                }, role: .chain(name)))
    }

    /// `delete chain` (it must have no rules and no references left in the same transaction).
    public mutating func deleteChain(_ t: TableRef, _ name: String) {
        messages.append(
            Message(text: "delete chain \(t.text) \(name)") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_DELCHAIN, t.family, 0, seq)
                    let o = nftnl_chain_alloc()!
                    nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TABLE), t.name)
                    nftnl_chain_set_str(o, attr(NFTNL_CHAIN_NAME), name)
                    nftnl_chain_nlmsg_build_payload(nlh, o)
                    nftnl_chain_free(o)
                }
            })
    }

    /// `flush chain`: every rule of the chain goes (in the same transaction as what follows).
    public mutating func flushChain(_ t: TableRef, _ name: String) {
        messages.append(
            Message(text: "flush chain \(t.text) \(name)") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_DELRULE, t.family, 0, seq)
                    let o = nftnl_rule_alloc()!
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_TABLE), t.name)
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_CHAIN), name)
                    nftnl_rule_set_u32(o, attr(NFTNL_RULE_FAMILY), UInt32(t.family.nfproto))
                    nftnl_rule_nlmsg_build_payload(nlh, o)
                    nftnl_rule_free(o)
                }
            })
    }

    /// `add rule`. `setID` when the rule looks up a map created earlier in this batch.
    public mutating func addRule(_ t: TableRef, _ chain: String, _ rule: Rule, setID: UInt32? = nil) {
        newRule(t, chain, rule, setID: setID, append: true)
    }

    /// `insert rule`: the rule goes first in its chain.
    public mutating func insertRule(_ t: TableRef, _ chain: String, _ rule: Rule) {
        newRule(t, chain, rule, setID: nil, append: false)
    }

    private mutating func newRule(_ t: TableRef, _ chain: String, _ rule: Rule, setID: UInt32?, append: Bool) {
        if let i = layout.firstIndex(where: { $0.chain == chain }) { layout[i].rules += 1 } else { layout.append((chain, 1)) }
        messages.append(
            Message(text: "\(append ? "add" : "insert") rule \(t.text) \(chain) \(rule.text)") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_NEWRULE, t.family, NLM_F_CREATE | (append ? NLM_F_APPEND : 0), seq)
                    let o = nftnl_rule_alloc()!
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_TABLE), t.name)
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_CHAIN), chain)
                    nftnl_rule_set_u32(o, attr(NFTNL_RULE_FAMILY), UInt32(t.family.nfproto))
                    rule.build(o, setID: setID)
                    nftnl_rule_nlmsg_build_payload(nlh, o)
                    nftnl_rule_free(o)
                }
            })
    }

    /// `add map <t> <name> { type <key> : verdict; }`; `id` lets rules of the same batch refer to it.
    public mutating func addVerdictMap(_ t: TableRef, _ name: String, key: MapKeyType, id: UInt32) {
        messages.append(
            Message(text: "add map \(t.text) \(name) { type \(key.text) : verdict; }") { seq in
                Batch.buffer { p in
                    let nlh = Batch.header(p, NFT_MSG_NEWSET, t.family, NLM_F_CREATE, seq)
                    let o = Batch.set(t, name)
                    nftnl_set_set_u32(o, attr(NFTNL_SET_FLAGS), UInt32(NFT_SET_MAP.rawValue))
                    nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_TYPE), key.nftType)
                    nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_LEN), key.length)
                    nftnl_set_set_u32(o, attr(NFTNL_SET_DATA_TYPE), NFT_DATA_VERDICT.rawValue)
                    nftnl_set_set_u32(o, attr(NFTNL_SET_ID), id)
                    nftnl_set_nlmsg_build_payload(nlh, o)
                    nftnl_set_free(o)
                }
            })
    }

    static func set(_ t: TableRef, _ name: String) -> OpaquePointer {
        let o = nftnl_set_alloc()!
        nftnl_set_set_str(o, attr(NFTNL_SET_TABLE), t.name)
        nftnl_set_set_str(o, attr(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(o, attr(NFTNL_SET_FAMILY), UInt32(t.family.nfproto))
        return o
    }

    /// `create element <t> <map> { <key> comment "<c>" : jump <chain> }`: exclusive, so a key that
    /// is already there fails the batch (EEXIST, or EBUSY when its verdict differs) instead of
    /// silently keeping the old element and its owner tag.
    /// Not `exclusive`: `add element`, which keeps an element that is already there as it is and
    /// fails (ENOENT) only when the chain it jumps to is gone.
    public mutating func addElements(_ t: TableRef, _ map: String, _ elements: [VerdictElement], exclusive: Bool = true) {
        self.elements(
            "\(exclusive ? "create" : "add") element \(t.text) \(map)", NFT_MSG_NEWSETELEM, NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0), t, map,
            elements.map { ("\($0.key) comment \"\($0.comment)\" : jump \($0.jump)", ElementSpec(key: $0.key.bytes, jump: $0.jump, comment: $0.comment)) })
    }

    /// `delete element <t> <map> { <key>, ... }`.
    /// Deletes the elements of `keys` (each once: deleting one twice in a transaction fails).
    public mutating func deleteElements(_ t: TableRef, _ map: String, _ keys: [ElementKey]) {
        var seen = Set<ElementKey>()
        let keys = keys.filter { seen.insert($0).inserted }
        self.elements("delete element \(t.text) \(map)", NFT_MSG_DELSETELEM, 0, t, map, keys.map { ($0.description, ElementSpec(key: $0.bytes)) })
    }

    /// Deletes chains of `t` (their rules first), in this transaction.
    public mutating func deleteChains(_ t: TableRef, _ names: some Sequence<String>) {
        for c in Set(names).sorted() {
            flushChain(t, c)
            deleteChain(t, c)
        }
    }

    /// The messages of `other`, after this batch's, in the same transaction.
    public mutating func append(_ other: Batch) {
        messages += other.messages
        for (c, n) in other.layout {
            if let i = layout.firstIndex(where: { $0.chain == c }) { layout[i].rules += n } else { layout.append((c, n)) }
        }
    }

    /// One element of a NEWSETELEM/DELSETELEM message: the key, and for additions a verdict
    /// (`jump`) or data, and the comment.
    struct ElementSpec: Sendable {
        var key: [UInt8]
        var jump: String? = nil
        var data: [UInt8]? = nil
        var comment: String? = nil

        /// At least the bytes the element takes in a message: its attributes' headers and padding
        /// (about 70 bytes) and their contents.
        var size: Int { 96 + key.count + (data?.count ?? 0) + (jump?.utf8.count ?? 0) + (comment?.utf8.count ?? 0) }
    }

    /// The most element bytes one message carries: the element list is one netlink attribute
    /// nest, whose length field is 16 bits, so a larger list would wrap it.
    static let elementBytesPerMessage = 32768

    /// The messages that add or delete `items` in `map` (none when there are none), one per run
    /// of elements up to ``elementBytesPerMessage``, each in a buffer sized for its elements.
    /// All of them go in the same transaction. `head` is the nft command without the list.
    mutating func elements(
        _ head: String, _ type: nf_tables_msg_types, _ flags: Int32, _ t: TableRef, _ map: String, _ items: [(String, ElementSpec)]
    ) {
        var start = 0
        while start < items.count {
            var end = start, bytes = 0
            while end < items.count && (end == start || bytes + items[end].1.size <= Batch.elementBytesPerMessage) {
                bytes += items[end].1.size
                end += 1
            }
            let chunk = items[start..<end]
            let specs = chunk.map(\.1)
            // The header, nfgenmsg, table and set names (at most 256 bytes each) and the nest.
            let capacity = 1024 + bytes
            messages.append(
                Message(text: "\(head) { \(chunk.map(\.0).joined(separator: ", ")) }") { seq in
                    Batch.buffer(capacity: capacity) { p in
                        let nlh = Batch.header(p, type, t.family, flags, seq)
                        let o = Batch.set(t, map)
                        for spec in specs { nftnl_set_elem_add(o, Batch.element(spec)) }
                        nftnl_set_elems_nlmsg_build_payload(nlh, o)
                        nftnl_set_free(o)
                    }
                })
            start = end
        }
    }

    /// A libnftnl element for `spec` (owned by the set it is added to).
    static func element(_ spec: ElementSpec) -> OpaquePointer {
        let e = nftnl_set_elem_alloc()!
        var key = spec.key
        nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), &key, UInt32(key.count))
        if let jump = spec.jump {
            nftnl_set_elem_set_u32(e, attr(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: NFT_JUMP.rawValue))
            nftnl_set_elem_set_str(e, attr(NFTNL_SET_ELEM_CHAIN), jump)
        }
        if var data = spec.data { nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_DATA), &data, UInt32(data.count)) }
        if let comment = spec.comment {
            // As nft stores it: user data TLV 0, NUL-terminated.
            let ud = nftnl_udata_buf_alloc(256)!
            _ = nftnl_udata_put_strz(ud, UInt8(attr(NFTNL_UDATA_SET_ELEM_COMMENT)), comment)
            nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_USERDATA), nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud))
            nftnl_udata_buf_free(ud)
        }
        return e
    }
}

/// A libnftnl attribute constant as the setters take it: some are anonymous C enums (Int), others
/// named ones (with a raw value).
@inline(__always) func attr(_ v: Int) -> UInt16 { UInt16(v) }
@inline(__always) func attr<T: RawRepresentable>(_ v: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(v.rawValue) }
