import CNI
import Foundation
import Netlink
import TestSupport
import Testing
import VrfPlugin

let hasVRF = kernelHas("vrf")

/// The vrf plugin on a container's eth0 (a veth whose peer is the "gateway" 10.86.0.1 in the
/// bed's host namespace), addressed as a main plugin leaves it: IPv4, IPv6 and a route through
/// the gateway, prevResult saying so.
@Suite(.serialized, .enabled(if: hasVRF, "this kernel has no VRF driver (Scripts/kernel-vm-test VrfKernelTests runs these on Debian's stock kernel)"))
struct VrfKernelTests {
    /// A container with `ifName` addressed 10.86.0.<n>/24 and fd86::<n>/64, a route to
    /// 10.99.0.0/16 through 10.86.0.1; the conf of the vrf plugin with prevResult.
    func container(_ bed: LBed, _ tag: String, ifName: String = "eth0", n: Int = 5, peer: String? = nil, extra: String = "") -> (String, String) {
        let c = bed.container(tag)
        let p = peer ?? "gw\(tag)"
        sh("ip", "-n", c, "link", "set", "lo", "up")
        sh("ip", "-n", c, "link", "add", ifName, "type", "veth", "peer", "name", p, "netns", bed.host)
        sh("ip", "-n", bed.host, "link", "set", p, "up")
        sh("ip", "-n", bed.host, "addr", "add", "10.86.0.1/24", "dev", p)
        sh("ip", "-n", c, "link", "set", ifName, "up")
        sh("ip", "-n", c, "addr", "add", "10.86.0.\(n)/24", "dev", ifName)
        sh("ip", "-n", c, "addr", "add", "fd86::\(n)/64", "dev", ifName, "nodad")
        sh("ip", "-n", c, "route", "add", "10.99.0.0/16", "via", "10.86.0.1", "dev", ifName)
        let prev =
            #"{"cniVersion":"1.0.0","interfaces":[{"name":"\#(ifName)","sandbox":"/run/netns/\#(c)"}],"ips":[{"address":"10.86.0.\#(n)/24","gateway":"10.86.0.1","interface":0},{"address":"fd86::\#(n)/64","interface":0}]}"#
        return (c, #"{"cniVersion":"1.0.0","name":"lnet","type":"vrf","vrfname":"blue"\#(extra),"prevResult":\#(prev)}"#)
    }

    /// The VRF's table's routes on `dev`, generic (no metrics, protocols or preferences).
    func vrfRoutes(_ c: String, _ dev: String = "eth0") -> [String] {
        (sh("ip", "-n", c, "route", "show", "vrf", "blue").out + sh("ip", "-n", c, "-6", "route", "show", "vrf", "blue").out)
            .split(separator: "\n").map {
                String($0).replacingOccurrences(of: #" (proto|metric|pref) \S+"#, with: "", options: .regularExpression).trimmingCharacters(in: .whitespaces)
            }
            .filter { !$0.isEmpty && $0.contains("dev \(dev)") }.sorted()
    }

    @Test func addCheckDelLaidOutAsTheReference() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let (c, conf) = container(bed, "v")
        let add = try bed.run(VrfPlugin(), "ADD", c, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        let vrf = linkInfo(c, "blue")
        #expect(vrf.kind == "vrf" && vrf.up && vrf.data["table"] as? Int == 1, "made up, with the first free table: \(vrf)")
        #expect(ipJSON(c, "link", "show", "dev", "eth0").first?["master"] as? String == "blue")
        let addrs = sh("ip", "-n", c, "addr", "show", "dev", "eth0").out
        #expect(addrs.contains("10.86.0.5/24") && addrs.contains("fd86::5/64"), "the IPv6 address the kernel dropped is back: \(addrs)")
        let routes = vrfRoutes(c)
        #expect(routes.contains("10.99.0.0/16 via 10.86.0.1 dev eth0") && routes.contains("fd86::/64 dev eth0"), "\(routes)")
        #expect(!sh("ip", "-n", c, "route").out.contains("10.99.0.0/16"), "the route left the main table")
        #expect(sh("ip", "netns", "exec", c, "ping", "-c1", "-W2", "-I", "blue", "10.86.0.1").status == 0, "the gateway answers in the VRF")

        // The reference (Debian's 1.1.1) on the same container layout.
        let (r, rconf) = container(bed, "r", peer: "gwr")
        let (rc, rout) = try bed.reference("vrf", "ADD", r, conf: rconf.replacingOccurrences(of: "/run/netns/\(c)", with: "/run/netns/\(r)"))
        #expect(rc == 0, "\(rout)")
        // Debian's 1.1.1 loses the gateway route (the kernel drops it on enslaving); from v1.7 the
        // reference puts it back in the VRF's table, as ours does.
        #expect(vrfRoutes(r) == routes.filter { $0 != "10.99.0.0/16 via 10.86.0.1 dev eth0" }, "the VRF's routes as the reference lays them out")
        #expect(linkInfo(r, "blue").data["table"] as? Int == 1)

        let check = try bed.run(VrfPlugin(), "CHECK", c, conf: conf)
        #expect(check.exitCode == 0, "\(msg(check))")
        sh("ip", "-n", c, "link", "set", "eth0", "nomaster")
        let out = try bed.run(VrfPlugin(), "CHECK", c, conf: conf)
        #expect(code(out) == 108 && msg(out).contains("not in VRF"), "\(msg(out))")
        sh("ip", "-n", c, "link", "set", "eth0", "master", "blue")

        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0)
        #expect(ipJSON(c, "link", "show", "dev", "eth0").first?["master"] == nil)
        #expect(ipJSON(c, "link", "show", "dev", "blue").isEmpty, "the VRF went with its last interface")
        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0, "idempotent")
        sh("ip", "-n", c, "link", "del", "eth0")
        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0, "the interface gone (the reference fails)")
        sh("ip", "netns", "del", c)
        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0, "netns gone")
    }

    /// ADD, CHECK (from 0.4.0) and DEL in every version the plugin takes (from 0.3.1).
    @Test(arguments: VrfPlugin.supportedVersions)
    func everyVersion(_ v: CNIVersion) throws {
        let bed = try LBed()
        defer { bed.remove() }
        let (c, base) = container(bed, "e")
        let conf = base.replacingOccurrences(of: #""cniVersion":"1.0.0""#, with: #""cniVersion":"\#(v.rawValue)""#)
        let add = try bed.run(VrfPlugin(), "ADD", c, conf: conf)
        #expect(add.exitCode == 0 && ipJSON(c, "link", "show", "dev", "eth0").first?["master"] as? String == "blue", "\(v): \(msg(add))")
        if v >= .v0_4_0 { #expect(try bed.run(VrfPlugin(), "CHECK", c, conf: conf).exitCode == 0) }
        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0)
        #expect(ipJSON(c, "link", "show", "dev", "blue").isEmpty)
    }

    /// Two interfaces in one VRF; the configured table; a VRF there with another table; an
    /// interface with a master already: refused, and the VRF the failed ADD made is gone.
    @Test func twoInterfacesTablesAndRefusals() throws {
        let bed = try LBed()
        defer { bed.remove() }
        let (c, conf) = container(bed, "t", extra: #","table":100"#)
        #expect(try bed.run(VrfPlugin(), "ADD", c, conf: conf).exitCode == 0)
        #expect(linkInfo(c, "blue").data["table"] as? Int == 100)
        sh("ip", "-n", c, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
        sh("ip", "-n", c, "link", "set", "net1", "up")
        sh("ip", "-n", c, "addr", "add", "10.87.0.5/24", "dev", "net1")
        let net1 = conf.replacingOccurrences(of: #""name":"eth0""#, with: #""name":"net1""#)
        #expect(try bed.run(VrfPlugin(), "ADD", c, ifName: "net1", conf: net1).exitCode == 0)
        #expect(ipJSON(c, "link", "show", "dev", "net1").first?["master"] as? String == "blue")
        let other = try bed.run(VrfPlugin(), "ADD", c, ifName: "net1", conf: conf.replacingOccurrences(of: #""table":100"#, with: #""table":200"#))
        #expect(code(other) == 7 && msg(other).contains("table 100, not 200"), "\(msg(other))")
        #expect(try bed.run(VrfPlugin(), "DEL", c, conf: conf).exitCode == 0)
        #expect(linkInfo(c, "blue").kind == "vrf", "net1 is still in it")
        #expect(try bed.run(VrfPlugin(), "DEL", c, ifName: "net1", conf: net1).exitCode == 0)
        #expect(ipJSON(c, "link", "show", "dev", "blue").isEmpty)

        sh("ip", "-n", c, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", c, "link", "set", "eth0", "master", "br0")
        let taken = try bed.run(VrfPlugin(), "ADD", c, conf: conf)
        #expect(code(taken) == 7 && msg(taken).contains("br0"), "\(msg(taken))")
        #expect(ipJSON(c, "link", "show", "dev", "blue").isEmpty, "the VRF this ADD made is gone again")
        let notVRF = try bed.run(VrfPlugin(), "ADD", c, conf: conf.replacingOccurrences(of: #""vrfname":"blue""#, with: #""vrfname":"br0""#))
        #expect(code(notVRF) == 7 && msg(notVRF).contains("not a VRF"), "\(msg(notVRF))")
    }
}
