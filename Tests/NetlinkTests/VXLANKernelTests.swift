import Base
import CNI
import Foundation
import Netlink
import TestSupport
import Testing

/// VXLAN programming against the kernel: two "hosts" (namespaces) on an underlay veth, a VTEP in
/// each made and programmed through our netlink code (FDB and permanent neighbours, learning
/// off), traffic across the overlay, and a changed VTEP MAC healed by replace.
@Suite(.serialized, .enabled(if: Privileges.canCreateNetns, "needs root to create network namespaces"))
struct VXLANKernelTests {
    @Test func twoVTEPsProgrammedByReplaceCarryTrafficAndHealAMACChange() throws {
        let a = try TestNetns("vxa"), b = try TestNetns("vxb")
        defer { a.remove(); b.remove() }
        // The underlay: 192.168.77.1 <-> 192.168.77.2.
        sh("ip", "-n", a.name, "link", "add", "under0", "type", "veth", "peer", "name", "under0", "netns", b.name)
        for (ns, ip) in [(a, "192.168.77.1/24"), (b, "192.168.77.2/24")] {
            sh("ip", "-n", ns.name, "addr", "add", ip, "dev", "under0")
            sh("ip", "-n", ns.name, "link", "set", "under0", "up")
        }
        let nlA = try a.open().netlink(), nlB = try b.open().netlink()
        let macA = MACAddress("02:00:0a:50:00:01")!.bytes, macB = MACAddress("02:00:0a:50:00:02")!.bytes
        for (nl, local, mac, overlay) in [(nlA, "192.168.77.1", macA, "10.80.0.1/24"), (nlB, "192.168.77.2", macB, "10.80.0.2/24")] {
            let under = try nl.requireLink("under0").index
            try nl.createVXLAN(name: "vxlan.1", vni: 1, port: 4789, local: IPAddress(local)!, underlay: under, mtu: 1450, mac: mac)
            let vx = try nl.requireLink("vxlan.1")
            try nl.addAddress(vx.index, IPPrefix(overlay)!, noDAD: true)
            try nl.setUp(vx.index)
        }
        let vxA = try nlA.requireLink("vxlan.1").index, vxB = try nlB.requireLink("vxlan.1").index
        let info = try #require(try nlA.vxlanInfo(vxA))
        #expect(info.vni == 1 && info.port == 4789 && info.local == IPAddress("192.168.77.1"))
        #expect(try nlA.vxlanInfo(try nlA.requireLink("under0").index) == nil, "a veth is no VXLAN")
        let details = try #require(a.link("vxlan.1")?["linkinfo"] as? [String: Any])
        #expect((details["info_data"] as? [String: Any])?["learning"] as? Bool == false, "learning off")

        // Without peers, nothing crosses (learning is off: no flooding to an unknown VTEP).
        #expect(sh("ip", "netns", "exec", a.name, "ping", "-c1", "-W1", "10.80.0.2").status != 0)
        try nlA.replaceFDB(vxA, FDBEntry(mac: macB, remote: IPAddress("192.168.77.2")!))
        try nlA.replaceNeighbor(vxA, IPAddress("10.80.0.2")!, mac: macB)
        try nlB.replaceFDB(vxB, FDBEntry(mac: macA, remote: IPAddress("192.168.77.1")!))
        try nlB.replaceNeighbor(vxB, IPAddress("10.80.0.1")!, mac: macA)
        #expect(sh("ip", "netns", "exec", a.name, "ping", "-c1", "-W2", "10.80.0.2").status == 0, "A reaches B over the overlay")
        #expect(try nlA.fdb(vxA).contains(FDBEntry(mac: macB, remote: IPAddress("192.168.77.2")!)))
        let n = try #require(try nlA.neighbors(vxA, family: .v4).first { $0.address == IPAddress("10.80.0.2") })
        #expect(n.mac == macB && n.isPermanent)
        // The same programming again changes nothing (replace is idempotent).
        try nlA.replaceFDB(vxA, FDBEntry(mac: macB, remote: IPAddress("192.168.77.2")!))
        try nlA.replaceNeighbor(vxA, IPAddress("10.80.0.2")!, mac: macB)
        #expect(try nlA.fdb(vxA).filter { $0.mac == macB }.count == 1)

        // B's VTEP gets another MAC (a re-created VTEP, flannel#1788): A's entries are replaced,
        // the stale FDB entry deleted, and traffic flows again.
        let macB2 = MACAddress("02:00:0a:50:00:22")!.bytes
        try nlB.setUp(vxB, false)
        try nlB.setMAC(vxB, macB2)
        try nlB.setUp(vxB)
        // The flap wiped B's own permanent neighbour (the kernel flushes a link's neighbours when
        // it goes down): what an overlay agent must re-program after a VTEP flap.
        #expect(try nlB.neighbors(vxB, family: .v4).allSatisfy { $0.address != IPAddress("10.80.0.1") }, "neighbours flushed by the flap")
        try nlB.replaceFDB(vxB, FDBEntry(mac: macA, remote: IPAddress("192.168.77.1")!))
        try nlB.replaceNeighbor(vxB, IPAddress("10.80.0.1")!, mac: macA)
        try nlA.replaceFDB(vxA, FDBEntry(mac: macB2, remote: IPAddress("192.168.77.2")!))
        try nlA.replaceNeighbor(vxA, IPAddress("10.80.0.2")!, mac: macB2)
        try nlA.deleteFDB(vxA, FDBEntry(mac: macB, remote: IPAddress("192.168.77.2")!))
        #expect(try nlA.fdb(vxA).map(\.mac) == [macB2])
        #expect(try nlA.neighbors(vxA, family: .v4).first { $0.address == IPAddress("10.80.0.2") }?.mac == macB2)
        #expect(sh("ip", "netns", "exec", a.name, "ping", "-c1", "-W2", "10.80.0.2").status == 0, "healed")
        try nlA.deleteNeighbor(vxA, IPAddress("10.80.0.2")!)
        #expect(try nlA.neighbors(vxA, family: .v4).allSatisfy { $0.address != IPAddress("10.80.0.2") || !$0.isPermanent })
    }
}

/// The agent's trigger: link and address changes in a namespace, seen as they happen.
@Suite(.serialized, .enabled(if: Privileges.canCreateNetns, "needs root to create network namespaces"))
struct NetlinkMonitorKernelTests {
    @Test func seesALinkComeUpAnAddressChangeAndALinkDeletedButNotAnotherNamespace() throws {
        let a = try TestNetns("mon"), b = try TestNetns("monb")
        defer { a.remove(); b.remove() }
        sh("ip", "-n", a.name, "link", "add", "m0", "type", "veth", "peer", "name", "m1")
        let monitor = try a.open().perform { try NetlinkMonitor() }
        #expect(!monitor.drain(), "nothing yet")
        #expect(!monitor.wait(milliseconds: 0))
        // A change in another namespace is not this one's.
        sh("ip", "-n", b.name, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
        #expect(!monitor.wait(milliseconds: 200), "another namespace's link")
        for change in [
            ["link", "set", "m0", "up"], ["addr", "add", "192.168.78.1/24", "dev", "m0"], ["addr", "del", "192.168.78.1/24", "dev", "m0"],
            ["link", "del", "m0"],
        ] {
            sh(["ip", "-n", a.name] + change)
            #expect(monitor.wait(milliseconds: 2000), "seen: ip \(change.joined(separator: " "))")
            #expect(monitor.drain())
            #expect(!monitor.drain(), "drained")
        }
    }
}
