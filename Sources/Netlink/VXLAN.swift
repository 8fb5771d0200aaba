import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel pieces a VXLAN overlay programs (the groundwork of the vxlan plugin): the VTEP
/// link, its forwarding database (which remote VTEP holds a MAC) and permanent neighbours (which
/// MAC an overlay address has), all by replace, so a changed MAC or address is updated in place
/// (`bridge fdb append` silently keeps the old entry; flannel#1788 is that class of bug).

/// One forwarding-database entry of a VXLAN link: frames for `mac` go to the VTEP at `remote`.
public struct FDBEntry: Sendable, Equatable {
    public let mac: [UInt8]
    public let remote: IPAddress
    /// The entry sending frames for `mac` to the VTEP at `remote`.
    public init(mac: [UInt8], remote: IPAddress) {
        self.mac = mac
        self.remote = remote
    }
}

/// A neighbour entry: `address` is at `mac` on link `index`.
public struct Neighbor: Sendable, Equatable {
    public let index: Int32
    public let address: IPAddress
    public let mac: [UInt8]
    /// NUD_* state (NUD_PERMANENT for the entries an overlay programs).
    public let state: UInt16
    public var isPermanent: Bool { state & UInt16(NUD_PERMANENT) != 0 }
}

extension NetlinkSocket {
    /// Creates a VXLAN link: `vni`, UDP `port`, source address `local` on underlay link
    /// `underlay`, learning off (peers are programmed). Equivalent to `ip link add <name> type
    /// vxlan id <vni> dstport <port> local <local> dev <underlay> nolearning [mtu <m>] [address <mac>]`.
    public func createVXLAN(
        name: String, vni: UInt32, port: UInt16, local: IPAddress, underlay: Int32?, mtu: Int? = nil, mac: [UInt8]? = nil
    ) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: mtu, mac: mac)
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "vxlan")
            r.nest(Int(IFLA_INFO_DATA)) { r in
                r.attribute(Int(IFLA_VXLAN_ID), u32: vni)
                r.attribute(Int(IFLA_VXLAN_PORT), u16: port.bigEndian)
                r.attribute(Int(local.family == .v4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6), local.networkBytes)
                if let underlay { r.attribute(Int(IFLA_VXLAN_LINK), u32: UInt32(bitPattern: underlay)) }
                r.attribute(Int(IFLA_VXLAN_LEARNING), u8: 0)
            }
        }
        try execute(r, "RTM_NEWLINK vxlan \(name) id \(vni)")
    }

    /// The VXLAN attributes of a link: VNI, port, local address, underlay index; nil for a link
    /// that is no VXLAN.
    public func vxlanInfo(_ index: Int32) throws(NetlinkError) -> (vni: UInt32, port: UInt16, local: IPAddress?, underlay: Int32?)? {
        let replies = try execute(NetlinkRequest.link(Int(RTM_GETLINK), flags: 0, index: index), "RTM_GETLINK index \(index)")
        guard let reply = replies.first else { return nil }
        let a = reply.attributes(after: MemoryLayout<ifinfomsg>.size)
        guard let info = a.nested(Int(IFLA_LINKINFO)), info.string(Int(IFLA_INFO_KIND)) == "vxlan",
            let data = info.nested(Int(IFLA_INFO_DATA)), let vni = data.u32(Int(IFLA_VXLAN_ID))
        else { return nil }
        let port = data[Int(IFLA_VXLAN_PORT)].map { b -> UInt16 in b.count >= 2 ? UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1]) : 0 } ?? 0
        let local = (data[Int(IFLA_VXLAN_LOCAL)] ?? data[Int(IFLA_VXLAN_LOCAL6)]).flatMap { IPAddress(networkBytes: Array($0)) }
        return (vni, port, local, data.i32(Int(IFLA_VXLAN_LINK)))
    }

    // MARK: Forwarding database

    /// Frames for `entry.mac` leave link `index` (a VXLAN) toward `entry.remote`; an entry for that
    /// MAC is replaced. Equivalent to `bridge fdb replace <mac> dev <link> dst <remote> self permanent`.
    public func replaceFDB(_ index: Int32, _ entry: FDBEntry) throws(NetlinkError) {
        try execute(
            neighborRequest(
                Int(RTM_NEWNEIGH), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, family: UInt8(AF_BRIDGE), index: index,
                flags: UInt8(NTF_SELF), address: entry.remote, mac: entry.mac),
            "RTM_NEWNEIGH fdb \(MACAddress(bytes: entry.mac).description) dst \(entry.remote)")
    }

    /// Equivalent to `bridge fdb del <mac> dev <link> dst <remote> self`.
    public func deleteFDB(_ index: Int32, _ entry: FDBEntry) throws(NetlinkError) {
        try execute(
            neighborRequest(
                Int(RTM_DELNEIGH), NLM_F_ACK, family: UInt8(AF_BRIDGE), index: index, flags: UInt8(NTF_SELF),
                address: entry.remote, mac: entry.mac),
            "RTM_DELNEIGH fdb \(MACAddress(bytes: entry.mac).description) dst \(entry.remote)")
    }

    /// The entries of link `index` that name a remote VTEP. Equivalent to `bridge fdb show dev <link>`.
    public func fdb(_ index: Int32) throws(NetlinkError) -> [FDBEntry] {
        var r = NetlinkRequest(type: Int(RTM_GETNEIGH), flags: NLM_F_DUMP)
        var h = ndmsg()
        h.ndm_family = UInt8(AF_BRIDGE)
        h.ndm_ifindex = index
        r.append(header: h)
        r.attribute(Int(NDA_IFINDEX), u32: UInt32(bitPattern: index))
        return try execute(r, "RTM_GETNEIGH fdb dump").compactMap { reply in
            let h = reply.header(as: ndmsg.self)
            guard h.ndm_ifindex == index else { return nil }
            let a = reply.attributes(after: MemoryLayout<ndmsg>.size)
            guard let mac = a[Int(NDA_LLADDR)], mac.count == 6, let dst = a[Int(NDA_DST)].flatMap({ IPAddress(networkBytes: Array($0)) })
            else { return nil }
            return FDBEntry(mac: Array(mac), remote: dst)
        }
    }

    // MARK: Neighbours

    /// `address` is permanently at `mac` on link `index`; an entry for that address is replaced.
    /// Equivalent to `ip neigh replace <address> lladdr <mac> dev <link> nud permanent`.
    public func replaceNeighbor(_ index: Int32, _ address: IPAddress, mac: [UInt8]) throws(NetlinkError) {
        try execute(
            neighborRequest(
                Int(RTM_NEWNEIGH), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, family: address.addressFamily, index: index,
                flags: 0, address: address, mac: mac),
            "RTM_NEWNEIGH \(address) lladdr \(MACAddress(bytes: mac).description)")
    }

    /// Equivalent to `ip neigh del <address> dev <link>`.
    public func deleteNeighbor(_ index: Int32, _ address: IPAddress) throws(NetlinkError) {
        try execute(
            neighborRequest(Int(RTM_DELNEIGH), NLM_F_ACK, family: address.addressFamily, index: index, flags: 0, address: address, mac: nil),
            "RTM_DELNEIGH \(address)")
    }

    /// The neighbours of link `index` of one family. Equivalent to `ip neigh show dev <link>`.
    public func neighbors(_ index: Int32, family: IPFamily) throws(NetlinkError) -> [Neighbor] {
        var r = NetlinkRequest(type: Int(RTM_GETNEIGH), flags: NLM_F_DUMP)
        var h = ndmsg()
        h.ndm_family = family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        h.ndm_ifindex = index
        r.append(header: h)
        return try execute(r, "RTM_GETNEIGH dump").compactMap { reply in
            let h = reply.header(as: ndmsg.self)
            guard h.ndm_ifindex == index else { return nil }
            let a = reply.attributes(after: MemoryLayout<ndmsg>.size)
            guard let dst = a[Int(NDA_DST)].flatMap({ IPAddress(networkBytes: Array($0)) }) else { return nil }
            return Neighbor(index: index, address: dst, mac: a[Int(NDA_LLADDR)].map(Array.init) ?? [], state: h.ndm_state)
        }
    }

    func neighborRequest(
        _ type: Int, _ flags: Int32, family: UInt8, index: Int32, flags ntf: UInt8, address: IPAddress, mac: [UInt8]?
    ) -> NetlinkRequest {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = ndmsg()
        h.ndm_family = family
        h.ndm_ifindex = index
        h.ndm_state = UInt16(NUD_PERMANENT)
        h.ndm_flags = ntf
        r.append(header: h)
        r.attribute(Int(NDA_DST), address.networkBytes)
        if let mac { r.attribute(Int(NDA_LLADDR), mac) }
        return r
    }
}
