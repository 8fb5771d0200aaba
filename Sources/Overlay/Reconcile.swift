import Base

/// What the kernel must hold for the other hosts of an overlay, and the operations that take what
/// it holds there: the heart of the agent's reconciliation (#8), pure so every failure mode of
/// flannel's list is a unit test (a stale entry after a MAC change, a host that left, a changed
/// underlay address, entries wiped by a flap).
public enum Reconcile {
    /// One operation on the VTEP link; applied in the order `plan` returns them.
    public enum Operation: Sendable, Equatable, CustomStringConvertible {
        case deleteRoute(IPPrefix)
        case deleteNeighbor(IPAddress)
        case deleteFDB(mac: [UInt8], remote: IPAddress)
        case replaceFDB(mac: [UInt8], remote: IPAddress)
        case replaceNeighbor(IPAddress, mac: [UInt8])
        /// `<subnet> via <gateway> dev <vtep> onlink`.
        case replaceRoute(IPPrefix, via: IPAddress)

        public var description: String {
            switch self {
            case .deleteRoute(let p): return "route del \(p)"
            case .deleteNeighbor(let a): return "neigh del \(a)"
            case .deleteFDB(let m, let r): return "fdb del \(MACAddress(bytes: m)) dst \(r)"
            case .replaceFDB(let m, let r): return "fdb replace \(MACAddress(bytes: m)) dst \(r)"
            case .replaceNeighbor(let a, let m): return "neigh replace \(a) lladdr \(MACAddress(bytes: m))"
            case .replaceRoute(let p, let g): return "route replace \(p) via \(g) onlink"
            }
        }
    }

    /// What the kernel holds on the VTEP (the permanent entries only; routes via the VTEP).
    public struct Actual: Sendable, Equatable {
        public var fdb: [(mac: [UInt8], remote: IPAddress)]
        public var neighbors: [(address: IPAddress, mac: [UInt8])]
        public var routes: [(subnet: IPPrefix, via: IPAddress)]
        /// The kernel state read back: FDB entries, neighbours and routes of the VTEP.
        public init(
            fdb: [(mac: [UInt8], remote: IPAddress)] = [], neighbors: [(address: IPAddress, mac: [UInt8])] = [],
            routes: [(subnet: IPPrefix, via: IPAddress)] = []
        ) {
            self.fdb = fdb
            self.neighbors = neighbors
            self.routes = routes
        }
        /// Equal when the three lists hold the same entries in the same order.
        public static func == (a: Actual, b: Actual) -> Bool {
            a.fdb.elementsEqual(b.fdb, by: { $0.mac == $1.mac && $0.remote == $1.remote })
                && a.neighbors.elementsEqual(b.neighbors, by: { $0.address == $1.address && $0.mac == $1.mac })
                && a.routes.elementsEqual(b.routes, by: { $0.subnet == $1.subnet && $0.via == $1.via })
        }
    }

    /// The operations that make `actual` what the leases of the other nodes of `network` want.
    /// Removals first, route before neighbour and FDB (nothing is routed to a peer being taken
    /// apart); additions after, FDB and neighbour before the route (nothing is routed to a peer
    /// not yet reachable). Entries outside the network (not ours) are left alone.
    public static func plan(node: String, network: OverlayNetwork, leases: [NodeLease], actual: Actual) -> [Operation] {
        let peers = leases.filter { $0.node != node && network.network.contains($0.subnet.address) && $0.subnet.family == network.network.family }
        let wantedRoutes = Dictionary(peers.map { ($0.subnet, $0.vtepOverlayAddress) }, uniquingKeysWith: { a, _ in a })
        let wantedNeighbors = Dictionary(peers.map { ($0.vtepOverlayAddress, $0.mac) }, uniquingKeysWith: { a, _ in a })
        let wantedFDB = Dictionary(peers.map { (MACAddress(bytes: $0.mac), $0.vtep) }, uniquingKeysWith: { a, _ in a })
        var ops: [Operation] = []
        // Removals: what no lease wants any more, or wants differently.
        for r in actual.routes where network.network.contains(r.subnet.address) && wantedRoutes[r.subnet] == nil {
            ops.append(.deleteRoute(r.subnet))
        }
        for n in actual.neighbors where network.network.contains(n.address) && wantedNeighbors[n.address] == nil {
            ops.append(.deleteNeighbor(n.address))
        }
        for f in actual.fdb {
            let want = wantedFDB[MACAddress(bytes: f.mac)]
            if want == nil || want != f.remote { ops.append(.deleteFDB(mac: f.mac, remote: f.remote)) }
        }
        // Additions and changes, peer by peer in subnet order (stable output). What the kernel
        // holds is looked up by hash: the cost grows with the peers, not with their square.
        let fdb = Set(actual.fdb.map { Held(mac: $0.mac, address: $0.remote) })
        let neighbors = Set(actual.neighbors.map { Held(mac: $0.mac, address: $0.address) })
        let routes = Set(actual.routes.map { HeldRoute(subnet: $0.subnet, via: $0.via) })
        for p in peers.sorted(by: { ($0.subnet.address, $0.subnet.length) < ($1.subnet.address, $1.subnet.length) }) {
            let mac = p.mac
            if !fdb.contains(Held(mac: mac, address: p.vtep)) { ops.append(.replaceFDB(mac: mac, remote: p.vtep)) }
            if !neighbors.contains(Held(mac: mac, address: p.vtepOverlayAddress)) {
                ops.append(.replaceNeighbor(p.vtepOverlayAddress, mac: mac))
            }
            if !routes.contains(HeldRoute(subnet: p.subnet, via: p.vtepOverlayAddress)) {
                ops.append(.replaceRoute(p.subnet, via: p.vtepOverlayAddress))
            }
        }
        return ops
    }

    /// An FDB entry (MAC, remote) or a neighbour (MAC, address), as a set holds it.
    struct Held: Hashable {
        let mac: [UInt8]
        let address: IPAddress
    }

    /// A route through the VTEP, as a set holds it.
    struct HeldRoute: Hashable {
        let subnet: IPPrefix
        let via: IPAddress
    }
}
