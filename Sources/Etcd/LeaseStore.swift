import Base
import Overlay

/// The overlay's leases in etcd: one key per claimed subnet,
/// `<prefix>/subnets/<network address>-<length>` → the `NodeLease` JSON, attached to the holder's
/// etcd lease (TTL, kept alive by cni-overlayd): a host that stops renewing, or revokes on exit,
/// loses its key and every other host sees it go. A subnet is claimed by a transaction that only
/// puts when the key does not exist; a host that holds one keeps it (its VTEP address replaced by
/// a transaction on the key's revision).
public actor EtcdLeaseStore {
    public nonisolated let client: EtcdClient
    public nonisolated let network: OverlayNetwork
    public nonisolated let node: String
    public nonisolated let ttl: Int
    /// `<prefix>/subnets/` as bytes: the range watched and listed.
    public nonisolated let subnetsPrefix: [UInt8]
    public private(set) var leaseID: Int64?

    /// The leases of `network` under `prefix`, claimed for `node` with a lease TTL of `ttl` seconds.
    public init(client: EtcdClient, prefix: String, network: OverlayNetwork, node: String, ttl: Int) {
        self.client = client
        self.network = network
        self.node = node
        self.ttl = ttl
        let p = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        subnetsPrefix = Array("\(p)/subnets/".utf8)
    }

    /// The etcd key of `subnet`'s lease: `<prefix>/subnets/<address>-<length>`, as flannel names it.
    public nonisolated func key(_ subnet: IPPrefix) -> [UInt8] {
        subnetsPrefix + Array("\(subnet.network.address)-\(subnet.length)".utf8)
    }

    /// The lease a key holds; nil for a value that is no lease of this overlay (outside the
    /// network, another subnet length, not a lease).
    public nonisolated func lease(_ kv: EtcdKeyValue) -> NodeLease? {
        guard let j = try? JSONValue.parse(kv.value), let l = NodeLease(json: j), network.network.contains(l.subnet.address),
            l.subnet.length == network.subnetLength
        else { return nil }
        return l
    }

    /// Every lease now, and the revision of the read (where a watch starts: revision + 1).
    public func list() async throws -> (leases: [NodeLease], revision: Int64) {
        let (kvs, rev) = try await client.range(prefix: subnetsPrefix)
        return (kvs.compactMap(lease), rev)
    }

    /// This node's lease: the subnet it holds (VTEP address updated), else `preferred` when free
    /// (the node file's subnet after a restart past the TTL), else the first free subnet. Under
    /// its own etcd lease (granted when there is none). Code 106 when no subnet is free, 105 when
    /// etcd fails or the claim loses 32 races in a row.
    public func claim(vtep: IPAddress, preferred: IPPrefix? = nil) async throws(OverlayError) -> NodeLease {
        do {
            if leaseID == nil { leaseID = try await client.grant(ttl: ttl) }
            for _ in 0..<32 {
                let (kvs, _) = try await client.range(prefix: subnetsPrefix)
                let entries = kvs.compactMap { kv in self.lease(kv).map { (kv: kv, lease: $0) } }
                if let mine = entries.first(where: { $0.lease.node == node }) {
                    // Duplicates of this node (an interrupted earlier claim) go; the first stays.
                    for extra in entries.dropFirst().filter({ $0.lease.node == node && $0.kv.key != mine.kv.key }) {
                        _ = try await client.deleteIf([.modRevision(extra.kv.key, extra.kv.modRevision)], key: extra.kv.key)
                    }
                    var lease = mine.lease
                    lease.vtep = vtep
                    if lease == mine.lease, mine.kv.lease == leaseID { return lease }
                    if try await client.putIf(
                        [.modRevision(mine.kv.key, mine.kv.modRevision)], key: mine.kv.key, value: Array(lease.json.serialized().utf8),
                        lease: leaseID)
                    {
                        return lease
                    }
                    continue
                }
                let taken = Set(entries.map(\.lease.subnet))
                let subnet: IPPrefix
                if let p = preferred?.network, p.length == network.subnetLength, network.network.contains(p.address), !taken.contains(p) {
                    subnet = p
                } else {
                    guard let l = network.claim(node: node, vtep: vtep, among: entries.map(\.lease)) else {
                        throw OverlayError(.addressUnavailable, "no free /\(network.subnetLength) left in \(network.network)")
                    }
                    subnet = l.subnet
                }
                let lease = NodeLease(node: node, subnet: subnet, vtep: vtep)
                let k = key(subnet)
                if try await client.putIf([.absent(k)], key: k, value: Array(lease.json.serialized().utf8), lease: leaseID) {
                    return lease
                }
            }
            throw OverlayError(.storeFailure, "cannot claim a subnet in etcd", details: "32 claims lost to other hosts in a row")
        } catch let e as OverlayError {
            throw e
        } catch {
            throw OverlayError(.storeFailure, "etcd: cannot claim a subnet of \(network.network)", details: "\(error)")
        }
    }

    /// Renews the etcd lease. False when it is gone (expired during a partition, or revoked): the
    /// caller claims again, which grants a new one.
    public func keepAlive() async throws -> Bool {
        guard let id = leaseID else { return false }
        if try await client.keepAlive(id) > 0 { return true }
        leaseID = nil
        return false
    }

    /// Gives the subnet back: the etcd lease is revoked, so its key goes at once.
    public func release() async throws {
        guard let id = leaseID else { return }
        try await client.revoke(id)
        leaseID = nil
    }
}
