import Base
import Netlink
import Overlay
import VXLAN

/// This host's side of the overlay: the VTEP for a lease, the peers, the node file (and
/// flanneld's subnet file).
@MainActor final class HostSide {
    let network: OverlayNetwork
    let node: String
    let vni: UInt32
    let port: UInt16
    /// The underlay interface the options name (nil: the default route's).
    let underlayName: String?
    let fixedMTU: Int?
    let nodeFilePath: String
    /// flanneld's subnet file, written beside the node file when given.
    let subnetFilePath: String?
    /// The node file as last written (it is written again only when it changes).
    private var written: NodeFile?

    init(
        network: OverlayNetwork, node: String, vni: UInt32, port: UInt16, underlay: String?, fixedMTU: Int?, nodeFilePath: String,
        subnetFilePath: String? = nil
    ) {
        self.network = network
        self.node = node
        self.vni = vni
        self.port = port
        self.underlayName = underlay
        self.fixedMTU = fixedMTU
        self.nodeFilePath = nodeFilePath
        self.subnetFilePath = subnetFilePath
    }

    /// The underlay link and its address, as now.
    func underlay() throws -> (link: Link, address: IPAddress) {
        try VTEP.underlay(try NetlinkSocket(), named: underlayName)
    }

    /// The VTEP for `lease` (made again if deleted), the node file, the peers from `leases`.
    /// `underlay`: the one the caller just looked up (else looked up here).
    @discardableResult
    func program(_ lease: NodeLease, leases: [NodeLease], underlay: (link: Link, address: IPAddress)? = nil) throws
        -> [Reconcile.Operation]
    {
        let nl = try NetlinkSocket()
        let (under, local) = try underlay ?? VTEP.underlay(nl, named: underlayName)
        let mtu = fixedMTU ?? under.mtu - (local.family == .v4 ? 50 : 70)
        let index = try VTEP.ensure(nl, vni: vni, port: port, underlay: under.index, lease: lease, mtu: mtu)
        let file = NodeFile(network: network, vni: vni, lease: lease, mtu: mtu)
        if file != written {
            try file.write(nodeFilePath)
            if let subnetFilePath { try SubnetFile(network: network, lease: lease, mtu: mtu).write(subnetFilePath) }
            written = file
        }
        let ops = try VTEP.reconcile(nl, index, node: node, network: network, leases: leases)
        if !ops.isEmpty { Agent.log(ops.map(\.description).joined(separator: "; ")) }
        return ops
    }

    /// The files this host's lease is published in go (the lease was released).
    nonisolated static func removeFiles(node: String, subnet: String?) {
        NodeFile.remove(node)
        if let subnet { SubnetFile.remove(subnet) }
    }
}
