import Base
import CNI
import Foundation
import Netlink
import Overlay
import VXLAN
import TestSupport
import Testing

/// Three "hosts" (namespaces) on an underlay bridge (a namespace of its own), a shared file store:
/// each claims a subnet, makes its VTEP and reconciles; VTEPs reach each other across hosts; a
/// host that leaves disappears from the others' tables; a re-created VTEP keeps its MAC and is
/// re-programmed; an underlay address change is healed on the others by replace.
@Suite(.serialized, .enabled(if: TestSupport.canCreateNetns(), "needs root to create network namespaces"))
struct OverlayKernelTests {
    final class Hosts {
        let id = "\(getpid())-\(Int.random(in: 0...99999))"
        var underlay: String { "swcni-ovu-\(id)" }
        var names: [String] { (1...3).map { "swcni-ov\($0)-\(id)" } }
        let dir = NSTemporaryDirectory() + "swift-cni-ovk-\(getpid())-\(Int.random(in: 0...99999))"
        init() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            sh("ip", "netns", "add", underlay)
            sh("ip", "-n", underlay, "link", "add", "ubr0", "type", "bridge")
            sh("ip", "-n", underlay, "link", "set", "ubr0", "up")
            for (i, n) in names.enumerated() {
                sh("ip", "netns", "add", n)
                sh("ip", "-n", n, "link", "set", "lo", "up")
                sh("ip", "-n", underlay, "link", "add", "h\(i + 1)", "type", "veth", "peer", "name", "eth0", "netns", n)
                sh("ip", "-n", underlay, "link", "set", "h\(i + 1)", "master", "ubr0", "up")
                sh("ip", "-n", n, "addr", "add", "192.168.70.\(i + 1)/24", "dev", "eth0")
                sh("ip", "-n", n, "link", "set", "eth0", "up")
            }
        }
        deinit {
            for n in names { sh("ip", "netns", "del", n) }
            sh("ip", "netns", "del", underlay)
            try? FileManager.default.removeItem(atPath: dir)
        }
        func nl(_ i: Int) throws -> NetlinkSocket { try NetworkNamespace(path: "/run/netns/\(names[i])").netlink() }
        func ping(_ from: Int, _ to: String) -> Bool { sh("ip", "netns", "exec", names[from], "ping", "-c1", "-W2", to).status == 0 }
    }

    @Test func threeHostsJoinLeaveAndHeal() throws {
        let h = try Hosts()
        let net = try OverlayNetwork(network: IPPrefix("10.246.0.0/16")!, subnetLength: 24)
        let store = FileLeaseStore(path: h.dir + "/leases.json")
        var index: [Int32] = []
        for i in 0..<3 {
            let nl = try h.nl(i)
            let lease = try store.claim(net, node: "host\(i + 1)", vtep: IPAddress("192.168.70.\(i + 1)")!)
            index.append(try VTEP.ensure(nl, vni: 1, port: 4789, underlay: try nl.requireLink("eth0").index, lease: lease, mtu: 1450))
        }
        func reconcileAll() throws {
            for i in 0..<3 { try VTEP.reconcile(try h.nl(i), index[i], node: "host\(i + 1)", network: net, leases: try store.leases()) }
        }
        try reconcileAll()
        let leases = try store.leases()
        let vtepAddr = { (node: String) in leases.first { $0.node == node }!.vtepOverlayAddress.description }
        #expect(h.ping(0, vtepAddr("host2")) && h.ping(0, vtepAddr("host3")) && h.ping(1, vtepAddr("host3")), "every pair across hosts")
        #expect(try VTEP.reconcile(try h.nl(0), index[0], node: "host1", network: net, leases: try store.leases()).isEmpty, "converged")

        // host3 leaves: its lease released; the others' reconcile removes it from FDB, neighbours, routes.
        try store.release(node: "host3")
        try VTEP.reconcile(try h.nl(0), index[0], node: "host1", network: net, leases: try store.leases())
        let actual = try VTEP.actual(try h.nl(0), index[0], family: .v4)
        let gone = leases.first { $0.node == "host3" }!
        #expect(
            !actual.fdb.contains { $0.mac == gone.mac } && !actual.neighbors.contains { $0.address == gone.vtepOverlayAddress }
                && !actual.routes.contains { $0.subnet == gone.subnet })
        #expect(!h.ping(0, gone.vtepOverlayAddress.description))

        // host2's VTEP is deleted (an operator, a flap): ensure makes it again with the same MAC,
        // its own reconcile re-programs its peers, host1 needs nothing new.
        let nl2 = try h.nl(1)
        try nl2.deleteLink(index[1])
        let lease2 = try store.claim(net, node: "host2", vtep: IPAddress("192.168.70.2")!)
        index[1] = try VTEP.ensure(nl2, vni: 1, port: 4789, underlay: try nl2.requireLink("eth0").index, lease: lease2, mtu: 1450)
        #expect(try nl2.link(index: index[1])?.mac == MACAddress(bytes: lease2.mac))
        #expect(!(try VTEP.reconcile(nl2, index[1], node: "host2", network: net, leases: try store.leases())).isEmpty)
        #expect(h.ping(0, lease2.vtepOverlayAddress.description), "healed after the re-create")

        // host2's underlay address changes: it keeps its subnet; host1 replaces the FDB entry.
        sh("ip", "-n", h.names[1], "addr", "flush", "dev", "eth0")
        sh("ip", "-n", h.names[1], "addr", "add", "192.168.70.22/24", "dev", "eth0")
        let moved = try store.claim(net, node: "host2", vtep: IPAddress("192.168.70.22")!)
        #expect(moved.subnet == lease2.subnet, "same subnet after the underlay change")
        index[1] = try VTEP.ensure(nl2, vni: 1, port: 4789, underlay: try nl2.requireLink("eth0").index, lease: moved, mtu: 1450)
        try reconcileAll()
        #expect(try VTEP.actual(try h.nl(0), index[0], family: .v4).fdb.contains { $0.remote == IPAddress("192.168.70.22") })
        #expect(h.ping(0, moved.vtepOverlayAddress.description), "healed after the underlay change")
    }
}
