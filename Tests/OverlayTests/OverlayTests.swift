import Base
import CNI
import Foundation
import Overlay
import Testing

let net = try! OverlayNetwork(network: IPPrefix("10.244.0.0/16")!, subnetLength: 24)
func lease(_ node: String, _ subnet: String, _ vtep: String) -> NodeLease { NodeLease(node: node, subnet: IPPrefix(subnet)!, vtep: IPAddress(vtep)!) }

@Suite struct LeaseTests {
    @Test func claimKeepsANodesSubnetAcrossAnUnderlayChangeAndSkipsTakenOnes() throws {
        let leases = [lease("a", "10.244.0.0/24", "192.168.1.1"), lease("b", "10.244.1.0/24", "192.168.1.2")]
        #expect(net.claim(node: "c", vtep: IPAddress("192.168.1.3")!, among: leases) == lease("c", "10.244.2.0/24", "192.168.1.3"))
        // Host b's underlay address changes: same subnet, new VTEP address (flannel gave a new subnet).
        #expect(net.claim(node: "b", vtep: IPAddress("192.168.9.9")!, among: leases) == lease("b", "10.244.1.0/24", "192.168.9.9"))
        let full = (0..<4).map { lease("n\($0)", "10.9.0.\($0 * 64)/26", "192.168.0.\($0)") }
        let small = try OverlayNetwork(network: IPPrefix("10.9.0.0/24")!, subnetLength: 26)
        #expect(small.claim(node: "x", vtep: IPAddress("192.168.0.9")!, among: full) == nil, "every subnet taken")
    }

    @Test func macIsDerivedFromTheSubnetSoARecreatedVTEPKeepsIt() {
        #expect(lease("a", "10.244.3.0/24", "192.168.1.1").mac == [0x0E, 0x00, 10, 244, 3, 0])
        #expect(lease("a", "10.244.3.0/24", "192.168.1.1").vtepOverlayAddress == IPAddress("10.244.3.0"))
    }

    @Test func theSubnetFileIsFlanneldsFormat() throws {
        let file = SubnetFile(network: net, lease: lease("a", "10.244.3.0/24", "192.168.1.1"), mtu: 1450)
        #expect(file.text == "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n")
        let v6 = try OverlayNetwork(network: IPPrefix("fd00:244::/48")!, subnetLength: 64)
        #expect(
            SubnetFile(network: v6, lease: lease("a", "fd00:244:0:3::/64", "fd00::1"), mtu: 1430).text.hasPrefix(
                "FLANNEL_IPV6_NETWORK=fd00:244::/48\nFLANNEL_IPV6_SUBNET=fd00:244:0:3::1/64\n"))
    }

    @Test func subnetLengthsThatDoNotFitAreCode7() {
        for len in [16, 12, 31] {
            let error = #expect(throws: OverlayError.self) { _ = try OverlayNetwork(network: IPPrefix("10.244.0.0/16")!, subnetLength: len) }
            #expect(error?.kind == .invalidConfig && error?.msg.contains("subnetLen \(len)") == true, "\(String(describing: error))")
        }
    }

    @Test func fileStoreClaimsUnderALockAndReleases() throws {
        let dir = NSTemporaryDirectory() + "swift-cni-overlay-\(getpid())-\(Int.random(in: 0...99999))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = FileLeaseStore(path: dir + "/leases.json")
        // Concurrent claims from many "hosts": distinct subnets, no lost update.
        DispatchQueue.concurrentPerform(iterations: 16) { i in _ = try? store.claim(net, node: "h\(i)", vtep: IPAddress("192.168.0.\(i + 1)")!) }
        let all = try store.leases()
        #expect(all.count == 16 && Set(all.map(\.subnet)).count == 16)
        let again = try store.claim(net, node: "h3", vtep: IPAddress("192.168.50.3")!)
        #expect(again.subnet == all.first { $0.node == "h3" }!.subnet && again.vtep == IPAddress("192.168.50.3"))
        try store.release(node: "h3")
        #expect(try store.leases().count == 15)
    }
}

@Suite struct ReconcileTests {
    let leases = [lease("self", "10.244.0.0/24", "192.168.1.1"), lease("b", "10.244.1.0/24", "192.168.1.2"), lease("c", "10.244.2.0/24", "192.168.1.3")]
    func programmed(_ ls: [NodeLease]) -> Reconcile.Actual {
        let peers = ls.filter { $0.node != "self" }
        return Reconcile.Actual(
            fdb: peers.map { ($0.mac, $0.vtep) }, neighbors: peers.map { ($0.vtepOverlayAddress, $0.mac) },
            routes: peers.map { ($0.subnet, $0.vtepOverlayAddress) })
    }

    @Test func anEmptyVTEPGetsEveryPeerRouteLast() {
        let ops = Reconcile.plan(node: "self", network: net, leases: leases, actual: .init())
        #expect(
            ops.map(\.description) == [
                "fdb replace 0e:00:0a:f4:01:00 dst 192.168.1.2", "neigh replace 10.244.1.0 lladdr 0e:00:0a:f4:01:00",
                "route replace 10.244.1.0/24 via 10.244.1.0 onlink",
                "fdb replace 0e:00:0a:f4:02:00 dst 192.168.1.3", "neigh replace 10.244.2.0 lladdr 0e:00:0a:f4:02:00",
                "route replace 10.244.2.0/24 via 10.244.2.0 onlink",
            ])
        #expect(Reconcile.plan(node: "self", network: net, leases: leases, actual: programmed(leases)).isEmpty, "converged: nothing to do")
    }

    @Test func aHostThatLeftIsRemovedRouteFirst() {
        let ops = Reconcile.plan(node: "self", network: net, leases: leases.filter { $0.node != "c" }, actual: programmed(leases))
        #expect(ops.map(\.description) == ["route del 10.244.2.0/24", "neigh del 10.244.2.0", "fdb del 0e:00:0a:f4:02:00 dst 192.168.1.3"])
    }

    @Test func aChangedUnderlayAddressReplacesTheFDBEntryOnly() {
        var moved = leases
        moved[1].vtep = IPAddress("192.168.9.2")!
        let ops = Reconcile.plan(node: "self", network: net, leases: moved, actual: programmed(leases))
        #expect(ops.map(\.description) == ["fdb del 0e:00:0a:f4:01:00 dst 192.168.1.2", "fdb replace 0e:00:0a:f4:01:00 dst 192.168.9.2"])
    }

    @Test func aStaleMACIsDeletedNotLeftBehind() {
        // The kernel still has an entry for a MAC no lease has (flannel#1788: a VTEP re-created
        // with another MAC, the old entry kept).
        var actual = programmed(leases)
        actual.fdb.append((mac: [0x0E, 0, 1, 2, 3, 4], remote: IPAddress("192.168.1.2")!))
        actual.neighbors[0].mac = [0x0E, 0, 1, 2, 3, 4]
        let ops = Reconcile.plan(node: "self", network: net, leases: leases, actual: actual)
        #expect(ops.map(\.description) == ["fdb del 0e:00:01:02:03:04 dst 192.168.1.2", "neigh replace 10.244.1.0 lladdr 0e:00:0a:f4:01:00"])
    }

    /// A cluster-sized store: converged, nothing to do; one host's underlay address changed,
    /// that host's FDB entry alone (the kernel's state is looked up by hash, not scanned).
    @Test func fiveThousandPeers() throws {
        let big = try OverlayNetwork(network: IPPrefix("10.0.0.0/8")!, subnetLength: 24)
        let all =
            [lease("self", "10.0.0.0/24", "192.168.1.1")]
            + (1...5000).map { lease("p\($0)", "10.\($0 / 256).\($0 % 256).0/24", "192.168.\(2 + $0 / 250).\($0 % 250 + 1)") }
        #expect(Reconcile.plan(node: "self", network: big, leases: all, actual: programmed(all)).isEmpty)
        var moved = all
        moved[4321].vtep = IPAddress("192.168.200.9")!
        let ops = Reconcile.plan(node: "self", network: big, leases: moved, actual: programmed(all))
        #expect(
            ops.map(\.description) == [
                "fdb del \(MACAddress(bytes: all[4321].mac)) dst \(all[4321].vtep)", "fdb replace \(MACAddress(bytes: all[4321].mac)) dst 192.168.200.9",
            ])
    }

    @Test func entriesWipedByAFlapAreProgrammedAgainAndForeignOnesLeftAlone() {
        var actual = Reconcile.Actual()
        actual.routes = [(IPPrefix("192.168.50.0/24")!, IPAddress("192.168.1.254")!)]  // not the overlay's
        let ops = Reconcile.plan(node: "self", network: net, leases: leases, actual: actual)
        #expect(ops.count == 6 && !ops.contains { if case .deleteRoute = $0 { return true } else { return false } })
    }
}
