import CLinux
import Base

#if canImport(Glibc)
    import Glibc
#endif

extension IPAddress {
    var addressFamily: UInt8 { family == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6) }
}

/// An address on a link (RTM_NEWADDR).
public struct InterfaceAddress: Sendable, Equatable {
    public let index: Int32
    public let prefix: IPPrefix
    /// IFA_F_* flags (IFA_F_NODAD, IFA_F_TENTATIVE, ...).
    public let flags: UInt32
    public let scope: UInt8
}

extension NetlinkSocket {
    /// Adds `prefix` (address with its prefix length) to link `index`; `noDAD` skips IPv6 duplicate
    /// address detection. IPv4 gets the broadcast address, as `ip addr add ... brd +`.
    /// Equivalent to `ip addr add <prefix> [brd +] dev <link> [nodad]`.
    public func addAddress(_ index: Int32, _ prefix: IPPrefix, noDAD: Bool = false) throws(NetlinkError) {
        var r = addressRequest(Int(RTM_NEWADDR), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, index, prefix, noDAD: noDAD)
        if prefix.family == .v4 && prefix.length < 31 {
            r.attribute(Int(IFA_BROADCAST), prefix.lastAddress.networkBytes)
        }
        try execute(r, "RTM_NEWADDR \(prefix) index \(index)")
    }

    /// Equivalent to `ip addr del <prefix> dev <link>`.
    public func deleteAddress(_ index: Int32, _ prefix: IPPrefix) throws(NetlinkError) {
        try execute(addressRequest(Int(RTM_DELADDR), NLM_F_ACK, index, prefix), "RTM_DELADDR \(prefix) index \(index)")
    }

    func addressRequest(_ type: Int, _ flags: Int32, _ index: Int32, _ prefix: IPPrefix, noDAD: Bool = false)
        -> NetlinkRequest
    {
        var r = NetlinkRequest(type: type, flags: flags)
        var h = ifaddrmsg()
        h.ifa_family = prefix.address.addressFamily
        h.ifa_prefixlen = UInt8(prefix.length)
        h.ifa_index = UInt32(bitPattern: index)
        h.ifa_flags = noDAD ? UInt8(IFA_F_NODAD) : 0
        r.append(header: h)
        r.attribute(Int(IFA_LOCAL), prefix.address.networkBytes)
        r.attribute(Int(IFA_ADDRESS), prefix.address.networkBytes)
        if noDAD { r.attribute(Int(IFA_FLAGS), u32: UInt32(IFA_F_NODAD)) }
        return r
    }

    /// The addresses of link `index` (every link when nil), optionally of one family.
    /// Equivalent to `ip addr show [dev <link>]`.
    public func addresses(_ index: Int32? = nil, family: IPFamily? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        var r = NetlinkRequest(type: Int(RTM_GETADDR), flags: NLM_F_DUMP)
        var h = ifaddrmsg()
        h.ifa_family = family.map { $0 == .v4 ? UInt8(AF_INET) : UInt8(AF_INET6) } ?? UInt8(AF_UNSPEC)
        r.append(header: h)
        return try execute(r, "RTM_GETADDR dump").compactMap { reply in
            let h = reply.header(as: ifaddrmsg.self)
            let a = reply.attributes(after: MemoryLayout<ifaddrmsg>.size)
            let idx = Int32(bitPattern: h.ifa_index)
            if let index, idx != index { return nil }
            guard let raw = a[Int(IFA_LOCAL)] ?? a[Int(IFA_ADDRESS)], let ip = IPAddress(networkBytes: raw),
                let p = IPPrefix(address: ip, length: Int(h.ifa_prefixlen))
            else { return nil }
            return InterfaceAddress(index: idx, prefix: p, flags: a.u32(Int(IFA_FLAGS)) ?? UInt32(h.ifa_flags), scope: h.ifa_scope)
        }
    }
}
