import Base
import CNI
import Foundation
import IpvlanPlugin
import TestSupport
import Testing

let hasIpvlan = kernelHas("ipvlan")

@Suite(.serialized, .enabled(if: hasIpvlan, "this kernel has no ipvlan driver (Scripts/kernel-vm-test IpvlanKernelTests runs these on Debian's stock kernel)"))
struct IpvlanKernelTests {
    @Test(arguments: CNIVersion.allSupported)
    func addCheckDelEveryVersion(_ v: CNIVersion) throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ctr = bed.container("a")
        let conf = bed.conf("ipvlan", v, #","master":"master0","mtu":1300"#)
        let add = try bed.run(IpvlanPlugin(), "ADD", ctr, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        let r = try CNIResult(json: JSONValue.parse(add.stdout))
        #expect(r.ips.first?.address.description == "10.86.0.2/24")
        if v >= .v0_3_0 { #expect(r.interfaces.count == 1 && r.interfaces[0].name == "eth0" && r.interfaces[0].sandbox == "/run/netns/\(ctr)") }
        let info = linkInfo(ctr)
        #expect(info.kind == "ipvlan" && info.mtu == 1300 && info.up)
        #expect(info.data["mode"] as? String == "l2", "\(info.data)")
        let masterMAC = ipJSON(bed.host, "link", "show", "dev", "master0").first?["address"] as? String
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").first?["address"] as? String == masterMAC, "an ipvlan has its master's MAC")
        #expect(ipJSON(bed.host, "link", "show", "type", "ipvlan").isEmpty, "nothing on the host")
        #expect(sh("ip", "netns", "exec", ctr, "sysctl", "-n", "net.ipv4.conf.eth0.arp_notify").out.hasPrefix("1"))
        #expect(sh("ip", "netns", "exec", ctr, "sysctl", "-n", "net.ipv6.conf.eth0.ndisc_notify").out.hasPrefix("1"))
        if v >= .v0_4_0 {
            let check = try bed.run(IpvlanPlugin(), "CHECK", ctr, conf: withPrev(conf, add.stdout))
            #expect(check.exitCode == 0, "\(msg(check))")
        }
        #expect(try bed.run(IpvlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0)
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").isEmpty)
        #expect(bed.store() == ["last_reserved_ip.0", "lock"])
        #expect(try bed.run(IpvlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "idempotent")
        #expect(try bed.run(IpvlanPlugin(), "DEL", nil, conf: conf).exitCode == 0, "CNI_NETNS empty")
        sh("ip", "netns", "del", ctr)
        #expect(try bed.run(IpvlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0, "netns gone")
    }

    /// Every mode and flag is made as asked, read back by `ip -d`, and CHECK tells a different one.
    @Test func modesAndFlags() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ctr = bed.container("m")
        for (mode, flag) in [("l3", "private"), ("l3s", "vepa"), ("l2", "bridge")] {
            let conf = bed.conf("ipvlan", .v1_1_0, #","master":"master0","mode":"\#(mode)","flag":"\#(flag)""#)
            let add = try bed.run(IpvlanPlugin(), "ADD", ctr, conf: conf)
            #expect(add.exitCode == 0, "\(mode) \(flag): \(msg(add))")
            let data = linkInfo(ctr).data
            // iproute2 prints the flag as a key of its own set to true ("private": true).
            #expect(data["mode"] as? String == mode && data[flag] as? Bool == true, "\(data)")
            let other = bed.conf("ipvlan", .v1_1_0, #","master":"master0","mode":"\#(mode == "l2" ? "l3" : "l2")","flag":"\#(flag)""#)
            let check = try bed.run(IpvlanPlugin(), "CHECK", ctr, conf: withPrev(other, add.stdout))
            #expect(code(check) == 108 && msg(check).contains("mode"), "\(msg(check))")
            #expect(try bed.run(IpvlanPlugin(), "DEL", ctr, conf: conf).exitCode == 0)
        }
    }

    /// The same configuration through the reference's ipvlan (Debian's 1.1.1) and ours: the same
    /// link, addresses and routes, compared as data (metrics aside: ours follow the interface).
    @Test func laidOutAsTheReference() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let ours = bed.container("o"), ref = bed.container("r")
        let conf = bed.conf(
            "ipvlan", .v1_0_0, #","master":"master0","mode":"l3","mtu":1280"#, dual: true, routes: #","routes":[{"dst":"0.0.0.0/0"},{"dst":"10.99.0.0/16"}]"#)
        let add = try bed.run(IpvlanPlugin(), "ADD", ours, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        let (rc, out) = try bed.reference("ipvlan", "ADD", ref, conf: conf)
        #expect(rc == 0, "reference: \(out)")
        #expect(layout(ours) == layout(ref))
        #expect(try bed.reference("ipvlan", "DEL", ref, conf: conf).0 == 0)
        #expect(try bed.run(IpvlanPlugin(), "DEL", ours, conf: conf).exitCode == 0)
    }

    /// l2 bridge: two containers talk; the private flag keeps siblings apart.
    @Test func siblingsTalkUnlessPrivate() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let a = bed.container("a"), b = bed.container("b")
        let open = bed.conf("ipvlan", .v1_1_0, #","master":"master0""#)
        #expect(try bed.run(IpvlanPlugin(), "ADD", a, cid: "a", conf: open).exitCode == 0)
        #expect(try bed.run(IpvlanPlugin(), "ADD", b, cid: "b", conf: open).exitCode == 0)
        #expect(sh("ip", "netns", "exec", a, "ping", "-c1", "-W2", "10.86.0.3").status == 0, "bridge flag")
        #expect(try bed.run(IpvlanPlugin(), "DEL", a, cid: "a", conf: open).exitCode == 0)
        #expect(try bed.run(IpvlanPlugin(), "DEL", b, cid: "b", conf: open).exitCode == 0)
        let priv = bed.conf("ipvlan", .v1_1_0, #","master":"master0","flag":"private""#)
        #expect(try bed.run(IpvlanPlugin(), "ADD", a, cid: "a", conf: priv).exitCode == 0)
        #expect(try bed.run(IpvlanPlugin(), "ADD", b, cid: "b", conf: priv).exitCode == 0)
        #expect(sh("ip", "netns", "exec", a, "ping", "-c1", "-W1", "10.86.0.5").status != 0, "private flag")
    }

    /// Refusals before IPAM (nothing reserved), a failure after IPAM rolled back, chaining.
    @Test func errorsRollbackAndChaining() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let c = bed.container("e")
        sh("ip", "-n", bed.host, "link", "add", "link", "master0", "name", "mv0", "type", "macvlan")
        let both = try bed.run(IpvlanPlugin(), "ADD", c, conf: bed.conf("ipvlan", .v1_1_0, #","master":"master0""#))
        #expect(code(both) == 7 && msg(both).contains("already carries macvlan \"mv0\""), "\(msg(both))")
        #expect(!FileManager.default.fileExists(atPath: bed.dir + "/ipam"), "IPAM never ran")
        sh("ip", "-n", bed.host, "link", "del", "mv0")
        let late = try bed.run(
            IpvlanPlugin(), "ADD", c,
            conf: bed.conf("ipvlan", .v1_1_0, #","master":"master0""#, routes: #","routes":[{"dst":"10.99.0.0/16","gw":"192.0.2.1"}]"#))
        #expect(late.exitCode != 0, "\(msg(late))")
        #expect(ipJSON(c, "link", "show").count == 1, "only lo: no link left")
        #expect(bed.store() == ["last_reserved_ip.0", "lock"], "the address was released")
        // Chained without IPAM: prevResult's addresses, the master from its host interface.
        let prev = #"{"cniVersion":"1.1.0","interfaces":[{"name":"master0"}],"ips":[{"address":"10.87.0.9/24"}]}"#
        let chained = withPrev(#"{"cniVersion":"1.1.0","name":"lnet","type":"ipvlan"}"#, prev)
        let add = try bed.run(IpvlanPlugin(), "ADD", c, conf: chained)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(sh("ip", "-n", c, "addr", "show", "dev", "eth0").out.contains("10.87.0.9/24"))
        #expect(try bed.run(IpvlanPlugin(), "DEL", c, conf: chained).exitCode == 0)
    }

    /// linkInContainer: the master is in the container's namespace.
    @Test func masterInTheContainer() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let c = bed.container("l")
        sh("ip", "-n", c, "link", "add", "inner0", "type", "veth", "peer", "name", "inner1")
        sh("ip", "-n", c, "link", "set", "inner0", "up")
        let conf = bed.conf("ipvlan", .v1_1_0, #","master":"inner0","linkInContainer":true"#)
        let add = try bed.run(IpvlanPlugin(), "ADD", c, ifName: "net1", conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(linkInfo(c, "net1").kind == "ipvlan")
        #expect(try bed.run(IpvlanPlugin(), "CHECK", c, ifName: "net1", conf: withPrev(conf, add.stdout)).exitCode == 0)
        #expect(try bed.run(IpvlanPlugin(), "DEL", c, ifName: "net1", conf: conf).exitCode == 0)
    }
}
