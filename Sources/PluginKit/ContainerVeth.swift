import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// A host end's name as the reference names it: `veth` + 8 random hexadecimal digits.
public func randomVethName() -> String {
    let h = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    return "veth" + String(repeating: "0", count: 8 - h.count) + h
}

extension NetlinkSocket {
    /// Makes a veth pair from this socket's namespace (the container's): `ifName` here, its peer
    /// in the calling thread's namespace (the host) under a random ``randomVethName()``, a new
    /// name when one is taken (up to 6 tries); the peer's name. Equivalent to `ip link add
    /// <ifName> [mtu <m>] [address <mac>] type veth peer name veth%08x netns <host>`.
    public func createContainerVeth(_ ifName: String, mtu: Int?, mac: [UInt8]?) throws(NetlinkError) -> String {
        let hostNS = try NetworkNamespace.current()
        for attempt in 0...5 {
            let peer = randomVethName()
            do {
                try createVeth(name: ifName, peer: peer, peerNamespace: hostNS, mtu: mtu, mac: mac)
                return peer
            } catch {
                if error.errno != EEXIST || attempt == 5 { throw error }  // EEXIST: the random host name was taken
            }
        }
        throw NetlinkError(operation: "create veth \(ifName)", errno: EEXIST)
    }
}
