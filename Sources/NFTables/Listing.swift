import Base
import CNftnl

#if canImport(Glibc)
    import Glibc
#endif

extension NFTSocket {
    /// The elements of verdict map `map` in `table`; none when the table or map does not exist.
    public func elements(_ table: TableRef, _ map: String, _ keyType: MapKeyType) throws(NFTError) -> [VerdictElement] {
        var out: [VerdictElement] = []
        try forEachElement(table, map) { e in
            var len: UInt32 = 0
            guard let k = nftnl_set_elem_get(e, attr(NFTNL_SET_ELEM_KEY), &len),
                let key = ElementKey(UnsafeRawBufferPointer(start: k, count: Int(len)), keyType)
            else { return }
            let jump = nftnl_set_elem_get_str(e, attr(NFTNL_SET_ELEM_CHAIN)).map { String(cString: $0) } ?? ""
            out.append(VerdictElement(key: key, jump: jump, comment: NFTSocket.comment(e)))
        }
        return out
    }

    /// The verdict map element of `key`, if any (see ``withElement``).
    public func element(_ table: TableRef, _ map: String, _ keyType: MapKeyType, key: ElementKey) throws(NFTError) -> VerdictElement? {
        var out: VerdictElement?
        try withElement(table, map, key: key.bytes) { e in
            let jump = nftnl_set_elem_get_str(e, attr(NFTNL_SET_ELEM_CHAIN)).map { String(cString: $0) } ?? ""
            out = VerdictElement(key: key, jump: jump, comment: NFTSocket.comment(e))
        }
        return out
    }

    /// Dumps the elements of `map` and calls `body` with each (a libnftnl element, valid during
    /// the call). A missing table or map has no elements.
    func forEachElement(_ table: TableRef, _ map: String, _ body: (OpaquePointer) -> Void) throws(NFTError) {
        try getElements(table, map, key: nil, body)
    }

    /// Calls `body` with the element of `map` whose key is `key`, found by the key as the kernel
    /// looks it up, never by a listing; nothing when the table, the map or the element does not exist.
    func withElement(_ table: TableRef, _ map: String, key: [UInt8], _ body: (OpaquePointer) -> Void) throws(NFTError) {
        try getElements(table, map, key: key, body)
    }

    /// GETSETELEM: a dump of every element, or (with `key`) the one element.
    private func getElements(_ table: TableRef, _ map: String, key: [UInt8]?, _ body: (OpaquePointer) -> Void) throws(NFTError) {
        let replies: [[UInt8]]
        do {
            replies = try dump(key == nil ? "list map \(table.text) \(map)" : "get element \(table.text) \(map)") { seq in
                Batch.buffer { p in
                    let flags = key == nil ? NLM_F_DUMP : NLM_F_ACK
                    let nlh = nftnl_nlmsg_build_hdr(p, UInt16(NFT_MSG_GETSETELEM.rawValue), table.family.nfproto, UInt16(flags), seq)
                    let o = Batch.set(table, map)
                    if let key { nftnl_set_elem_add(o, Batch.element(Batch.ElementSpec(key: key))) }
                    nftnl_set_elems_nlmsg_build_payload(nlh, o)
                    nftnl_set_free(o)
                }
            }
        } catch {
            if error.errno == ENOENT { return }
            throw error
        }
        for msg in replies {
            let set = nftnl_set_alloc()!
            defer { nftnl_set_free(set) }
            let ok = msg.withUnsafeBytes { nftnl_set_elems_nlmsg_parse($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), set) }
            guard ok >= 0, let it = nftnl_set_elems_iter_create(set) else { continue }
            defer { nftnl_set_elems_iter_destroy(it) }
            while let e = nftnl_set_elems_iter_next(it) { body(e) }
        }
    }

    /// An element's comment ("" when it has none).
    static func comment(_ e: OpaquePointer) -> String {
        var ulen: UInt32 = 0
        guard let u = nftnl_set_elem_get(e, attr(NFTNL_SET_ELEM_USERDATA), &ulen) else { return "" }
        return userdataComment(UnsafeRawBufferPointer(start: u, count: Int(ulen)))
    }

    /// The comment TLV (type 0) of nft user data.
    static func userdataComment(_ b: UnsafeRawBufferPointer) -> String {
        var i = 0
        while i + 2 <= b.count {
            let type = b[i], len = Int(b[i + 1])
            guard i + 2 + len <= b.count else { break }
            if type == 0 {
                return String(decoding: b[(i + 2)..<(i + 2 + len)].prefix { $0 != 0 }, as: UTF8.self)
            }
            i += 2 + len
        }
        return ""
    }

    /// Whether chain `name` exists in `table`.
    public func chainExists(_ table: TableRef, _ name: String) throws(NFTError) -> Bool {
        try exists("chain \(table.text) \(name)", NFT_MSG_GETCHAIN, table.family) { nlh in
            let o = nftnl_chain_alloc()!
            nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TABLE), table.name)
            nftnl_chain_set_str(o, attr(NFTNL_CHAIN_NAME), name)
            nftnl_chain_nlmsg_build_payload(nlh, o)
            nftnl_chain_free(o)
        }
    }

    /// Creates `table` with `skeleton` (a batch that begins with an exclusive `create table`, so
    /// two racing processes never both add its rules) unless it exists; EEXIST means another
    /// process made it meanwhile, which is success. A table that exists but lost part of the
    /// skeleton's layout (a chain emptied or deleted by hand or by another tool) has it put back
    /// in one transaction (``Batch/repair(_:)``). Returns the number of rules of each chain of
    /// the table, as it is now.
    /// `also`: more chains to count (0 for one that does not exist).
    @discardableResult
    public func ensureTable(_ table: TableRef, also: [String] = [], _ skeleton: () -> Batch) throws(NFTError) -> [String: Int] {
        let s = skeleton()
        guard let counts = try ruleCounts(table, chains: s.layout.map(\.chain) + also) else {
            do {
                try apply(s)
            } catch {
                if error.errno != EEXIST { throw error }
                return try ensureTable(table, also: also, skeleton)
            }
            return Dictionary(s.layout.map { ($0.chain, $0.rules) }, uniquingKeysWith: +)
        }
        if NFTSocket.missing(s.layout, counts) == nil { return counts }
        try apply(s.repair(table))
        var now = counts
        for (c, n) in s.layout { now[c] = max(now[c] ?? 0, n) }
        return now
    }

    /// What of `layout` (chains and their rules) the table lacks, or nil. A chain may have more
    /// rules than the layout (an administrator's own chain, a jump another network added).
    public func missingLayout(_ table: TableRef, _ layout: [(chain: String, rules: Int)]) throws(NFTError) -> String? {
        guard let counts = try ruleCounts(table, chains: layout.map(\.chain)) else { return "table \(table.text) does not exist" }
        return NFTSocket.missing(layout, counts).map { "\($0) in table \(table.text)" }
    }

    /// Chains without rules in the layout are not ours to check (an administrator's chain).
    static func missing(_ layout: [(chain: String, rules: Int)], _ counts: [String: Int]) -> String? {
        for (c, n) in layout where n > 0 {
            guard let have = counts[c] else { return "chain \(c) is missing" }
            if have < n { return "chain \(c) has \(have) of its \(n) rules" }
        }
        return nil
    }

    /// The number of rules of each of `chains` (one filtered dump each, so the cost does not grow
    /// with the table's other chains; a chain that does not exist has none); nil when the table
    /// does not exist.
    public func ruleCounts(_ table: TableRef, chains: [String]) throws(NFTError) -> [String: Int]? {
        guard try tableExists(table) else { return nil }
        var counts: [String: Int] = [:]
        for c in Set(chains) {
            var n = 0
            try forEachRule(table, c) { _ in n += 1 }
            counts[c] = n
        }
        return counts
    }

    /// The chains the rules of `chain` jump to (immediate verdicts with a chain).
    public func jumpTargets(_ table: TableRef, _ chain: String) throws(NFTError) -> Set<String> {
        var out = Set<String>()
        try forEachRule(table, chain) { r in
            guard let it = nftnl_expr_iter_create(r) else { return }
            defer { nftnl_expr_iter_destroy(it) }
            while let e = nftnl_expr_iter_next(it) {
                guard let name = nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME)), String(cString: name) == "immediate",
                    let target = nftnl_expr_get_str(e, attr(NFTNL_EXPR_IMM_CHAIN))
                else { continue }
                out.insert(String(cString: target))
            }
        }
        return out
    }

    /// Dumps the rules of `chain` (filtered in the kernel) and calls `body` with each (a libnftnl
    /// rule, valid during the call). A missing table or chain has none.
    func forEachRule(_ table: TableRef, _ chain: String, _ body: (OpaquePointer) -> Void) throws(NFTError) {
        let replies: [[UInt8]]
        do {
            replies = try dump("list chain \(table.text) \(chain)") { seq in
                Batch.buffer { p in
                    let nlh = nftnl_nlmsg_build_hdr(p, UInt16(NFT_MSG_GETRULE.rawValue), table.family.nfproto, UInt16(NLM_F_DUMP), seq)
                    let o = nftnl_rule_alloc()!
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_TABLE), table.name)
                    nftnl_rule_set_str(o, attr(NFTNL_RULE_CHAIN), chain)
                    nftnl_rule_nlmsg_build_payload(nlh, o)
                    nftnl_rule_free(o)
                }
            }
        } catch {
            if error.errno == ENOENT { return }
            throw error
        }
        for msg in replies {
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            if msg.withUnsafeBytes({ nftnl_rule_nlmsg_parse($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), r) }) >= 0 { body(r) }
        }
    }

    /// Deletes each of `chains` (its rules with it) that nothing jumps to any more, each in its
    /// own transaction: the kernel refuses to delete a chain a rule or a map element still
    /// jumps to (EBUSY), which leaves that one in place; one already gone (ENOENT) is fine too.
    /// What no listing can decide race-free, the kernel's own reference count decides. A
    /// refused transaction costs the kernel a grace period, as a deletion does: pass the chains
    /// a listing shows unused, not every candidate.
    public func deleteUnusedChains(_ table: TableRef, _ chains: some Sequence<String>) throws(NFTError) {
        for c in Set(chains).sorted() {
            var b = Batch()
            b.deleteChains(table, [c])
            do {
                try apply(b)
            } catch {
                guard error.errno == EBUSY || error.errno == ENOENT else { throw error }
            }
        }
    }

    /// The names of the chains of `table`; nil when the table does not exist (GC: chains left
    /// without an element).
    public func chainNames(_ table: TableRef) throws(NFTError) -> Set<String>? {
        guard try tableExists(table) else { return nil }
        var names = Set<String>()
        for msg in try dump(
            "list chains \(table.text)",
            { seq in
                Batch.buffer { p in
                    let nlh = nftnl_nlmsg_build_hdr(p, UInt16(NFT_MSG_GETCHAIN.rawValue), table.family.nfproto, UInt16(NLM_F_DUMP), seq)
                    let o = nftnl_chain_alloc()!
                    nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TABLE), table.name)
                    nftnl_chain_nlmsg_build_payload(nlh, o)
                    nftnl_chain_free(o)
                }
            })
        {
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            let ok = msg.withUnsafeBytes { nftnl_chain_nlmsg_parse($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), c) }
            // The kernel dumps the chains of every table of the family: ours are picked here.
            guard ok >= 0, let t = nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TABLE)), String(cString: t) == table.name,
                let n = nftnl_chain_get_str(c, attr(NFTNL_CHAIN_NAME))
            else { continue }
            names.insert(String(cString: n))
        }
        return names
    }

    /// Whether `table` exists.
    public func tableExists(_ table: TableRef) throws(NFTError) -> Bool {
        try exists("table \(table.text)", NFT_MSG_GETTABLE, table.family) { nlh in
            let o = nftnl_table_alloc()!
            nftnl_table_set_str(o, attr(NFTNL_TABLE_NAME), table.name)
            nftnl_table_nlmsg_build_payload(nlh, o)
            nftnl_table_free(o)
        }
    }

    /// Whether the object a GET request (built by `payload`) names exists: ENOENT means no.
    func exists(
        _ what: String, _ type: nf_tables_msg_types, _ family: TableFamily,
        _ payload: @escaping (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) throws(NFTError) -> Bool {
        do {
            _ = try dump("list \(what)") { seq in
                Batch.buffer { p in
                    payload(nftnl_nlmsg_build_hdr(p, UInt16(type.rawValue), family.nfproto, UInt16(NLM_F_ACK), seq))
                }
            }
            return true
        } catch {
            if error.errno == ENOENT { return false }
            throw error
        }
    }
}
