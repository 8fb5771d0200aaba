import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// The mode of an ipvlan link (`IPVLAN_MODE_*`), named as the ipvlan plugin names it.
public enum IpvlanMode: UInt16, CaseIterable, Sendable, CustomStringConvertible {
    /// Layer 2: the master switches frames to its children (broadcast and multicast work).
    case l2 = 0
    /// Layer 3: the master routes packets to its children (no broadcast, no multicast).
    case l3 = 1
    /// Layer 3 "symmetric": as l3, with netfilter (conntrack) seeing the children's traffic.
    case l3s = 2

    public var description: String {
        switch self {
        case .l2: return "l2"
        case .l3: return "l3"
        case .l3s: return "l3s"
        }
    }

    /// The mode `name` names (`l2`, `l3`, `l3s`); nil for anything else.
    public init?(name: String) {
        guard let m = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = m
    }
}

/// How an ipvlan's siblings reach each other (`IPVLAN_F_*`), named as `ip link` names it.
public enum IpvlanFlag: UInt16, CaseIterable, Sendable, CustomStringConvertible {
    /// Siblings talk to each other directly (the kernel's default).
    case bridge = 0
    /// Traffic between siblings is dropped.
    case `private` = 1
    /// Traffic between siblings goes out to the switch.
    case vepa = 2

    public var description: String {
        switch self {
        case .bridge: return "bridge"
        case .private: return "private"
        case .vepa: return "vepa"
        }
    }

    /// The flag `name` names (`bridge`, `private`, `vepa`); nil for anything else.
    public init?(name: String) {
        guard let m = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = m
    }
}

extension NetlinkSocket {
    /// Creates an ipvlan on `master` (an index in this socket's namespace), directly in
    /// `namespace` when given. Equivalent to `ip link add <name> link <master> [netns <ns>]
    /// [mtu <m>] type ipvlan mode <mode> <flag>`.
    public func createIpvlan(
        name: String, master: Int32, mode: IpvlanMode, flag: IpvlanFlag = .bridge, in namespace: NetworkNamespace? = nil,
        mtu: Int? = nil
    ) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: mtu)
        r.attribute(Int(IFLA_LINK), u32: UInt32(bitPattern: master))
        if let namespace { r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(namespace.descriptor)) }
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "ipvlan")
            r.nest(Int(IFLA_INFO_DATA)) { r in
                r.attribute(Int(IFLA_IPVLAN_MODE), u16: mode.rawValue)
                r.attribute(Int(IFLA_IPVLAN_FLAGS), u16: flag.rawValue)
            }
        }
        try execute(r, "RTM_NEWLINK ipvlan \(name) link \(master)")
    }

    /// Creates an 802.1Q sub-interface of `master` (an index in this socket's namespace) with
    /// VLAN `id`, directly in `namespace` when given. Equivalent to `ip link add <name> link
    /// <master> [netns <ns>] [mtu <m>] type vlan id <id>`.
    public func createVlan(name: String, master: Int32, id: UInt16, in namespace: NetworkNamespace? = nil, mtu: Int? = nil)
        throws(NetlinkError)
    {
        var r = NetlinkRequest.newLink(name, mtu: mtu)
        r.attribute(Int(IFLA_LINK), u32: UInt32(bitPattern: master))
        if let namespace { r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(namespace.descriptor)) }
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "vlan")
            r.nest(Int(IFLA_INFO_DATA)) { r in r.attribute(Int(IFLA_VLAN_ID), u16: id) }
        }
        try execute(r, "RTM_NEWLINK vlan \(name) link \(master) id \(id)")
    }

    /// Creates a dummy link, directly in `namespace` when given. Equivalent to `ip link add
    /// <name> [netns <ns>] [mtu <m>] [address <mac>] type dummy`.
    public func createDummy(name: String, in namespace: NetworkNamespace? = nil, mtu: Int? = nil, mac: [UInt8]? = nil)
        throws(NetlinkError)
    {
        var r = NetlinkRequest.newLink(name, mtu: mtu, mac: mac)
        if let namespace { r.attribute(Int(IFLA_NET_NS_FD), u32: UInt32(namespace.descriptor)) }
        r.nest(Int(IFLA_LINKINFO)) { r in r.attribute(Int(IFLA_INFO_KIND), string: "dummy") }
        try execute(r, "RTM_NEWLINK dummy \(name)")
    }
}

/// A tun/tap device's settings as the kernel reports them (IFLA_INFO_DATA of kind "tun").
public struct TunInfo: Sendable, Equatable {
    /// A tap (Ethernet frames), not a tun (IP packets).
    public let isTap: Bool
    /// The user that may open it without CAP_NET_ADMIN; nil for none.
    public let owner: UInt32?
    /// The group that may open it without CAP_NET_ADMIN; nil for none.
    public let group: UInt32?
    public let multiQueue: Bool
    /// It outlives the file that made it.
    public let persistent: Bool

    init?(_ data: NetlinkAttributes?) {
        guard let data, let type = data.u8(Int(IFLA_TUN_TYPE)) else { return nil }
        isTap = type == 2  // IFF_TAP
        owner = data.u32(Int(IFLA_TUN_OWNER)).flatMap { $0 == UInt32.max ? nil : $0 }
        group = data.u32(Int(IFLA_TUN_GROUP)).flatMap { $0 == UInt32.max ? nil : $0 }
        multiQueue = data.u8(Int(IFLA_TUN_MULTI_QUEUE)) == 1
        persistent = data.u8(Int(IFLA_TUN_PERSIST)) == 1
    }
}

/// Tap devices, which rtnetlink cannot make: /dev/net/tun makes them.
public enum TapDevice {
    /// Makes the persistent tap `name` in the network namespace of the calling thread (run it
    /// inside ``NetworkNamespace/perform(_:)``): frames without packet information, with the
    /// virtio-net header a VMM asks for, `multiQueue` for a VMM's several queues; `owner` and
    /// `group` may open it without CAP_NET_ADMIN. Equivalent to `ip tuntap add mode tap name
    /// <name> [multi_queue] [user <owner>] [group <group>]`.
    public static func create(name: String, multiQueue: Bool, owner: UInt32?, group: UInt32?) throws(NetlinkError) {
        var step: Int32 = 0
        let rc = clinux_tap_create(name, multiQueue ? 1 : 0, owner.map { Int64($0) } ?? -1, group.map { Int64($0) } ?? -1, &step)
        guard rc != 0 else { return }
        let what = ["open /dev/net/tun", "TUNSETIFF", "TUNSETOWNER \(owner ?? 0)", "TUNSETGROUP \(group ?? 0)", "TUNSETPERSIST"]
        throw NetlinkError(operation: "tap \(name): " + what[max(0, min(Int(step) - 1, what.count - 1))], errno: -rc)
    }
}

extension NetlinkSocket {
    /// Equivalent to `ip link add <name> type vrf table <table>`: a VRF device whose routes are
    /// those of `table` (its ports' connected routes go there).
    public func createVRF(name: String, table: UInt32) throws(NetlinkError) {
        var r = NetlinkRequest.newLink(name, mtu: nil, mac: nil)
        r.nest(Int(IFLA_LINKINFO)) { r in
            r.attribute(Int(IFLA_INFO_KIND), string: "vrf")
            r.nest(Int(IFLA_INFO_DATA)) { r in r.attribute(Int(IFLA_VRF_TABLE), u32: table) }
        }
        try execute(r, "RTM_NEWLINK vrf \(name) table \(table)")
    }
}
