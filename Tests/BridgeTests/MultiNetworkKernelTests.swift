import BridgePlugin
import Base
import CNI
import Foundation
import Netlink
import TestSupport
import Testing

/// A container on two bridge networks (IPv4 + IPv6), each with a default route: the second
/// interface's routes go beside the first's with a metric of their own, whatever the order of
/// the ADDs, and a DEL of either leaves the other's routes.
@Suite(.serialized, .enabled(if: canCreateNetns, "needs root to create network namespaces"))
struct MultiNetworkKernelTests {
    /// Network `n` (1 or 2): bridge swbr<id>n<n>, 10.8<n>.0.0/24 and fd8<n>::/64, default routes of
    /// both families from IPAM.
    func conf(_ bed: Bed, _ n: Int, _ extra: String = "", routes: String = #"[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]"#) -> String {
        let ipam =
            #"{"type":"host-local","ranges":[[{"subnet":"10.8\#(n).0.0/24"}],[{"subnet":"fd8\#(n)::/64"}]],"routes":\#(routes),"dataDir":"\#(bed.dir)/ipam"}"#
        return #"{"cniVersion":"1.1.0","name":"net\#(n)","type":"bridge","bridge":"swbr\#(bed.id)n\#(n)","isGateway":true\#(extra),"ipam":\#(ipam)}"#
    }

    /// `dev metric` of the container's default routes of a family, sorted.
    func defaults(_ ctr: String, _ family: String) -> [String] {
        ipJSON(ctr, family, "route", "show", "default").map { "\($0["dev"] as? String ?? "?") \($0["metric"] as? Int ?? 0)" }.sorted()
    }

    /// The interface the container's kernel picks for an address off every network (a route
    /// lookup: nothing is sent).
    func egress(_ ctr: String, _ to: String) -> String? {
        ipJSON(ctr, "route", "get", to).first?["dev"] as? String
    }

    func routeMetrics(_ add: PluginOutcome) throws -> [String] {
        try CNIResult(json: JSONValue.parse(add.stdout)).routes.map { "\($0.dst) \($0.priority.map(String.init) ?? "-")" }.sorted()
    }

    @Test(arguments: [("eth0", "eth0"), ("eth0", "eth1"), ("eth1", "eth0"), ("eth1", "eth1")])
    func secondDefaultRouteInBothOrdersAndDelOfEither(addFirst: String, delFirst: String) throws {
        let bed = try Bed()
        defer { bed.remove() }
        let ctr = bed.container("m")
        let net = ["eth0": conf(bed, 1), "eth1": conf(bed, 2)]
        let order = addFirst == "eth0" ? ["eth0", "eth1"] : ["eth1", "eth0"]
        var results: [String: String] = [:]
        for ifName in order {
            let add = try bed.run("ADD", ctr, ifname: ifName, conf: net[ifName]!)
            #expect(add.exitCode == 0, "ADD \(ifName) after \(results.keys.sorted()): \(msg(add))")
            results[ifName] = add.stdout
        }
        // eth0 (the first network) carries the traffic, whichever was added first.
        #expect(defaults(ctr, "-4") == ["eth0 100", "eth1 101"])
        #expect(defaults(ctr, "-6") == ["eth0 100", "eth1 101"])
        #expect(egress(ctr, "192.0.2.1") == "eth0")
        #expect(egress(ctr, "2001:db8::1") == "eth0")
        // The results say which metric each route got (1.1.0 has the field).
        #expect(try routeMetrics(PluginOutcome(exitCode: 0, stdout: results["eth0"]!)) == ["0.0.0.0/0 100", "::/0 100"])
        #expect(try routeMetrics(PluginOutcome(exitCode: 0, stdout: results["eth1"]!)) == ["0.0.0.0/0 101", "::/0 101"])
        for ifName in order {
            let check = try bed.run("CHECK", ctr, ifname: ifName, conf: withPrev(net[ifName]!, results[ifName]!))
            #expect(check.exitCode == 0, "CHECK \(ifName): \(msg(check))")
        }
        // A DEL takes exactly its own routes: the other interface's stay, and CHECK still passes.
        let other = delFirst == "eth0" ? "eth1" : "eth0"
        let del = try bed.run("DEL", ctr, ifname: delFirst, conf: net[delFirst]!)
        #expect(del.exitCode == 0, "\(msg(del))")
        let left = other == "eth0" ? "eth0 100" : "eth1 101"
        #expect(defaults(ctr, "-4") == [left])
        #expect(defaults(ctr, "-6") == [left])
        #expect(egress(ctr, "192.0.2.1") == other)
        let check = try bed.run("CHECK", ctr, ifname: other, conf: withPrev(net[other]!, results[other]!))
        #expect(check.exitCode == 0, "CHECK \(other) after DEL \(delFirst): \(msg(check))")
        #expect(try bed.run("DEL", ctr, ifname: other, conf: net[other]!).exitCode == 0)
        #expect(defaults(ctr, "-4").isEmpty && defaults(ctr, "-6").isEmpty)
    }

    /// The keys that choose: `routeMetric` of a network, a route's own `priority`; a metric
    /// another interface holds makes the route take the next free one. CHECK sees a changed metric.
    @Test func routeMetricAndPriorityChooseTheInterface() throws {
        let bed = try Bed()
        defer { bed.remove() }
        let ctr = bed.container("p")
        let one = conf(bed, 1)
        let two = conf(bed, 2, #","routeMetric":50"#)
        #expect(try bed.run("ADD", ctr, ifname: "eth0", conf: one).exitCode == 0)
        let add = try bed.run("ADD", ctr, ifname: "eth1", conf: two)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(defaults(ctr, "-4") == ["eth0 100", "eth1 50"])
        #expect(egress(ctr, "192.0.2.1") == "eth1", "routeMetric below the automatic 100 wins")
        #expect(egress(ctr, "2001:db8::1") == "eth1")

        // A third network asking for metric 50 by the route's priority: taken, so 51.
        let three =
            #"{"cniVersion":"1.1.0","name":"net3","type":"bridge","bridge":"swbr\#(bed.id)n3","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.83.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0","priority":50}],"dataDir":"\#(bed.dir)/ipam"}}"#
        let add3 = try bed.run("ADD", ctr, ifname: "eth2", conf: three)
        #expect(add3.exitCode == 0, "\(msg(add3))")
        #expect(defaults(ctr, "-4") == ["eth0 100", "eth1 50", "eth2 51"])
        #expect(try routeMetrics(add3) == ["0.0.0.0/0 51"])

        // CHECK compares the metric the result names with the kernel's.
        var prev = try JSONValue.parse(add3.stdout).objectValue!
        prev["routes"] = .array([.object(["dst": .string("0.0.0.0/0"), "gw": .string("10.83.0.1"), "priority": .int(52)])])
        let check = try bed.run("CHECK", ctr, ifname: "eth2", conf: withPrev(three, JSONValue.object(prev).serialized()))
        #expect(code(check) == 108 && msg(check).contains("metric 51"), "\(msg(check))")
        for (i, c) in [one, two, three].enumerated() { #expect(try bed.run("DEL", ctr, ifname: "eth\(i)", conf: c).exitCode == 0) }
    }
}
