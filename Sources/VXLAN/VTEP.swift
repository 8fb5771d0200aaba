import Base
import Netlink
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

/// A host's VTEP and its programming: made (or re-made) from the host's lease, read back as a
/// `Reconcile.Actual`, and changed by applying a plan. What the agent runs on every change of the
/// leases and on its periodic resync (#8).
public enum VTEP {
    /// The underlay link (`name`, or the one of the default route) and its first global address
    /// (IPv4 first): where the VTEP sends from. An invalid configuration naming what is missing.
    public static func underlay(_ nl: NetlinkSocket, named name: String?) throws(OverlayError) -> (link: Link, address: IPAddress) {
        do {
            let link: Link
            if let name {
                guard let l = try nl.link(named: name) else {
                    throw OverlayError(.invalidConfig, "invalid underlay \"\(name)\"", details: "no such interface")
                }
                link = l
            } else {
                // A route lookup only (no traffic): the interface of the default route.
                guard let i = try nl.routeInterface(to: IPAddress("192.0.2.1")!), let l = try nl.link(index: i) else {
                    throw OverlayError(.invalidConfig, "no underlay: no \"underlay\" given and no default route")
                }
                link = l
            }
            guard
                let a = try nl.addresses(link.index, family: .v4).first(where: { $0.scope == 0 })?.prefix.address
                    ?? (try nl.addresses(link.index, family: .v6).first(where: { $0.scope == 0 })?.prefix.address)
            else {
                throw OverlayError(.invalidConfig, "underlay \(link.name) has no global address for the VTEP")
            }
            return (link, a)
        } catch let e as OverlayError {
            throw e
        } catch {
            throw OverlayError(.kernelFailure, "cannot look at the underlay", details: "\(error)")
        }
    }

    /// `vxlan.<vni>`.
    public static func name(vni: UInt32) -> String { "vxlan.\(vni)" }

    /// The VTEP for `lease`: created when missing (learning off, the lease's MAC, its `.0/32`),
    /// re-created when its VNI, port or local address differ; brought up. Returns its index.
    public static func ensure(
        _ nl: NetlinkSocket, vni: UInt32, port: UInt16, underlay: Int32?, lease: NodeLease, mtu: Int?
    ) throws -> Int32 {
        let name = name(vni: vni)
        if let l = try nl.link(named: name) {
            let info = try nl.vxlanInfo(l.index)
            if let info, info.vni == vni, info.port == port, info.local == lease.vtep {
                if l.mac.bytes != lease.mac {
                    try nl.setUp(l.index, false)
                    try nl.setMAC(l.index, lease.mac)
                }
                try ensureAddress(nl, l.index, lease)
                try nl.setUp(l.index)
                return l.index
            }
            try nl.deleteLink(l.index)  // another VNI, port or local address: made again
        }
        try nl.createVXLAN(name: name, vni: vni, port: port, local: lease.vtep, underlay: underlay, mtu: mtu, mac: lease.mac)
        let l = try nl.requireLink(name)
        try ensureAddress(nl, l.index, lease)
        try nl.setUp(l.index)
        return l.index
    }

    static func ensureAddress(_ nl: NetlinkSocket, _ index: Int32, _ lease: NodeLease) throws {
        let want = IPPrefix(address: lease.vtepOverlayAddress, length: lease.subnet.family.bitWidth)!
        let have = try nl.addresses(index, family: lease.subnet.family).map(\.prefix)
        for p in have where p != want { try nl.deleteAddress(index, p) }
        if !have.contains(want) { try nl.addAddress(index, want, noDAD: true) }
    }

    /// What the VTEP holds now: FDB entries, permanent neighbours, routes through it.
    public static func actual(_ nl: NetlinkSocket, _ index: Int32, family: IPFamily) throws -> Reconcile.Actual {
        Reconcile.Actual(
            fdb: try nl.fdb(index).map { ($0.mac, $0.remote) },
            neighbors: try nl.neighbors(index, family: family).filter(\.isPermanent).map { ($0.address, $0.mac) },
            routes: try nl.routes(family: family).compactMap { r in
                guard r.outputIndex == index, let d = r.destination, let g = r.gateway else { return nil }
                return (d, g)
            })
    }

    /// Applies `ops` in order (a missing entry to delete is fine: another pass took it).
    public static func apply(_ nl: NetlinkSocket, _ index: Int32, _ ops: [Reconcile.Operation]) throws {
        for op in ops {
            do {
                switch op {
                case .deleteRoute(let p): try nl.deleteRoute(KernelRoute(destination: p, outputIndex: index))
                case .deleteNeighbor(let a): try nl.deleteNeighbor(index, a)
                case .deleteFDB(let m, let r): try nl.deleteFDB(index, FDBEntry(mac: m, remote: r))
                case .replaceFDB(let m, let r): try nl.replaceFDB(index, FDBEntry(mac: m, remote: r))
                case .replaceNeighbor(let a, let m): try nl.replaceNeighbor(index, a, mac: m)
                case .replaceRoute(let p, let g): try nl.replaceRoute(KernelRoute(destination: p, gateway: g, outputIndex: index, onLink: true))
                }
            } catch {
                guard error.errno == ENOENT || error.errno == ESRCH else { throw error }
            }
        }
    }

    /// One reconciliation: read, plan, apply. Returns what was done.
    @discardableResult
    public static func reconcile(_ nl: NetlinkSocket, _ index: Int32, node: String, network: OverlayNetwork, leases: [NodeLease]) throws
        -> [Reconcile.Operation]
    {
        let ops = Reconcile.plan(node: node, network: network, leases: leases, actual: try actual(nl, index, family: network.network.family))
        try apply(nl, index, ops)
        return ops
    }
}
