import Base

#if canImport(Glibc)
    import Glibc
#endif

/// flanneld's subnet file (`/run/flannel/subnet.env`), which cni-overlayd writes in its place so
/// that the `flannel` CNI plugin (ours or flannel's) works with our agent: the cluster's network,
/// this host's subnet (as flanneld writes it: its first address with the subnet's length), the
/// VTEP's MTU, and FLANNEL_IPMASQ=false: the agent does not masquerade, so the flannel plugin has
/// its bridge masquerade what leaves the cluster's network.
public struct SubnetFile: Sendable, Equatable {
    /// The overlay's network.
    public let network: IPPrefix
    /// This host's subnet.
    public let subnet: IPPrefix
    /// The VTEP's MTU.
    public let mtu: Int

    /// The file of `lease` in `network` with the VTEP's `mtu`.
    public init(network: OverlayNetwork, lease: NodeLease, mtu: Int) {
        self.network = network.network
        subnet = lease.subnet
        self.mtu = mtu
    }

    /// The file's text: FLANNEL_NETWORK and FLANNEL_SUBNET (the IPV6 keys for an IPv6 overlay),
    /// FLANNEL_MTU, FLANNEL_IPMASQ.
    public var text: String {
        let first = IPPrefix(address: subnet.network.address.advanced(by: 1), length: subnet.length)!
        let v6 = network.family == .v6 ? "IPV6_" : ""
        return "FLANNEL_\(v6)NETWORK=\(network)\nFLANNEL_\(v6)SUBNET=\(first)\nFLANNEL_MTU=\(mtu)\nFLANNEL_IPMASQ=false\n"
    }

    /// Writes the file atomically (its directory made), mode 0644 as flanneld's.
    public func write(_ path: String) throws(OverlayError) {
        if let slash = path.lastIndex(of: "/") { try? System.makeDirectories(String(path[..<slash])) }
        do {
            try System.writeFileAtomically(path, Array(text.utf8), mode: 0o644)
        } catch {
            throw OverlayError(.storeFailure, "cannot write the subnet file \(path)", details: error.description)
        }
    }

    /// Removes the subnet file (the agent's exit with `--release-on-exit`).
    public static func remove(_ path: String) { unlink(path) }
}
