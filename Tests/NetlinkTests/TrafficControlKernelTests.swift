import Base
import Foundation
import Netlink
import TestSupport
import Testing

/// tc over rtnetlink against the real kernel: every assertion reads the kernel's state back with
/// `tc -j`, not with the code under test (which is then checked to read the same).
@Suite(.serialized, .enabled(if: Privileges.canCreateNetns, "needs root to create network namespaces"))
struct TrafficControlKernelTests {
    func tc(_ ns: TestNetns, _ args: String...) -> [[String: Any]] {
        let r = sh(["tc", "-j", "-n", ns.name] + args)
        return (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [[String: Any]] ?? []
    }

    @Test func aTokenBucketIsTheRootQdiscAndReadsBackTheSame() throws {
        let ns = try TestNetns("tcb")
        defer { ns.remove() }
        sh("ip", "-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        let nl = try ns.open().netlink()
        let v0 = try #require(try nl.link(named: "v0"))
        let bucket = try #require(TokenBucket(rate: 1_000_000, burst: 100_000))
        try nl.setRootTokenBucket(v0.index, bucket)
        let q = try #require(tc(ns, "qdisc", "show", "dev", "v0").first { $0["kind"] as? String == "tbf" })
        let options = try #require(q["options"] as? [String: Any])
        #expect(options["rate"] as? Int == 1_000_000, "bytes per second as tc prints them")
        #expect(options["burst"] as? Int == 100_000)
        #expect(options["lat"] as? Int == 25_000, "a queue of 25 ms at the rate behind the burst (tc shows the limit as a latency)")
        let mine = try #require(try nl.qdiscs(v0.index).first { $0.isRoot })
        #expect(mine.kind == "tbf" && mine.tokenBucket.map { $0.sameAs(bucket) } == true)
        // Replacing it (a second ADD) takes the new rate; deleting it leaves the default qdisc.
        let faster = try #require(TokenBucket(rate: 2_000_000, burst: 100_000))
        try nl.setRootTokenBucket(v0.index, faster)
        #expect(try nl.qdiscs(v0.index).first { $0.isRoot }?.tokenBucket?.rate == 2_000_000)
        try nl.deleteQdisc(v0.index, root: true)
        #expect(tc(ns, "qdisc", "show", "dev", "v0").allSatisfy { $0["kind"] as? String != "tbf" })
        try nl.deleteQdisc(v0.index, root: true)  // nothing there: success
    }

    @Test func theIngressIsRedirectedToAnIFB() throws {
        let ns = try TestNetns("tci")
        defer { ns.remove() }
        sh("ip", "-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        let nl = try ns.open().netlink()
        let v0 = try #require(try nl.link(named: "v0"))
        let ifb = try nl.createIFB(name: "ifbt0", mtu: 1400, alias: "swift-cni test")
        let shown = try #require(ns.link("ifbt0"))
        #expect((shown["linkinfo"] as? [String: Any])?["info_kind"] as? String == "ifb")
        #expect(shown["mtu"] as? Int == 1400 && shown["ifalias"] as? String == "swift-cni test")
        #expect((shown["flags"] as? [String])?.contains("UP") == true)
        #expect(try nl.link(index: ifb.index)?.alias == "swift-cni test")
        try nl.addIngressQdisc(v0.index)
        #expect(throws: NetlinkError.self) { try nl.addIngressQdisc(v0.index) }  // EXCL: a second one is refused
        try nl.redirectIngress(v0.index, to: ifb.index)
        let out = sh("tc", "-n", ns.name, "filter", "show", "dev", "v0", "ingress").out
        #expect(out.contains("Egress Redirect to device ifbt0"), "\(out)")
        #expect(try nl.ingressRedirects(v0.index).map { "\($0.priority) \($0.target)" } == ["1 \(ifb.index)"])
        try nl.deleteQdisc(v0.index, root: false)
        #expect(try nl.ingressRedirects(v0.index).isEmpty)
        #expect(tc(ns, "qdisc", "show", "dev", "v0").allSatisfy { $0["kind"] as? String != "ingress" })
    }
}
