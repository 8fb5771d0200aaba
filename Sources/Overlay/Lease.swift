import Base

#if canImport(Glibc)
    import Glibc
#endif

/// The shared state of a VXLAN overlay (groundwork of the vxlan plugin and cni-overlayd, #8):
/// which host holds which subnet of the overlay network, and where its VTEP is.
public struct NodeLease: Sendable, Equatable {
    /// The host's identity (stable across underlay address changes: a host keeps its subnet).
    public var node: String
    public var subnet: IPPrefix
    /// The underlay address of the host's VTEP.
    public var vtep: IPAddress
    /// The VTEP's MAC, derived from the subnet (a re-created VTEP gets the same one).
    public var mac: [UInt8] { NodeLease.mac(for: subnet) }

    /// A lease of `subnet` to host `node`, whose VTEP has the underlay address `vtep`.
    public init(node: String, subnet: IPPrefix, vtep: IPAddress) {
        self.node = node
        self.subnet = subnet.network
        self.vtep = vtep
    }

    /// The VTEP's overlay address: the subnet's first address (.0), as flannel's vxlan backend.
    public var vtepOverlayAddress: IPAddress { subnet.network.address }

    /// `0e:00:` + the 4 bytes of an IPv4 subnet's network address (locally administered,
    /// unicast); IPv6: `0e:` + the last 5 bytes of the network address.
    public static func mac(for subnet: IPPrefix) -> [UInt8] {
        let b = subnet.network.address.networkBytes
        return b.count == 4 ? [0x0E, 0x00] + b : [0x0E] + b.suffix(5)
    }

    public var json: JSONValue {
        .object(["node": .string(node), "subnet": .string(subnet.description), "vtep": .string(vtep.description)])
    }

    /// Decodes the form `json` writes; nil when a field is missing or malformed.
    public init?(json: JSONValue) {
        guard case .object(let o) = json, let n = o["node"]?.stringValue, let s = o["subnet"]?.stringValue.flatMap(IPPrefix.init),
            let v = o["vtep"]?.stringValue.flatMap(IPAddress.init)
        else { return nil }
        self.init(node: n, subnet: s, vtep: v)
    }
}

/// The overlay network and the size of each host's subnet.
public struct OverlayNetwork: Sendable, Equatable {
    public let network: IPPrefix
    public let subnetLength: Int

    /// Code 7 when the subnets would not fit (a subnet length shorter than the network's, or
    /// longer than leaves room for hosts and the VTEP address).
    public init(network: IPPrefix, subnetLength: Int) throws(OverlayError) {
        let width = network.family.bitWidth
        guard subnetLength > network.length, subnetLength <= width - 2 else {
            throw OverlayError(
                .invalidConfig, "invalid subnetLen \(subnetLength) for network \(network)",
                details: "must be longer than /\(network.length) and at most /\(width - 2)")
        }
        self.network = network.network
        self.subnetLength = subnetLength
    }

    /// How many host subnets the network holds (capped: a lease is searched linearly).
    public var subnetCount: Int { min(1 << min(subnetLength - network.length, 20), 1 << 20) }

    /// The `i`-th host subnet of the network, counting from its first address.
    public func subnet(_ i: Int) -> IPPrefix {
        let step = UInt128(1) << UInt128(network.family.bitWidth - subnetLength)
        let base = network.network.address.bits
        return IPPrefix(address: IPAddress(family: network.family, bits: base + UInt128(i) * step), length: subnetLength)!
    }

    /// This node's lease among `leases`: the one it holds (its VTEP address updated), else the
    /// first subnet no other node holds. Nil when every subnet is taken.
    public func claim(node: String, vtep: IPAddress, among leases: [NodeLease]) -> NodeLease? {
        if var mine = leases.first(where: { $0.node == node && network.contains($0.subnet.address) }) {
            mine.vtep = vtep
            return mine
        }
        let taken = Set(leases.map(\.subnet))
        for i in 0..<subnetCount where !taken.contains(subnet(i)) {
            return NodeLease(node: node, subnet: subnet(i), vtep: vtep)
        }
        return nil
    }
}

/// The file store: one JSON file of leases, changed under a lock by atomic rename, for an
/// overlay whose hosts share a file system (or one host). etcd replaces it past one machine.
public struct FileLeaseStore: Sendable {
    public let path: String
    /// The store in the lease file at `path` (made on the first claim).
    public init(path: String) { self.path = path }

    /// Every lease in the file; none when the file does not exist yet.
    public func leases() throws(OverlayError) -> [NodeLease] {
        guard System.exists(path) else { return [] }
        let bytes: [UInt8]
        do { bytes = try System.readFile(path, limit: 16 << 20) } catch {
            throw OverlayError(.storeFailure, "cannot read the lease file \(path)", details: "\(error)")
        }
        guard case .object(let o)? = try? JSONValue.parse(bytes), case .array(let list)? = o["leases"] else {
            throw OverlayError(.storeFailure, "the lease file \(path) is not a lease list")
        }
        return list.compactMap(NodeLease.init(json:))
    }

    /// Claims (or keeps, with the new VTEP address) `node`'s subnet; atomic with respect to
    /// other claims through the lock. Code 106 when the network has no free subnet.
    public func claim(_ net: OverlayNetwork, node: String, vtep: IPAddress) throws(OverlayError) -> NodeLease {
        try claimListing(net, node: node, vtep: vtep).lease
    }

    /// ``claim(_:node:vtep:)``, and every lease of the store as the claim left it (one read of
    /// the file, not two: it is what a store of thousands of hosts costs).
    public func claimListing(_ net: OverlayNetwork, node: String, vtep: IPAddress) throws(OverlayError) -> (lease: NodeLease, all: [NodeLease]) {
        try locked { leases throws(OverlayError) in
            guard let lease = net.claim(node: node, vtep: vtep, among: leases) else {
                throw OverlayError(.addressUnavailable, "no free /\(net.subnetLength) left in \(net.network)")
            }
            leases.removeAll { $0.node == node && net.network.contains($0.subnet.address) }
            leases.append(lease)
            return (lease, leases)
        }
    }

    /// Gives `node`'s subnets back.
    public func release(node: String) throws(OverlayError) {
        try locked { leases throws(OverlayError) in leases.removeAll { $0.node == node } }
    }

    func locked<T>(_ change: (inout [NodeLease]) throws(OverlayError) -> T) throws(OverlayError) -> T {
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OverlayError(.storeFailure, "cannot open \(lockPath)", details: String(cString: strerror(errno))) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw OverlayError(.storeFailure, "cannot lock \(lockPath)", details: String(cString: strerror(errno))) }
        }
        var leases = try leases()
        let before = leases
        let out = try change(&leases)
        if leases != before {
            let text = JSONValue.object(["leases": .array(leases.map(\.json))]).serialized() + "\n"
            do { try System.writeFileAtomically(path, Array(text.utf8), mode: 0o644, temporary: path + ".tmp") } catch {
                throw OverlayError(.storeFailure, "cannot write the lease file \(path)", details: "\(error)")
            }
        }
        return out
    }
}

/// What the agent tells the plugin on this host (`store: {"type": "etcd"}`): the lease it holds,
/// the VTEP's MTU, the overlay. Written atomically by cni-overlayd after each claim and whenever
/// the lease changes; the plugin reads it and never talks to etcd itself.
public struct NodeFile: Sendable, Equatable {
    public var network: OverlayNetwork
    public var vni: UInt32
    public var lease: NodeLease
    public var mtu: Int

    /// The node file's content: the host's lease in `network` with the VNI and MTU the agent programmed.
    public init(network: OverlayNetwork, vni: UInt32, lease: NodeLease, mtu: Int) {
        self.network = network
        self.vni = vni
        self.lease = lease
        self.mtu = mtu
    }

    /// `/run/swift-cni/overlay/vxlan.<vni>.json`.
    public static func defaultPath(vni: UInt32) -> String { "/run/swift-cni/overlay/vxlan.\(vni).json" }

    public var json: JSONValue {
        .object([
            "network": .string(network.network.description), "subnetLen": .int(network.subnetLength), "vni": .int(Int(vni)),
            "node": .string(lease.node), "subnet": .string(lease.subnet.description), "vtep": .string(lease.vtep.description),
            "mtu": .int(mtu),
        ])
    }

    /// Decodes the form `json` writes; nil when a field is missing or malformed.
    public init?(json: JSONValue) {
        guard case .object(let o) = json, let lease = NodeLease(json: json),
            let n = o["network"]?.stringValue.flatMap(IPPrefix.init), case .number(let len)? = o["subnetLen"],
            case .number(let v)? = o["vni"], case .number(let m)? = o["mtu"],
            let l = len.intValue, let vi = v.intValue.flatMap(UInt32.init(exactly:)), let mi = m.intValue,
            let net = try? OverlayNetwork(network: n, subnetLength: l)
        else { return nil }
        self.init(network: net, vni: vi, lease: lease, mtu: mi)
    }

    /// Nil when there is no file yet; code 11 (try again later) when it cannot be read.
    public static func read(_ path: String) throws(OverlayError) -> NodeFile? {
        guard System.exists(path) else { return nil }
        let bytes: [UInt8]
        do { bytes = try System.readFile(path, limit: 1 << 20) } catch {
            throw OverlayError(.tryAgainLater, "cannot read the node file \(path)", details: "\(error)")
        }
        guard let j = try? JSONValue.parse(bytes), let f = NodeFile(json: j) else {
            throw OverlayError(.tryAgainLater, "the node file \(path) is not a node file")
        }
        return f
    }

    /// Writes the file atomically (a temporary file renamed over it), making its directory.
    public func write(_ path: String) throws(OverlayError) {
        if let slash = path.lastIndex(of: "/") { try? System.makeDirectories(String(path[..<slash])) }
        do {
            try System.writeFileAtomically(path, Array((json.serialized() + "\n").utf8), mode: 0o644, temporary: path + ".tmp")
        } catch {
            throw OverlayError(.storeFailure, "cannot write the node file \(path)", details: "\(error)")
        }
    }

    /// Removes the node file (the agent's exit with `--release-on-exit`).
    public static func remove(_ path: String) { unlink(path) }
}
