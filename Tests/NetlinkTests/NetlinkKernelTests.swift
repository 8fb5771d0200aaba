import Base
import CNI
import Foundation
import Netlink
import TestSupport
import Testing

/// rtnetlink against the real kernel, in throwaway namespaces; every assertion reads the kernel's
/// state back with `ip -j`, not with the code under test.
@Suite(.serialized, .enabled(if: Privileges.canCreateNetns, "needs root to create network namespaces"))
struct NetlinkKernelTests {
    @Test func vethWithPeerInAnotherNamespace() throws {
        let host = try TestNetns("nlh"), ctr = try TestNetns("nlc")
        defer { host.remove(); ctr.remove() }
        let nl = try host.open().netlink()
        let ctrNS = try ctr.open()
        try nl.createVeth(name: "vhost0", peer: "eth0", peerNamespace: ctrNS, mtu: 1400, mac: MACAddress("02:aa:bb:cc:dd:01")?.bytes)
        let hostSide = try #require(host.link("vhost0"))
        #expect(hostSide["mtu"] as? Int == 1400)
        #expect(hostSide["address"] as? String == "02:aa:bb:cc:dd:01")
        #expect((hostSide["linkinfo"] as? [String: Any])?["info_kind"] as? String == "veth")
        let peer = try #require(ctr.link("eth0"))
        #expect(peer["mtu"] as? Int == 1400)
        // Our view agrees, and the peer index points at the other side.
        let l = try #require(try nl.link(named: "vhost0"))
        #expect(l.kind == "veth" && l.mtu == 1400 && l.mac.description == "02:aa:bb:cc:dd:01")
        let inCtr = try #require(try ctrNS.netlink().link(named: "eth0"))
        #expect(l.parentIndex == inCtr.index)
        #expect(try nl.link(named: "eth0") == nil, "the peer is not in the host namespace")
    }

    @Test func existingNameIsEEXISTWithTheOperation() throws {
        let ns = try TestNetns("nle")
        defer { ns.remove() }
        let nl = try ns.open().netlink()
        try nl.createBridge(name: "br0")
        let err = try #require(throws: NetlinkError.self) { try nl.createBridge(name: "br0") }
        #expect(err.errno == EEXIST)
        #expect(err.operation == "RTM_NEWLINK bridge br0")
        // A request the kernel rejects with an extended-ack message.
        let bad = try #require(throws: NetlinkError.self) { try nl.setMTU(try nl.requireLink("br0").index, 10) }
        #expect(bad.errno == EINVAL)
        #expect(!bad.extendedAck.isEmpty, "kernel reason text: \(bad)")
    }

    @Test func linkAttributesAndBridgePorts() throws {
        let ns = try TestNetns("nll")
        defer { ns.remove() }
        let nl = try ns.open().netlink()
        try nl.createBridge(name: "br0", mtu: 1450)
        try nl.createVeth(name: "va", peer: "vb")
        let br = try nl.requireLink("br0"), va = try nl.requireLink("va")
        try nl.setMaster(va.index, br.index)
        try nl.setBridgePort(va.index, hairpin: true, isolated: true)
        try nl.setUp(br.index)
        try nl.setUp(va.index)
        try nl.setPromiscuous(br.index, true)
        try nl.setMAC(va.index, MACAddress("02:00:00:00:00:0a")!.bytes)
        let port = try #require(ns.link("va"))
        #expect(port["master"] as? String == "br0")
        let slave = (port["linkinfo"] as? [String: Any])?["info_slave_data"] as? [String: Any]
        #expect(slave?["hairpin"] as? Bool == true)
        #expect(slave?["isolated"] as? Bool == true)
        #expect((port["flags"] as? [String])?.contains("UP") == true)
        #expect(port["address"] as? String == "02:00:00:00:00:0a")
        #expect((ns.link("br0")?["flags"] as? [String])?.contains("PROMISC") == true)
        #expect(try nl.link(named: "va")?.master == br.index)
        try nl.setBridgePort(va.index, hairpin: false)
        #expect(((ns.link("va")?["linkinfo"] as? [String: Any])?["info_slave_data"] as? [String: Any])?["hairpin"] as? Bool == false)
        try nl.setMaster(va.index, 0)
        #expect(ns.link("va")?["master"] == nil)
        try nl.setUp(va.index, false)
        try nl.rename(va.index, to: "renamed0")
        #expect(ns.link("renamed0") != nil && ns.link("va") == nil)
        try nl.setMTU(br.index, 1300)
        #expect(ns.link("br0")?["mtu"] as? Int == 1300)
        try nl.deleteLink(br.index)
        #expect(ns.link("br0") == nil)
        #expect(try nl.links().map(\.name).sorted() == ["lo", "renamed0", "vb"])
    }

    @Test func moveALinkToAnotherNamespace() throws {
        let a = try TestNetns("nlma"), b = try TestNetns("nlmb")
        defer { a.remove(); b.remove() }
        let nl = try a.open().netlink()
        try nl.createVeth(name: "m0", peer: "m1")
        try nl.move(try nl.requireLink("m1").index, to: try b.open())
        #expect(a.link("m1") == nil && b.link("m1") != nil)
    }

    @Test func addressesBothFamilies() throws {
        let ns = try TestNetns("nla")
        defer { ns.remove() }
        let nl = try ns.open().netlink()
        try nl.createVeth(name: "a0", peer: "a1")
        let idx = try nl.requireLink("a0").index
        try nl.setUp(idx)
        try nl.addAddress(idx, IPPrefix("10.70.0.2/24")!)
        try nl.addAddress(idx, IPPrefix("fd00:70::2/64")!, noDAD: true)
        let info = (ns.ipJSON("addr", "show", "dev", "a0").first?["addr_info"] as? [[String: Any]]) ?? []
        let v4 = try #require(info.first { $0["family"] as? String == "inet" })
        #expect(v4["local"] as? String == "10.70.0.2" && v4["prefixlen"] as? Int == 24)
        #expect(v4["broadcast"] as? String == "10.70.0.255")
        let v6 = try #require(info.first { $0["family"] as? String == "inet6" && ($0["local"] as? String)?.hasPrefix("fd00") == true })
        #expect(v6["local"] as? String == "fd00:70::2" && v6["prefixlen"] as? Int == 64)
        #expect(v6["nodad"] as? Bool == true)
        let ours = try nl.addresses(idx).map(\.prefix.description)
        #expect(ours.contains("10.70.0.2/24") && ours.contains("fd00:70::2/64"))
        #expect(try nl.addresses(idx, family: .v4).map(\.prefix.description) == ["10.70.0.2/24"])
        #expect(throws: NetlinkError.self) { try nl.addAddress(idx, IPPrefix("10.70.0.2/24")!) }
        try nl.deleteAddress(idx, IPPrefix("10.70.0.2/24")!)
        #expect(try nl.addresses(idx, family: .v4).isEmpty)
    }

    @Test func routesWithEveryAttribute() throws {
        let ns = try TestNetns("nlr")
        defer { ns.remove() }
        let nl = try ns.open().netlink()
        try nl.createVeth(name: "r0", peer: "r1")
        let idx = try nl.requireLink("r0").index
        try nl.setUp(idx)
        try nl.addAddress(idx, IPPrefix("10.71.0.2/24")!)
        try nl.addRoute(KernelRoute(destination: IPPrefix("0.0.0.0/0"), gateway: IPAddress("10.71.0.1"), outputIndex: idx))
        try nl.addRoute(
            KernelRoute(
                destination: IPPrefix("10.72.0.0/16"), gateway: IPAddress("10.99.0.1"), outputIndex: idx, table: 100,
                priority: 50, mtu: 1300, advmss: 1200, onLink: true))
        try nl.addRoute(KernelRoute(destination: IPPrefix("10.73.0.0/16"), outputIndex: idx, scope: 253))
        let main = ns.ipJSON("route", "show")
        #expect(main.contains { $0["dst"] as? String == "default" && $0["gateway"] as? String == "10.71.0.1" })
        #expect(main.contains { $0["dst"] as? String == "10.73.0.0/16" && $0["scope"] as? String == "link" })
        let t100 = try #require(ns.ipJSON("route", "show", "table", "100").first)
        #expect(t100["dst"] as? String == "10.72.0.0/16" && t100["gateway"] as? String == "10.99.0.1")
        #expect(t100["metric"] as? Int == 50)
        #expect((t100["flags"] as? [String])?.contains("onlink") == true)
        let metrics = (t100["metrics"] as? [[String: Any]])?.reduce(into: [String: Any]()) { $0.merge($1) { a, _ in a } }
        #expect(metrics?["mtu"] as? Int == 1300 && metrics?["advmss"] as? Int == 1200)
        // Read back, replace, delete.
        let ours = try #require(try nl.routes(family: .v4, table: 100).first)
        #expect(ours.mtu == 1300 && ours.advmss == 1200 && ours.priority == 50 && ours.onLink)
        try nl.replaceRoute(KernelRoute(destination: IPPrefix("0.0.0.0/0"), gateway: IPAddress("10.71.0.254"), outputIndex: idx))
        #expect(ns.ipJSON("route", "show", "default").first?["gateway"] as? String == "10.71.0.254")
        try nl.deleteRoute(KernelRoute(destination: IPPrefix("10.72.0.0/16"), table: 100))
        #expect(ns.ipJSON("route", "show", "table", "100").isEmpty)
        try nl.addRoute(KernelRoute(destination: IPPrefix("fd00:74::/64"), outputIndex: idx))
        #expect(try nl.routes(family: .v6).contains { $0.destination?.description == "fd00:74::/64" })
    }

    /// Routing rules (`ip rule`) added, listed as the kernel orders them, deleted; the tables in
    /// use; a route's source hint and protocol read back and kept when copied.
    @Test func routingRulesAndTablesInUse() throws {
        let ns = try TestNetns("nlq")
        defer { ns.remove() }
        let nl = try ns.open().netlink()
        try nl.createVeth(name: "q0", peer: "q1")
        let idx = try nl.requireLink("q0").index
        try nl.setUp(idx)
        try nl.addAddress(idx, IPPrefix("10.75.0.2/24")!)
        let v4 = RoutingRule(family: .v4, source: IPPrefix("10.75.0.2/32"), table: 100)
        let v6 = RoutingRule(family: .v6, source: IPPrefix("fd00:75::2/128"), table: 70000, priority: 1000)
        try nl.addRoutingRule(v4)
        try nl.addRoutingRule(v6)
        // The kernel refuses a rule that exists with its priority; without one, it gives the
        // same rule the next free priority: a caller that wants one rule looks first.
        #expect(throws: NetlinkError.self) { try nl.addRoutingRule(v6) }
        let text = ns.ip("rule", "show") + ns.ip("-6", "rule", "show")
        #expect(text.contains("32765:\tfrom 10.75.0.2 lookup 100") && text.contains("1000:\tfrom fd00:75::2 lookup 70000"), "\(text)")
        let rules = try nl.routingRules(family: .v4)
        #expect(rules.map(\.table) == [255, 100, 254, 253], "the kernel's order: \(rules)")
        #expect(rules[1].source == IPPrefix("10.75.0.2/32") && rules[1].priority == 32765)
        #expect(try nl.routingRules(family: .v6).contains(v6))
        try nl.addRoute(KernelRoute(destination: IPPrefix("10.76.0.0/16"), gateway: IPAddress("10.75.0.1"), outputIndex: idx, table: 300))
        #expect(try nl.tablesInUse().isSuperset(of: [100, 253, 254, 255, 300, 70000]))
        #expect(try !nl.tablesInUse().contains(101))
        try nl.deleteRoutingRule(rules[1])
        try nl.deleteRoutingRule(v6)
        #expect(try nl.routingRules(family: .v4).map(\.table) == [255, 254, 253])
        // The address's own route: its source hint and protocol (kernel) survive a copy.
        let subnet = try #require(try nl.routes(family: .v4).first { $0.destination == IPPrefix("10.75.0.0/24") })
        #expect(subnet.source == IPAddress("10.75.0.2") && subnet.protocolID == 2)
        var copy = subnet
        copy.table = 300
        try nl.replaceRoute(copy)
        #expect(ns.ip("route", "show", "table", "300").contains("10.75.0.0/24 dev q0 proto kernel scope link src 10.75.0.2"))
    }

    @Test func namespacesOpenOnlyNamespaceFilesAndWorkRunsInside() throws {
        let ns = try TestNetns("nln")
        defer { ns.remove() }
        #expect(throws: NetlinkError.self) { try NetworkNamespace(path: "/nonexistent/netns") }
        let err = try #require(throws: NetlinkError.self) { try NetworkNamespace(path: "/etc/hostname") }
        #expect(err.errno == EINVAL)
        #expect(try NetworkNamespace(path: "/proc/self/ns/net").isCurrent)
        let n = try ns.open()
        #expect(!n.isCurrent)
        // A sysctl written inside the namespace changes it there, not in the test's own namespace.
        let outside = try Sysctl.get(["net", "ipv4", "ip_forward"])
        try n.perform { try Sysctl.set(["net", "ipv4", "ip_forward"], "1") }
        #expect(try n.perform { try Sysctl.get(["net", "ipv4", "ip_forward"]) } == "1")
        #expect(sh("ip", "netns", "exec", ns.name, "sysctl", "-n", "net.ipv4.ip_forward").out.hasPrefix("1"))
        #expect(try Sysctl.get(["net", "ipv4", "ip_forward"]) == outside)
        #expect(try n.perform { n.isCurrent })
    }

    @Test func conntrackDeleteByProtocolAndDestinationPort() throws {
        let ns = try TestNetns("nlct")
        defer { ns.remove() }
        // Conntrack runs in a namespace once a rule there needs it.
        for cmd in [
            ["add", "table", "ip", "t"], ["add", "chain", "ip", "t", "out", "{ type filter hook output priority 0; }"],
            ["add", "rule", "ip", "t", "out", "ct", "state", "new", "accept"],
        ] {
            #expect(sh(["ip", "netns", "exec", ns.name, "nft"] + cmd).status == 0)
        }
        let send = "import socket\nfor p in (5300, 5301, 5300):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', p))\n"
        #expect(sh("ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", send).status == 0)
        func tracked(_ port: Int) -> Int {
            sh("ip", "netns", "exec", ns.name, "conntrack", "-L", "-p", "udp", "--dport", String(port)).out
                .split(separator: "\n").filter { $0.contains("dport=\(port)") }.count
        }
        #expect(tracked(5300) == 2 && tracked(5301) == 1)
        let nl = try ns.open().perform { try Conntrack.socket() }
        #expect(try Conntrack.delete(nl, family: .v4, proto: 17, destinationPort: 5300) == 2)
        #expect(tracked(5300) == 0, "both flows to 5300 are gone")
        #expect(tracked(5301) == 1, "the flow to 5301 stays")
        #expect(try Conntrack.delete(nl, family: .v4, proto: 6, destinationPort: 5301) == 0, "TCP is another protocol")
        #expect(try Conntrack.delete(nl, family: .v6, proto: 17, destinationPort: 5301) == 0, "IPv6 is another family")
        #expect(tracked(5301) == 1)
        // Several ports in one walk.
        #expect(sh("ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", send).status == 0)
        #expect(
            try Conntrack.delete(nl, family: .v4, proto: 17, destinationPorts: [5300, 5301, 9]) == 4, "two new flows to 5300, the old and a new one to 5301")
        #expect(tracked(5300) == 0 && tracked(5301) == 0)
    }
}
