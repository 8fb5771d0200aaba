import CNI
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

    /// Dumps the elements of `map` and calls `body` with each (a libnftnl element, valid during
    /// the call). A missing table or map has no elements.
    func forEachElement(_ table: TableRef, _ map: String, _ body: (OpaquePointer) -> Void) throws(NFTError) {
        let replies: [[UInt8]]
        do {
            replies = try dump("list map \(table.text) \(map)") { seq in
                Batch.buffer { p in
                    let nlh = nftnl_nlmsg_build_hdr(p, UInt16(NFT_MSG_GETSETELEM.rawValue), table.family.nfproto, UInt16(NLM_F_DUMP), seq)
                    let o = Batch.set(table, map)
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
    /// process made it meanwhile, which is success.
    public func ensureTable(_ table: TableRef, _ skeleton: () -> Batch) throws(NFTError) {
        if try tableExists(table) { return }
        do {
            try apply(skeleton())
        } catch {
            if error.errno != EEXIST { throw error }
        }
    }

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
