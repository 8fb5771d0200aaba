import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// A network interface as the kernel reports it (RTM_NEWLINK).
public struct Link: Sendable, Equatable {
    public let index: Int32
    public let name: String
    /// The interface flags (IFF_*).
    public let flags: LinkFlags
    public let mtu: Int
    /// The hardware address.
    public let mac: MACAddress
    /// The index of the master (bridge) this link is a port of.
    public let master: Int32?
    /// IFLA_INFO_KIND: "veth", "bridge", "macvlan", "vxlan", ...
    public let kind: String?
    /// IFLA_LINK: a veth's peer index (in the peer's namespace), a macvlan's parent.
    public let parentIndex: Int32?
    /// IFLA_OPERSTATE (6 = up).
    public let operState: UInt8
    public let promiscuity: UInt32
    /// IFLA_MACVLAN_MODE of a macvlan (1 private, 2 vepa, 4 bridge, 8 passthru).
    public let macvlanMode: MacvlanMode?
    /// IFLA_IPVLAN_MODE of an ipvlan.
    public let ipvlanMode: IpvlanMode?
    /// IFLA_IPVLAN_FLAGS of an ipvlan.
    public let ipvlanFlag: IpvlanFlag?
    /// IFLA_VLAN_ID of an 802.1Q VLAN link.
    public let vlanID: UInt16?
    /// A tun or tap device's settings.
    public let tun: TunInfo?
    /// IFLA_VRF_TABLE of a VRF device.
    public let vrfTable: UInt32?

    /// The link's hardware type is Ethernet (ARPHRD_ETHER): what a macvlan or ipvlan needs
    /// under it (a tun, wireguard or ip tunnel device is not).
    public let isEthernet: Bool
    public var isLoopback: Bool { flags.contains(.loopback) }
    public var isUp: Bool { flags.contains(.up) }
    public var isPromiscuous: Bool { flags.contains(.promiscuous) }
    public var isAllMulticast: Bool { flags.contains(.allMulticast) }
    /// IFLA_TXQLEN.
    public let txQueueLength: Int
    /// IFLA_IFALIAS: the free-text alias (`ip link set <dev> alias <text>`), nil when unset.
    public let alias: String?

    init(_ reply: NetlinkReply) {
        let hdr = reply.header(as: ifinfomsg.self)
        let a = reply.attributes(after: MemoryLayout<ifinfomsg>.size)
        index = hdr.ifi_index
        flags = LinkFlags(rawValue: hdr.ifi_flags)
        isEthernet = hdr.ifi_type == 1  // ARPHRD_ETHER
        name = a.string(Int(IFLA_IFNAME)) ?? ""
        mtu = Int(a.u32(Int(IFLA_MTU)) ?? 0)
        mac = MACAddress(bytes: a[Int(IFLA_ADDRESS)] ?? [])
        master = a.i32(Int(IFLA_MASTER))
        kind = a.nested(Int(IFLA_LINKINFO))?.string(Int(IFLA_INFO_KIND))
        parentIndex = a.i32(Int(IFLA_LINK))
        operState = a.u8(Int(IFLA_OPERSTATE)) ?? 0
        promiscuity = a.u32(Int(IFLA_PROMISCUITY)) ?? 0
        txQueueLength = Int(a.u32(Int(IFLA_TXQLEN)) ?? 0)
        alias = a.string(Int(IFLA_IFALIAS)).flatMap { $0.isEmpty ? nil : $0 }
        let data = a.nested(Int(IFLA_LINKINFO))?.nested(Int(IFLA_INFO_DATA))
        macvlanMode = kind == "macvlan" ? data?.u32(Int(IFLA_MACVLAN_MODE)).flatMap(MacvlanMode.init(rawValue:)) : nil
        ipvlanMode = kind == "ipvlan" ? data?.u16(Int(IFLA_IPVLAN_MODE)).flatMap(IpvlanMode.init(rawValue:)) : nil
        ipvlanFlag = kind == "ipvlan" ? data?.u16(Int(IFLA_IPVLAN_FLAGS)).flatMap(IpvlanFlag.init(rawValue:)) : nil
        vlanID = kind == "vlan" ? data?.u16(Int(IFLA_VLAN_ID)) : nil
        tun = kind == "tun" ? TunInfo(data) : nil
        vrfTable = kind == "vrf" ? data?.u32(Int(IFLA_VRF_TABLE)) : nil
    }
}

/// A link's IFF_* flags.
public struct LinkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    /// The flags of `rawValue` (IFF_* bits).
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// IFF_UP: administratively up.
    public static let up = LinkFlags(rawValue: UInt32(IFF_UP))
    /// IFF_LOOPBACK.
    public static let loopback = LinkFlags(rawValue: UInt32(IFF_LOOPBACK))
    /// IFF_PROMISC: receives every frame.
    public static let promiscuous = LinkFlags(rawValue: UInt32(IFF_PROMISC))
    /// IFF_ALLMULTI: receives every multicast frame.
    public static let allMulticast = LinkFlags(rawValue: UInt32(IFF_ALLMULTI))
}

extension NetlinkRequest {
    /// A request about one link: RTM_*LINK with an `ifinfomsg`.
    /// `family` AF_BRIDGE addresses a bridge port's bridge attributes (VLANs).
    static func link(
        _ type: Int, flags: Int32, index: Int32 = 0, ifFlags: UInt32 = 0, change: UInt32 = 0, family: Int32 = AF_UNSPEC
    ) -> NetlinkRequest {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = ifinfomsg()
        h.ifi_family = UInt8(family)
        h.ifi_index = index
        h.ifi_flags = ifFlags
        h.ifi_change = change
        r.append(header: h)
        return r
    }

    /// RTM_NEWLINK creating `name` (EEXIST if it exists), with its MTU and MAC when given: the
    /// head every `create*` shares; the kind's IFLA_LINKINFO follows.
    static func newLink(_ name: String, mtu: Int?, mac: [UInt8]? = nil) -> NetlinkRequest {
        var r = NetlinkRequest.link(Int(RTM_NEWLINK), flags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        r.attribute(Int(IFLA_IFNAME), string: name)
        if let mtu { r.attribute(Int(IFLA_MTU), u32: UInt32(mtu)) }
        if let mac { r.attribute(Int(IFLA_ADDRESS), mac) }
        return r
    }
}

extension NetlinkSocket {
    /// The link named `name`, nil when there is none. Equivalent to `ip link show <name>`.
    public func link(named name: String) throws(NetlinkError) -> Link? {
        var r = NetlinkRequest.link(Int(RTM_GETLINK), flags: NLM_F_ACK)
        r.attribute(Int(IFLA_IFNAME), string: name)
        do {
            return try execute(r, "RTM_GETLINK \(name)").first.map(Link.init)
        } catch let e where e.errno == ENODEV {
            return nil
        }
    }

    /// The link with `index`, nil when there is none. Equivalent to `ip link show dev <index>`.
    public func link(index: Int32) throws(NetlinkError) -> Link? {
        let r = NetlinkRequest.link(Int(RTM_GETLINK), flags: NLM_F_ACK, index: index)
        do {
            return try execute(r, "RTM_GETLINK index \(index)").first.map(Link.init)
        } catch let e where e.errno == ENODEV {
            return nil
        }
    }

    /// Every link. Equivalent to `ip link show`.
    public func links() throws(NetlinkError) -> [Link] {
        try execute(NetlinkRequest.link(Int(RTM_GETLINK), flags: NLM_F_DUMP), "RTM_GETLINK dump").map(Link.init)
    }

    /// The link named `name`, or ENODEV naming it.
    public func requireLink(_ name: String) throws(NetlinkError) -> Link {
        guard let l = try link(named: name) else { throw NetlinkError(operation: "find link \(name)", errno: ENODEV) }
        return l
    }

    /// Creates a veth pair; the peer is created directly in `peerNamespace` when given.
    /// Equivalent to `ip link add <name> [address <mac>] mtu <mtu> type veth peer name <peer> [netns <ns>]`.
    public func createVeth(
        name: String, peer: String, peerNamespace: NetworkNamespace? = nil, mtu: Int? = nil, mac: [UInt8]? = nil
    ) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: mtu, mac: mac)
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "veth")
            r.nest(Int(IFLA_INFO_DATA)) { r in
                r.nest(Int(VETH_INFO_PEER)) { r in
                    r.append(header: ifinfomsg())
                    r.attribute(Int(IFLA_IFNAME), string: peer)
                    if let mtu { r.attribute(Int(IFLA_MTU), u32: UInt32(mtu)) }
                    if let ns = peerNamespace { r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(ns.descriptor)) }
                }
            }
        }
        try execute(r, "RTM_NEWLINK veth \(name) peer \(peer)")
    }

    /// Creates a macvlan on `master` (an index in this socket's namespace), directly in `namespace`
    /// when given. Equivalent to `ip link add <name> link <master> [netns <ns>] [mtu <m>]
    /// [address <mac>] type macvlan mode <mode> [bcqueuelen <n>]`.
    public func createMacvlan(
        name: String, master: Int32, mode: MacvlanMode, in namespace: NetworkNamespace? = nil, mtu: Int? = nil,
        mac: [UInt8]? = nil, broadcastQueueLength: UInt32? = nil
    ) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: mtu, mac: mac)
        r.attribute(Int(IFLA_LINK), u32: UInt32(bitPattern: master))
        if let namespace { r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(namespace.descriptor)) }
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "macvlan")
            r.nest(Int(IFLA_INFO_DATA)) { r in
                r.attribute(Int(IFLA_MACVLAN_MODE), u32: mode.rawValue)
                if let q = broadcastQueueLength { r.attribute(Int(IFLA_MACVLAN_BC_QUEUE_LEN), u32: q) }
            }
        }
        try execute(r, "RTM_NEWLINK macvlan \(name) link \(master)")
    }

    /// Creates a bridge. Equivalent to `ip link add <name> [mtu <mtu>] type bridge`.
    public func createBridge(name: String, mtu: Int? = nil) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: mtu)
        r.nest(Int(IFLA_LINKINFO)) { r in r.attribute(Int(IFLA_INFO_KIND), string: "bridge") }
        try execute(r, "RTM_NEWLINK bridge \(name)")
    }

    /// Changes one link in place (RTM_NEWLINK without CREATE): `configure` adds the attributes.
    func modifyLink(
        _ index: Int32, _ what: String, ifFlags: UInt32 = 0, change: UInt32 = 0,
        _ configure: (inout NetlinkRequest) -> Void = { _ in }
    ) throws(NetlinkError) {
        var r = NetlinkRequest.link(Int(RTM_NEWLINK), flags: NLM_F_ACK, index: index, ifFlags: ifFlags, change: change)
        configure(&r)
        try execute(r, "RTM_NEWLINK index \(index) \(what)")
    }

    /// Equivalent to `ip link set <link> up` (or `down`); with `arpNotify`, also
    /// `sysctl net.ipv4.conf.<link>.arp_notify=1`, in the same request (no /proc, no namespace thread).
    public func setUp(_ index: Int32, _ up: Bool = true, arpNotify: Bool = false) throws(NetlinkError) {
        let f = LinkFlags.up.rawValue
        try modifyLink(index, up ? "up" : "down", ifFlags: up ? f : 0, change: f) { r in
            guard arpNotify else { return }
            r.nest(Int(IFLA_AF_SPEC)) { r in
                r.nest(Int(AF_INET)) { r in
                    r.nest(Int(IFLA_INET_CONF)) { r in r.attribute(Int(IPV4_DEVCONF_ARP_NOTIFY), u32: 1) }
                }
            }
        }
    }

    /// Equivalent to `ip link set <link> promisc on|off`.
    public func setPromiscuous(_ index: Int32, _ on: Bool) throws(NetlinkError) {
        let f = LinkFlags.promiscuous.rawValue
        try modifyLink(index, "promisc \(on)", ifFlags: on ? f : 0, change: f)
    }

    /// Equivalent to `ip link set <link> allmulticast on|off`.
    public func setAllMulticast(_ index: Int32, _ on: Bool) throws(NetlinkError) {
        let f = LinkFlags.allMulticast.rawValue
        try modifyLink(index, "allmulticast \(on)", ifFlags: on ? f : 0, change: f)
    }

    /// Equivalent to `ip link set <link> txqueuelen <n>`.
    public func setTxQueueLength(_ index: Int32, _ n: Int) throws(NetlinkError) {
        try modifyLink(index, "txqueuelen \(n)") { $0.attribute(Int(IFLA_TXQLEN), u32: UInt32(n)) }
    }

    /// Equivalent to `ip link set <link> mtu <mtu>`.
    public func setMTU(_ index: Int32, _ mtu: Int) throws(NetlinkError) {
        try modifyLink(index, "mtu \(mtu)") { $0.attribute(Int(IFLA_MTU), u32: UInt32(mtu)) }
    }

    /// Equivalent to `ip link set <link> address <mac>`.
    public func setMAC(_ index: Int32, _ mac: [UInt8]) throws(NetlinkError) {
        try modifyLink(index, "address \(MACAddress(bytes: mac).description)") { $0.attribute(Int(IFLA_ADDRESS), mac) }
    }

    /// Sets the hardware address and keeps the link's configuration. Most drivers (veth,
    /// macvlan, bridge) take a new address while up; one that refuses (EBUSY) is taken down for
    /// it, and what going down removed is put back: IPv6 addresses (link-local ones come back by
    /// themselves, from the new address) and every main-table route through the link.
    public func setMACKeepingConfiguration(_ index: Int32, _ mac: [UInt8]) throws(NetlinkError) {
        do {
            try setMAC(index, mac)
            return
        } catch {
            guard error.errno == EBUSY, let link = try self.link(index: index), link.isUp else { throw error }
        }
        let addresses = try self.addresses(index).filter { !($0.prefix.family == .v6 && $0.scope == UInt8(RT_SCOPE_LINK.rawValue)) }
        let routes = try (self.routes(family: .v4) + self.routes(family: .v6)).filter { $0.outputIndex == index }
        try setUp(index, false)
        try setMAC(index, mac)
        try setUp(index)
        let present = Set(try self.addresses(index).map(\.prefix))
        for a in addresses where !present.contains(a.prefix) { try addAddress(index, a.prefix, noDAD: true) }
        let now = try self.routes(family: .v4) + self.routes(family: .v6)
        for r in routes.onLinkFirst where !now.contains(r) {
            do { try addRoute(r) } catch  where error.errno == EEXIST {}
        }
    }

    /// Equivalent to `ip link set <link> master <bridge>` (`nomaster` for 0).
    public func setMaster(_ index: Int32, _ master: Int32) throws(NetlinkError) {
        try modifyLink(index, "master \(master)") { $0.attribute(Int(IFLA_MASTER), u32: UInt32(bitPattern: master)) }
    }

    /// Equivalent to `ip link set <link> name <name>` (the link must be down).
    public func rename(_ index: Int32, to name: String) throws(NetlinkError) {
        try modifyLink(index, "name \(name)") { $0.attribute(Int(IFLA_IFNAME), string: name) }
    }

    /// Equivalent to `ip link set <link> netns <ns> [name <name>] [alias <alias>]`: one request,
    /// so the link is renamed only in `ns` (never under a transient name where it was) and a
    /// refused move (EEXIST: `ns` has a link of that name) changes nothing. An empty `alias`
    /// clears it.
    public func move(_ index: Int32, to ns: NetworkNamespace, name: String? = nil, alias: String? = nil) throws(NetlinkError) {
        try modifyLink(index, "netns \(ns.path)\(name.map { " name \($0)" } ?? "")") { r in
            r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(ns.descriptor))
            if let name { r.attribute(Int(IFLA_IFNAME), string: name) }
            // Without a NUL, as `ip link` sends it: length 0 clears the alias.
            if let alias { r.attribute(Int(IFLA_IFALIAS), Array(alias.utf8)) }
        }
    }

    /// Bridge-port options of a link enslaved to a bridge.
    /// Equivalent to `ip link set <link> type bridge_slave hairpin on|off isolated on|off`.
    public func setBridgePort(_ index: Int32, hairpin: Bool? = nil, isolated: Bool? = nil) throws(NetlinkError) {
        try modifyLink(index, "bridge_slave") { r in
            r.nest(Int(IFLA_LINKINFO)) { r in
                r.attribute(Int(IFLA_INFO_SLAVE_KIND), string: "bridge")
                r.nest(Int(IFLA_INFO_SLAVE_DATA)) { r in
                    if let hairpin { r.attribute(Int(IFLA_BRPORT_MODE), u8: hairpin ? 1 : 0) }
                    if let isolated { r.attribute(Int(IFLA_BRPORT_ISOLATED), u8: isolated ? 1 : 0) }
                }
            }
        }
    }

    /// Equivalent to `ip link del <link>`.
    public func deleteLink(_ index: Int32) throws(NetlinkError) {
        try execute(NetlinkRequest.link(Int(RTM_DELLINK), flags: NLM_F_ACK, index: index), "RTM_DELLINK index \(index)")
    }
}

/// The mode of a macvlan link (`MACVLAN_MODE_*`), named as `ip link` and the macvlan plugin
/// name it.
public enum MacvlanMode: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    /// Frames between siblings are dropped.
    case `private` = 1
    /// Frames between siblings go out to the switch (a hairpinning one sends them back).
    case vepa = 2
    /// Siblings talk to each other directly.
    case bridge = 4
    /// The only child takes the parent's place.
    case passthru = 8

    public var description: String {
        switch self {
        case .private: return "private"
        case .vepa: return "vepa"
        case .bridge: return "bridge"
        case .passthru: return "passthru"
        }
    }

    /// The mode `name` names (`bridge`, `private`, `vepa`, `passthru`); nil for anything else.
    public init?(name: String) {
        guard let m = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = m
    }
}
