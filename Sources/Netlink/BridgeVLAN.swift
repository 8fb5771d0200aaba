import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// A VLAN of a bridge port, as `bridge vlan show` lists it.
public struct PortVLAN: Sendable, Equatable, CustomStringConvertible {
    public var vid: Int
    /// Untagged frames entering the port belong to this VLAN.
    public var pvid: Bool
    /// Frames of this VLAN leave the port untagged.
    public var untagged: Bool
    /// VLAN `vid` on a port, as its PVID and untagged when said.
    public init(vid: Int, pvid: Bool = false, untagged: Bool = false) {
        self.vid = vid
        self.pvid = pvid
        self.untagged = untagged
    }
    public var description: String { "\(vid)\(pvid ? " PVID" : "")\(untagged ? " untagged" : "")" }
}

extension NetlinkSocket {
    /// Equivalent to `ip link set <bridge> type bridge vlan_filtering 1` (or 0). Fails with
    /// EOPNOTSUPP on a kernel built without CONFIG_BRIDGE_VLAN_FILTERING.
    public func setBridgeVLANFiltering(_ index: Int32, _ on: Bool) throws(NetlinkError) {
        try modifyLink(index, "bridge vlan_filtering \(on ? 1 : 0)") { r in
            r.nest(Int(IFLA_LINKINFO)) { r in
                r.attribute(Int(IFLA_INFO_KIND), string: "bridge")
                r.nest(Int(IFLA_INFO_DATA)) { r in r.attribute(Int(IFLA_BR_VLAN_FILTERING), u8: on ? 1 : 0) }
            }
        }
    }

    /// Whether VLAN filtering is on for the bridge (`ip -d link show` vlan_filtering).
    public func bridgeVLANFiltering(_ index: Int32) throws(NetlinkError) -> Bool {
        let r = NetlinkRequest.link(Int(RTM_GETLINK), flags: 0, index: index)
        guard let reply = try execute(r, "RTM_GETLINK index \(index)").first else { return false }
        let data = reply.attributes(after: MemoryLayout<ifinfomsg>.size).nested(Int(IFLA_LINKINFO))?.nested(Int(IFLA_INFO_DATA))
        return data?.u8(Int(IFLA_BR_VLAN_FILTERING)) == 1
    }

    /// Equivalent to `bridge vlan add dev <port> vid <a>[-<b>] [pvid] [untagged]`.
    public func addBridgeVLAN(_ port: Int32, _ vids: ClosedRange<Int>, pvid: Bool = false, untagged: Bool = false)
        throws(NetlinkError)
    {
        var flags = UInt16(0)
        if pvid { flags |= UInt16(BRIDGE_VLAN_INFO_PVID) }
        if untagged { flags |= UInt16(BRIDGE_VLAN_INFO_UNTAGGED) }
        try execute(
            vlanRequest(Int(RTM_SETLINK), port, vids, flags),
            "bridge vlan add dev \(port) vid \(Self.text(vids))\(pvid ? " pvid" : "")\(untagged ? " untagged" : "")")
    }

    /// Equivalent to `bridge vlan del dev <port> vid <a>[-<b>]`.
    public func deleteBridgeVLAN(_ port: Int32, _ vids: ClosedRange<Int>) throws(NetlinkError) {
        try execute(vlanRequest(Int(RTM_DELLINK), port, vids, 0), "bridge vlan del dev \(port) vid \(Self.text(vids))")
    }

    static func text(_ vids: ClosedRange<Int>) -> String { vids.count == 1 ? "\(vids.lowerBound)" : "\(vids.lowerBound)-\(vids.upperBound)" }

    /// RTM_SETLINK/RTM_DELLINK of family AF_BRIDGE with IFLA_AF_SPEC { IFLA_BRIDGE_VLAN_INFO... }:
    /// one entry, or a RANGE_BEGIN/RANGE_END pair.
    func vlanRequest(_ type: Int, _ port: Int32, _ vids: ClosedRange<Int>, _ flags: UInt16) -> NetlinkRequest {
        var r = NetlinkRequest.link(type, flags: NLM_F_ACK, index: port, family: AF_BRIDGE)
        func info(_ f: UInt16, _ vid: Int) -> [UInt8] {
            withUnsafeBytes(of: bridge_vlan_info(flags: f, vid: UInt16(vid))) { Array($0) }
        }
        r.nest(Int(IFLA_AF_SPEC)) { r in
            if vids.count == 1 {
                r.attribute(Int(IFLA_BRIDGE_VLAN_INFO), info(flags, vids.lowerBound))
            } else {
                r.attribute(Int(IFLA_BRIDGE_VLAN_INFO), info(flags | UInt16(BRIDGE_VLAN_INFO_RANGE_BEGIN), vids.lowerBound))
                r.attribute(Int(IFLA_BRIDGE_VLAN_INFO), info(flags | UInt16(BRIDGE_VLAN_INFO_RANGE_END), vids.upperBound))
            }
        }
        return r
    }

    /// The VLANs of a bridge port. Equivalent to `bridge vlan show dev <port>`.
    public func bridgeVLANs(_ port: Int32) throws(NetlinkError) -> [PortVLAN] {
        var r = NetlinkRequest.link(Int(RTM_GETLINK), flags: NLM_F_DUMP, family: AF_BRIDGE)
        r.attribute(Int(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_BRVLAN))
        var out: [PortVLAN] = []
        for reply in try execute(r, "bridge vlan show") {
            let hdr = reply.header(as: ifinfomsg.self)
            guard hdr.ifi_index == port,
                let spec = reply.attributes(after: MemoryLayout<ifinfomsg>.size).nested(Int(IFLA_AF_SPEC))
            else { continue }
            var rangeStart: Int?
            for e in spec.entries where e.type == Int(IFLA_BRIDGE_VLAN_INFO) && e.value.count >= 4 {
                let b = Array(e.value)
                let flags = UInt16(b[0]) | UInt16(b[1]) << 8
                let vid = Int(UInt16(b[2]) | UInt16(b[3]) << 8)
                let pvid = flags & UInt16(BRIDGE_VLAN_INFO_PVID) != 0
                let untagged = flags & UInt16(BRIDGE_VLAN_INFO_UNTAGGED) != 0
                if flags & UInt16(BRIDGE_VLAN_INFO_RANGE_BEGIN) != 0 {
                    rangeStart = vid
                } else if flags & UInt16(BRIDGE_VLAN_INFO_RANGE_END) != 0, let s = rangeStart {
                    for v in s...vid { out.append(PortVLAN(vid: v, pvid: pvid, untagged: untagged)) }
                    rangeStart = nil
                } else {
                    out.append(PortVLAN(vid: vid, pvid: pvid, untagged: untagged))
                }
            }
        }
        return out
    }
}
