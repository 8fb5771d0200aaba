import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// Connection tracking entries through ctnetlink (NETLINK_NETFILTER).
public enum Conntrack {
    /// The kernel's dump filter flags (nf_conntrack_netlink.c, CTA_FILTER_F_*).
    static let filterProtoNum: UInt32 = 1 << 3
    static let filterProtoDstPort: UInt32 = 1 << 5

    /// A ctnetlink socket in the calling thread's network namespace.
    public static func socket() throws(NetlinkError) -> NetlinkSocket { try NetlinkSocket(family: NETLINK_NETFILTER) }

    /// Deletes the entries of `family` and `proto` whose original destination port is `port`;
    /// returns how many went. Equivalent to `conntrack -D -f <family> -p <proto> --dport <port>`.
    @discardableResult
    public static func delete(
        _ nl: NetlinkSocket, family: IPFamily, proto: IPProtocol, destinationPort port: UInt16
    ) throws(NetlinkError) -> Int {
        try delete(nl, family: family, proto: proto, destinationPorts: [port])
    }

    /// Deletes the entries of `family` and `proto` whose original destination port is one of
    /// `ports`, with one walk of the kernel's table (a dump walks every bucket of the host-wide
    /// hash table, milliseconds on a large one, whatever the number of entries). The kernel
    /// filters the dump (CTA_FILTER: by protocol, and by port when there is one); the entries are
    /// checked here again all the same.
    @discardableResult
    public static func delete(
        _ nl: NetlinkSocket, family: IPFamily, proto: IPProtocol, destinationPorts ports: Set<UInt16>
    ) throws(NetlinkError) -> Int {
        guard let port = ports.first else { return 0 }
        let onePort = ports.count == 1
        let af = UInt8(family == .v4 ? AF_INET : AF_INET6)
        func request(_ msg: Int32, _ flags: Int32) -> NetlinkRequest {
            var r = NetlinkRequest(type: Int(NFNL_SUBSYS_CTNETLINK) << 8 | Int(msg), flags: flags)
            r.append(header: nfgenmsg(nfgen_family: af, version: UInt8(NFNETLINK_V0), res_id: 0))
            return r
        }
        var dump = request(Int32(IPCTNL_MSG_CT_GET.rawValue), NLM_F_DUMP)
        dump.nest(Int(CTA_TUPLE_ORIG.rawValue)) { t in
            t.nest(Int(CTA_TUPLE_PROTO.rawValue)) { p in
                p.attribute(Int(CTA_PROTO_NUM.rawValue), u8: proto.rawValue)
                if onePort { p.attribute(Int(CTA_PROTO_DST_PORT.rawValue), u16: port.bigEndian) }
            }
        }
        // The kernel parses CTA_FILTER strictly: it must carry NLA_F_NESTED.
        dump.nest(Int(CTA_FILTER.rawValue) | Int(NLA_F_NESTED)) { f in
            f.attribute(Int(CTA_FILTER_ORIG_FLAGS.rawValue), u32: filterProtoNum | (onePort ? filterProtoDstPort : 0))
            f.attribute(Int(CTA_FILTER_REPLY_FLAGS.rawValue), u32: 0)
        }
        let what = "conntrack -D -p \(proto) --dport \(ports.sorted().map(String.init).joined(separator: ","))"
        var deleted = 0
        for entry in try nl.execute(dump, "\(what) (dump)") {
            let attrs = entry.attributes(after: MemoryLayout<nfgenmsg>.size)
            guard let orig = attrs[Int(CTA_TUPLE_ORIG.rawValue)],
                let tp = NetlinkAttributes(Array(orig)).nested(Int(CTA_TUPLE_PROTO.rawValue)),
                tp.u8(Int(CTA_PROTO_NUM.rawValue)) == proto.rawValue,
                let dport = tp.u16(Int(CTA_PROTO_DST_PORT.rawValue)).map({ UInt16(bigEndian: $0) }), ports.contains(dport)
            else { continue }
            var del = request(Int32(IPCTNL_MSG_CT_DELETE.rawValue), NLM_F_ACK)
            del.attribute(Int(CTA_TUPLE_ORIG.rawValue), orig)
            if let zone = attrs[Int(CTA_ZONE.rawValue)] { del.attribute(Int(CTA_ZONE.rawValue), zone) }
            do {
                try nl.execute(del, what)
                deleted += 1
            } catch {
                if error.errno != ENOENT { throw error }  // it expired meanwhile
            }
        }
        return deleted
    }
}
