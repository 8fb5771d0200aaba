import Base
import CNI
import DummyPlugin
import Foundation
import TestSupport
import Testing
import VlanPlugin

let hasVlan = kernelHas("vlan")
let hasDummy = kernelHas("dummy")

@Suite(.serialized, .enabled(if: hasVlan, "this kernel has no 802.1Q VLAN driver (Scripts/kernel-vm-test VlanKernelTests runs these on Debian's stock kernel)"))
struct VlanKernelTests {
    @Test(arguments: CNIVersion.allSupported)
    func addCheckDelEveryVersion(_ v: CNIVersion) throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ctr = bed.container("a")
        let conf = bed.conf("vlan", v, #","master":"master0","vlanId":100,"mtu":1300"#)
        let add = try bed.run(VlanPlugin(), "ADD", ctr, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        let info = linkInfo(ctr)
        #expect(info.kind == "vlan" && info.mtu == 1300 && info.up)
        #expect(info.data["id"] as? Int == 100 && info.data["protocol"] as? String == "802.1Q", "\(info.data)")
        #expect(ipJSON(bed.host, "link", "show", "type", "vlan").isEmpty, "nothing on the host")
        if v >= .v0_4_0 {
            let check = try bed.run(VlanPlugin(), "CHECK", ctr, conf: withPrev(conf, add.stdout))
            #expect(check.exitCode == 0, "\(msg(check))")
            let other = bed.conf("vlan", v, #","master":"master0","vlanId":101,"mtu":1300"#)
            let wrong = try bed.run(VlanPlugin(), "CHECK", ctr, conf: withPrev(other, add.stdout))
            #expect(code(wrong) == 108 && msg(wrong).contains("VLAN ID 100, not 101"), "\(msg(wrong))")
        }
        #expect(try bed.run(VlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0)
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").isEmpty)
        #expect(bed.store() == ["last_reserved_ip.0", "lock"])
        #expect(try bed.run(VlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "idempotent")
        sh("ip", "netns", "del", ctr)
        #expect(try bed.run(VlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "netns gone")
    }

    /// Tagged frames: the container on VLAN 100 reaches the switch side's VLAN 100 sub-interface
    /// (wire0.100 in the host), not its untagged address.
    @Test func framesAreTagged() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ctr = bed.container("t")
        sh("ip", "-n", bed.host, "link", "add", "link", "wire0", "name", "wire0.100", "type", "vlan", "id", "100")
        sh("ip", "-n", bed.host, "addr", "add", "10.86.0.254/24", "dev", "wire0.100")
        sh("ip", "-n", bed.host, "link", "set", "wire0.100", "up")
        let conf = bed.conf("vlan", .v1_1_0, #","master":"master0","vlanId":100"#)
        #expect(try bed.run(VlanPlugin(), "ADD", ctr, conf: conf).exitCode == 0)
        #expect(sh("ip", "netns", "exec", ctr, "ping", "-c1", "-W2", "10.86.0.254").status == 0, "tagged 100 both ways")
        sh("ip", "-n", bed.host, "addr", "del", "10.86.0.254/24", "dev", "wire0.100")
        sh("ip", "-n", bed.host, "addr", "add", "10.86.0.254/24", "dev", "wire0")
        #expect(sh("ip", "netns", "exec", ctr, "ping", "-c1", "-W1", "10.86.0.254").status != 0, "untagged is another network")
    }

    /// The same configuration through the reference's vlan (Debian's 1.1.1) and ours, as data.
    @Test func laidOutAsTheReference() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ours = bed.container("o"), ref = bed.container("r")
        let conf = { (id: Int) in
            bed.conf("vlan", .v1_0_0, #","master":"master0","vlanId":\#(id),"mtu":1280"#, dual: true, routes: #","routes":[{"dst":"0.0.0.0/0"}]"#)
        }
        let add = try bed.run(VlanPlugin(), "ADD", ours, conf: conf(200))
        #expect(add.exitCode == 0, "\(msg(add))")
        let (rc, out) = try bed.reference("vlan", "ADD", ref, conf: conf(201))
        #expect(rc == 0, "reference: \(out)")
        #expect(
            layout(ours).map { $0.replacingOccurrences(of: "id=200", with: "id=N") } == layout(ref).map { $0.replacingOccurrences(of: "id=201", with: "id=N") })
        #expect(try bed.reference("vlan", "DEL", ref, conf: conf(201)).0 == 0)
        #expect(try bed.run(VlanPlugin(), "DEL", ours, conf: conf(200)).exitCode == 0)
    }

    /// One sub-interface per master and VLAN ID: a second container on the same ID is refused
    /// with 107 naming it, its IPAM released; the first keeps its link.
    @Test func aVlanIdInUseIsAConflict() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let a = bed.container("a"), b = bed.container("b")
        let conf = bed.conf("vlan", .v1_1_0, #","master":"master0","vlanId":300"#)
        #expect(try bed.run(VlanPlugin(), "ADD", a, cid: "a", conf: conf).exitCode == 0)
        let second = try bed.run(VlanPlugin(), "ADD", b, cid: "b", conf: conf)
        #expect(code(second) == 107 && msg(second).contains("VLAN 300 of master \"master0\" is in use"), "\(msg(second))")
        #expect(ipJSON(b, "link", "show").count == 1, "nothing in the second container")
        #expect(bed.store().filter { $0.hasPrefix("10.") } == ["10.86.0.2"], "the second address was released")
        #expect(linkInfo(a).kind == "vlan")
        // In the master's own namespace (linkInContainer), the holder is named before IPAM.
        sh("ip", "-n", bed.host, "link", "add", "link", "master0", "name", "master0.400", "type", "vlan", "id", "400")
        let named = try bed.run(VlanPlugin(), "ADD", b, cid: "b", conf: bed.conf("vlan", .v1_1_0, #","master":"master0","vlanId":400"#))
        #expect(code(named) == 107 && msg(named).contains("\"master0.400\""), "\(msg(named))")
    }
}

@Suite(.serialized, .enabled(if: hasDummy, "this kernel has no dummy driver (Scripts/kernel-vm-test DummyKernelTests runs these on Debian's stock kernel)"))
struct DummyKernelTests {
    @Test(arguments: CNIVersion.allSupported)
    func addCheckDelEveryVersion(_ v: CNIVersion) throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ctr = bed.container("d")
        sh("ip", "-n", ctr, "link", "set", "lo", "up")
        let conf = bed.conf("dummy", v, #","mtu":9000,"mac":"02:44:00:00:00:01""#, dual: v >= .v0_3_0)
        let add = try bed.run(DummyPlugin(), "ADD", ctr, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        let info = linkInfo(ctr)
        #expect(info.kind == "dummy" && info.mtu == 9000 && info.up)
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").first?["address"] as? String == "02:44:00:00:00:01")
        #expect(sh("ip", "-n", ctr, "addr", "show", "dev", "eth0").out.contains("10.86.0.2/24"))
        #expect(sh("ip", "netns", "exec", ctr, "ping", "-c1", "-W1", "10.86.0.2").status == 0, "its address answers")
        if v >= .v0_4_0 {
            let check = try bed.run(DummyPlugin(), "CHECK", ctr, conf: withPrev(conf, add.stdout))
            #expect(check.exitCode == 0, "\(msg(check))")
            sh("ip", "-n", ctr, "addr", "del", "10.86.0.2/24", "dev", "eth0")
            let gone = try bed.run(DummyPlugin(), "CHECK", ctr, conf: withPrev(conf, add.stdout))
            #expect(code(gone) == 108 && msg(gone).contains("10.86.0.2"), "\(msg(gone))")
        }
        #expect(try bed.run(DummyPlugin(), "DEL", ctr, conf: conf).exitCode == 0)
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").isEmpty)
        #expect(bed.store() == (v >= .v0_3_0 ? ["last_reserved_ip.0", "last_reserved_ip.1", "lock"] : ["last_reserved_ip.0", "lock"]))
        #expect(try bed.run(DummyPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "idempotent")
        sh("ip", "netns", "del", ctr)
        #expect(try bed.run(DummyPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "netns gone")
    }

    /// A failure after IPAM (a route through an unreachable gateway) leaves no link, no address.
    @Test func failedAddLeavesNothing() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let c = bed.container("f")
        let late = try bed.run(DummyPlugin(), "ADD", c, conf: bed.conf("dummy", .v1_1_0, routes: #","routes":[{"dst":"10.99.0.0/16","gw":"192.0.2.1"}]"#))
        #expect(late.exitCode != 0, "\(msg(late))")
        #expect(ipJSON(c, "link", "show").count == 1, "only lo")
        #expect(bed.store() == ["last_reserved_ip.0", "lock"])
    }
}
