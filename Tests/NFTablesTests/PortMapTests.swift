import Base
import CNI
@testable import FirewallPlugin
import BridgePlugin
import Foundation
import NFTables
import PortmapPlugin
import Netlink
@testable import PluginKit
import TestSupport
import Testing

/// Golden nft text of the portmap batches.
@Suite struct PortMapTextTests {
    @Test func skeleton() {
        #expect(
            PortMap.skeleton().text == """
                create table inet swift_cni_portmap
                add map inet swift_cni_portmap dnat4_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
                add map inet swift_cni_portmap dnat4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
                add map inet swift_cni_portmap snat4 { type ipv4_addr : verdict; }
                add map inet swift_cni_portmap dnat6_addr { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
                add map inet swift_cni_portmap dnat6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
                add map inet swift_cni_portmap snat6 { type ipv6_addr : verdict; }
                add chain inet swift_cni_portmap hostports
                add rule inet swift_cni_portmap hostports meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @dnat4_addr
                add rule inet swift_cni_portmap hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4
                add rule inet swift_cni_portmap hostports meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6_addr
                add rule inet swift_cni_portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat6
                add chain inet swift_cni_portmap prerouting { type nat hook prerouting priority dstnat; policy accept; }
                add rule inet swift_cni_portmap prerouting fib daddr type local jump hostports
                add chain inet swift_cni_portmap output { type nat hook output priority -100; policy accept; }
                add rule inet swift_cni_portmap output fib daddr type local jump hostports
                add chain inet swift_cni_portmap postrouting { type nat hook postrouting priority srcnat; policy accept; }
                add rule inet swift_cni_portmap postrouting ct status dnat ip daddr vmap @snat4
                add rule inet swift_cni_portmap postrouting ct status dnat ip6 daddr vmap @snat6
                """)
    }

    @Test func addForADualStackAttachment() {
        let a = Attachment(containerID: "0123456789abcdef", ifName: "eth0")
        let subnets = [IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!]
        let mappings = [
            PortMap.Mapping(hostPort: 8080, containerPort: 80, proto: 6, hostIP: nil, container: subnets[0].address),
            PortMap.Mapping(hostPort: 8080, containerPort: 80, proto: 6, hostIP: nil, container: subnets[1].address),
            PortMap.Mapping(hostPort: 53, containerPort: 5353, proto: 17, hostIP: IPAddress("192.0.2.1"), container: subnets[0].address),
        ]
        let c = PortMap.comment(network: "web", a)
        #expect(c == "\(Masquerade.tag(network: "web", a)) \(a.containerTag) 0123456789ab/eth0 web")
        let s4 = PortMap.snatChain(network: "web", a, subnet: subnets[0], masqAll: false),
            s6 = PortMap.snatChain(network: "web", a, subnet: subnets[1], masqAll: false)
        let text = PortMap.addBatch(network: "web", a, mappings: mappings, subnets: subnets, snat: true, masqAll: false).text
        #expect(
            text == """
                add chain inet swift_cni_portmap \(s4)
                flush chain inet swift_cni_portmap \(s4)
                add rule inet swift_cni_portmap \(s4) ip saddr 127.0.0.0/8 masquerade
                add rule inet swift_cni_portmap \(s4) ip saddr 10.88.0.0/16 masquerade
                add chain inet swift_cni_portmap \(s6)
                flush chain inet swift_cni_portmap \(s6)
                add rule inet swift_cni_portmap \(s6) ip6 saddr fd00:88::/64 masquerade
                create element inet swift_cni_portmap snat4 { 10.88.0.5 comment "\(c)" : jump \(s4) }
                create element inet swift_cni_portmap snat6 { fd00:88::5 comment "\(c)" : jump \(s6) }
                create element inet swift_cni_portmap dnat4 { tcp . 8080 comment "\(c)" : 10.88.0.5 . 80 }
                create element inet swift_cni_portmap dnat6 { tcp . 8080 comment "\(c)" : fd00:88::5 . 80 }
                create element inet swift_cni_portmap dnat4_addr { 192.0.2.1 . udp . 53 comment "\(c)" : 10.88.0.5 . 5353 }
                """)
        // masqAll: one chain that masquerades every source; snat off: no chain, no snat element.
        let all = PortMap.addBatch(network: "web", a, mappings: [mappings[0]], subnets: [subnets[0]], snat: true, masqAll: true).text
        #expect(all.contains("add rule inet swift_cni_portmap \(PortMap.snatChain(network: "web", a, subnet: subnets[0], masqAll: true)) masquerade\n"))
        let off = PortMap.addBatch(network: "web", a, mappings: [mappings[0]], subnets: [subnets[0]], snat: false, masqAll: false).text
        #expect(off == "create element inet swift_cni_portmap dnat4 { tcp . 8080 comment \"\(c)\" : 10.88.0.5 . 80 }")
    }
}

/// The portmap layout against the kernel, in a throwaway namespace; read back with `nft`.
@Suite(.serialized, .enabled(if: canCreateNetns, "needs root and nft to create namespaces and tables"))
struct PortMapKernelTests {
    let ns = MasqueradeKernelTests.NS()
    func mapping(_ host: UInt16, _ ctr: String, proto: IPProtocol = .tcp, hostIP: String? = nil) -> PortMap.Mapping {
        PortMap.Mapping(hostPort: host, containerPort: 80, proto: proto, hostIP: hostIP.flatMap(IPAddress.init), container: IPAddress(ctr)!)
    }
    func elements(_ map: String) -> [String] {
        ns.nft("list", "map", "inet", "swift_cni_portmap", map).split(separator: "\n")
            .filter { $0.contains("elements") || $0.contains("comment") }.map(String.init)
    }

    /// Many attachments added and removed at once from separate sockets (as parallel plugins
    /// are): listings taken while other transactions change the maps must neither show an
    /// element twice (a DEL then deletes it twice and fails) nor fail a DEL whose element another
    /// transaction took meanwhile. Scripts/stress found the first under load.
    @Test func concurrentAddsAndRemovesNeverFailAndLeaveNothing() throws {
        let workers = 8, each = 40
        let failures = LockedList()
        let path = "/run/netns/\(ns.name)"
        @Sendable func mapping(_ host: UInt16, _ ctr: String, proto: IPProtocol = .tcp) -> PortMap.Mapping {
            PortMap.Mapping(hostPort: host, containerPort: 80, proto: proto, hostIP: nil, container: IPAddress(ctr)!)
        }
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            do {
                let s = try NetworkNamespace(path: path).perform { try NFTSocket() }
                for i in 0..<each {
                    let n = w * each + i
                    let a = Attachment(containerID: "c\(n)", ifName: "eth0")
                    let addr = "10.90.\(n / 250).\(n % 250 + 2)"
                    try PortMap.add(
                        s, network: "web", a, mappings: [mapping(UInt16(20000 + n), addr), mapping(UInt16(20000 + n), addr, proto: 17)],
                        subnets: [IPPrefix(addr + "/16")!], snat: true, masqAll: false)
                    try Masquerade.add(s, network: "web", a, addresses: [IPPrefix(addr + "/16")!])
                    if i % 2 == 1 {  // remove the previous one while others are being added
                        let prev = Attachment(containerID: "c\(n - 1)", ifName: "eth0")
                        _ = try PortMap.remove(s, network: "web", prev)
                        try Masquerade.remove(s, network: "web", prev)
                    }
                }
                for i in stride(from: 1, to: each, by: 2) {
                    let a = Attachment(containerID: "c\(w * each + i)", ifName: "eth0")
                    _ = try PortMap.remove(s, network: "web", a)
                    try Masquerade.remove(s, network: "web", a)
                }
            } catch {
                failures.append("worker \(w): \(error)")
            }
        }
        #expect(failures.items.isEmpty, "\(failures.items)")
        let left = ns.nft("-j", "list", "ruleset").components(separatedBy: "\"elem\"").count - 1
        #expect(left == 0, "maps with elements left")
    }

    @Test func addConflictIdempotenceRemoveAndCollect() throws {
        let s = try ns.socket()
        let a = Attachment(containerID: "aaaa", ifName: "eth0"), b = Attachment(containerID: "bbbb", ifName: "eth0")
        let sa = [IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!], sb = [IPPrefix("10.88.0.6/16")!]
        let ma = [mapping(8080, "10.88.0.5"), mapping(8080, "fd00:88::5"), mapping(53, "10.88.0.5", proto: 17, hostIP: "192.0.2.1")]
        try PortMap.add(s, network: "web", a, mappings: ma, subnets: sa, snat: true, masqAll: false)
        let listing = ns.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(listing.contains("tcp . 8080 comment \"\(PortMap.comment(network: "web", a))\" : 10.88.0.5 . 80"))
        #expect(listing.contains("192.0.2.1 . udp . 53 comment"))
        #expect(listing.contains("fib daddr type local jump hostports"))
        #expect(listing.contains("ct status dnat ip daddr vmap @snat4"))
        func count(_ text: String, _ what: String) -> Int { text.split(separator: "\n").filter { $0.contains(what) }.count }
        let fixed = count(listing, "dnat") + count(listing, "jump hostports")

        // The same ADD again is idempotent; a second container adds elements and its own snat
        // chain (two rules, reached only through the snat4 map), never a rule a packet of
        // another container passes.
        try PortMap.add(s, network: "web", a, mappings: ma, subnets: sa, snat: true, masqAll: false)
        let masq = count(ns.nft("list", "table", "inet", "swift_cni_portmap"), "masquerade")
        try PortMap.add(s, network: "web", b, mappings: [mapping(8081, "10.88.0.6")], subnets: sb, snat: true, masqAll: false)
        let after = ns.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(count(after, "dnat") + count(after, "jump hostports") == fixed)
        #expect(count(after, "masquerade") == masq + 2)
        #expect(try PortMap.mappings(s, network: "web", a).count == 3)

        // Conflicts: the same port and protocol (any address), any over a hostIP port, hostIP over any.
        for m in [mapping(8080, "10.88.0.6"), mapping(53, "10.88.0.6", proto: 17), mapping(8080, "10.88.0.6", hostIP: "192.0.2.9")] {
            let e = try #require(throws: PortMap.Conflict.self) {
                try PortMap.add(s, network: "web", b, mappings: [m], subnets: sb, snat: true, masqAll: false)
            }
            #expect(e.owner == "container aaaa (eth0) on network \"web\"")
        }
        // A failed ADD changed nothing: b still has exactly its one mapping.
        #expect(try PortMap.mappings(s, network: "web", b) == [mapping(8081, "10.88.0.6")])
        // The same port over another protocol, or on another hostIP, is free.
        try PortMap.add(
            s, network: "web", b, mappings: [mapping(8080, "10.88.0.6", proto: 17), mapping(53, "10.88.0.6", proto: 17, hostIP: "192.0.2.2")],
            subnets: sb, snat: true, masqAll: false)

        // CHECK sees a missing element.
        #expect(try PortMap.missing(s, network: "web", a, mappings: ma, snat: true) == nil)
        _ = ns.nft("delete", "element", "inet", "swift_cni_portmap", "dnat6", "{ tcp . 8080 }")
        #expect(try PortMap.missing(s, network: "web", a, mappings: ma, snat: true)?.contains("8080/tcp") == true)

        // DEL by tag, idempotent; GC keeps the valid ones only.
        let removed = try PortMap.remove(s, network: "web", a)
        #expect(removed.count == 2)
        #expect(try PortMap.remove(s, network: "web", a).isEmpty)
        #expect(!ns.nft("list", "table", "inet", "swift_cni_portmap").contains("aaaa/eth0"))
        try PortMap.collect(s, network: "other", valid: [])
        #expect(try PortMap.mappings(s, network: "web", b).count == 3, "GC of another network leaves web alone")
        try PortMap.collect(s, network: "web", valid: [])
        #expect(try PortMap.mappings(s, network: "web", b).isEmpty)
        #expect(elements("snat4").isEmpty && elements("dnat4").isEmpty && elements("dnat4_addr").isEmpty)
    }

    /// A host that never ran DEL (a runtime crash, a rebooted node's stale state): 5,000
    /// attachments' DNAT, snat and masquerade elements, then one GC with none valid. Every
    /// element goes, each GC in one transaction (messages sized and split, never one fixed
    /// buffer: libnftnl writes past the end of a buffer without a check).
    @Test func gcOfFiveThousandStaleAttachmentsRemovesEverything() throws {
        let s = try ns.socket()
        let n = 5000
        for i in 0..<n {
            let a = Attachment(containerID: "stale-\(i)-0123456789abcdef0123456789abcdef", ifName: "eth0")
            let addr = "10.91.\(i / 250).\(i % 250 + 2)"
            try PortMap.add(
                s, network: "web", a, mappings: [mapping(UInt16(10000 + i), addr)], subnets: [IPPrefix(addr + "/16")!], snat: true,
                masqAll: false)
            try Masquerade.add(s, network: "web", a, addresses: [IPPrefix(addr + "/16")!])
        }
        let snat = { () throws -> Int in try s.elements(PortMap.table, "snat4", .ipv4).count }
        #expect(elements("dnat4").count == n)
        #expect(try snat() == n)
        #expect(try Masquerade.elements(s, .v4).count == n)
        let removed = try PortMap.collect(s, network: "web", valid: [])
        #expect(removed.count == n)
        try Masquerade.collect(s, network: "web", valid: [])
        #expect(elements("dnat4").isEmpty)
        #expect(try snat() == 0)
        #expect(try Masquerade.elements(s, .v4).isEmpty)
        // And the other way: 5,000 elements added by one transaction.
        var b = Batch()
        b.addChain(Masquerade.table, "bulk")
        b.addElements(
            Masquerade.table, "masq4",
            (0..<n).map { i in
                VerdictElement(key: .address(IPAddress("10.92.\(i / 250).\(i % 250 + 2)")!), jump: "bulk", comment: "bulk-\(i)")
            })
        #expect(b.messages.count > 2, "split into messages of bounded size")
        try s.apply(b)
        #expect(try Masquerade.elements(s, .v4).count == n)
        // A transaction of many messages: every acknowledgement must fit the receive buffer.
        var chains = Batch()
        for i in 0..<n { chains.addChain(Masquerade.table, "many-\(i)") }
        try s.apply(chains)
        #expect(try s.chainExists(Masquerade.table, "many-\(n - 1)"))
    }

    /// The portmap rules flushed (the table and its maps intact): CHECK fails, and an ADD (any
    /// attachment's) puts the rules back so the mappings forward again.
    @Test func flushedRulesAreSeenByCheckAndPutBackByAdd() throws {
        let s = try ns.socket()
        let a = Attachment(containerID: "aaaa", ifName: "eth0")
        let ma = [mapping(8080, "10.88.0.5")]
        try PortMap.add(s, network: "web", a, mappings: ma, subnets: [IPPrefix("10.88.0.5/16")!], snat: true, masqAll: false)
        #expect(try PortMap.missing(s, network: "web", a, mappings: ma, snat: true) == nil)
        _ = ns.nft("flush", "chain", "inet", "swift_cni_portmap", "hostports")
        #expect(try PortMap.missing(s, network: "web", a, mappings: ma, snat: true)?.contains("chain hostports has 0 of its 4 rules") == true)
        _ = ns.nft("flush", "chain", "inet", "swift_cni_portmap", PortMap.snatChain(network: "web", a, subnet: IPPrefix("10.88.0.5/16")!, masqAll: false))
        _ = try PortMap.remove(s, network: "web", a)
        try PortMap.add(s, network: "web", a, mappings: ma, subnets: [IPPrefix("10.88.0.5/16")!], snat: true, masqAll: false)
        #expect(try PortMap.missing(s, network: "web", a, mappings: ma, snat: true) == nil)
        let listing = ns.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(listing.components(separatedBy: "dnat ip to").count - 1 == 2 && listing.contains("ip saddr 10.88.0.0/16 masquerade"), "\(listing)")
    }

    /// Nothing of a network stays after its last container: the masquerade subnet chain, the
    /// portmap snat chain and the firewall's isolation of the bridge go with their last element;
    /// GC removes such chains left without an element.
    @Test func perNetworkChainsGoWithTheirLastElement() throws {
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0"), b = Attachment(containerID: "b", ifName: "eth0")
        let pa = IPPrefix("10.88.0.5/16")!, pb = IPPrefix("10.88.0.6/16")!
        func ours() -> [String] {
            ns.nft("list", "ruleset").split(separator: "\n").compactMap { line -> String? in
                let w = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard w.count >= 2, w[0] == "chain", ["masq-", "snat-", "iso-", "net-"].contains(where: { w[1].hasPrefix($0) }) else { return nil }
                return String(w[1].prefix { $0 != "-" })
            }.sorted()
        }
        for (x, p) in [(a, pa), (b, pb)] {
            try Masquerade.add(s, network: "web", x, addresses: [p])
            try PortMap.add(s, network: "web", x, mappings: [mapping(p == pa ? 8080 : 8081, p.address.description)], subnets: [p], snat: true, masqAll: false)
            try Firewall.add(s, network: "web", x, addresses: [p.address], adminChain: "admin", isolate: "br-web")
        }
        #expect(ours() == ["iso", "masq", "net", "snat", "snat"], "a snat chain per attachment")
        for x in [a] {
            try Masquerade.remove(s, network: "web", x)
            _ = try PortMap.remove(s, network: "web", x)
            try Firewall.remove(s, network: "web", x)
        }
        #expect(ours() == ["iso", "masq", "net", "snat"], "b still uses them")
        try Masquerade.remove(s, network: "web", b)
        _ = try PortMap.remove(s, network: "web", b)
        try Firewall.remove(s, network: "web", b)
        #expect(ours() == [], "gone with the last element: \(ns.nft("list", "ruleset"))")
        #expect(!ns.nft("list", "ruleset").contains("br-web"), "the bridge's isolation elements too")

        // Orphans (their elements deleted by hand): GC of any network removes them.
        try Masquerade.add(s, network: "web", a, addresses: [pa])
        try PortMap.add(s, network: "web", a, mappings: [mapping(8080, "10.88.0.5")], subnets: [pa], snat: true, masqAll: false)
        _ = ns.nft("flush", "map", "inet", "swift_cni", "masq4")
        _ = ns.nft("flush", "map", "inet", "swift_cni_portmap", "snat4")
        #expect(ours() == ["masq", "snat"])
        try Masquerade.collect(s, network: "other", valid: [])
        _ = try PortMap.collect(s, network: "other", valid: [])
        #expect(ours() == [])
        #expect(try PortMap.mappings(s, network: "web", a).count == 1, "GC of another network leaves web's mapping")
    }

    /// The two last containers of a subnet deleted at once: each DEL's listing still shows the
    /// other's element, so each transaction keeps the chain. The interleaving is played step by
    /// step: the first DEL's second try leaves the chain (the other's element is still there),
    /// the second's removes it, and the firewall's isolation of the bridge with it.
    @Test func twoLastDeletionsListingEachOtherLeaveNothing() throws {
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0"), b = Attachment(containerID: "b", ifName: "eth0")
        let pa = IPPrefix("10.88.0.5/16")!, pb = IPPrefix("10.88.0.6/16")!
        let chain = Masquerade.chain(network: "web", subnet: pa)
        for (x, p) in [(a, pa), (b, pb)] {
            try Masquerade.add(s, network: "web", x, addresses: [p])
            try Firewall.add(s, network: "web", x, addresses: [p.address], adminChain: "admin", isolate: "br-web")
        }
        let ta = Masquerade.tag(network: "web", a), tb = Masquerade.tag(network: "web", b)
        let (ma, keptA) = try Masquerade.removal(s, orphans: false) { $0.comment == ta }
        let (mb, keptB) = try Masquerade.removal(s, orphans: false) { $0.comment == tb }
        #expect(keptA == [chain] && keptB == [chain], "each listing sees the other's element")
        let (fa, fkeptA) = try Firewall.removal(s, network: "web", orphans: false) { $0 == ta }
        let (fb, fkeptB) = try Firewall.removal(s, network: "web", orphans: false) { $0 == tb }
        #expect(fkeptA && fkeptB)
        try s.apply(ma)
        try s.apply(fa)
        try Masquerade.deleteIfUnused(s, keptA)
        try Firewall.removeWhere(s, network: "web", orphans: false, again: false) { _ in false }
        #expect(try s.chainExists(Masquerade.table, chain), "b's element still jumps to it")
        #expect(ns.nft("list", "ruleset").contains("br-web"), "b's network is still isolated")
        try s.apply(mb)
        try s.apply(fb)
        #expect(try s.chainExists(Masquerade.table, chain), "both transactions kept it: the race")
        try Masquerade.deleteIfUnused(s, keptB)
        try Firewall.removeWhere(s, network: "web", orphans: false, again: false) { _ in false }
        #expect(try !s.chainExists(Masquerade.table, chain), "the last DEL's second try removes it")
        let left = ns.nft("list", "ruleset")
        #expect(!left.contains("chain net-") && !left.contains("chain iso-") && !left.contains("br-web"), "\(left)")
    }

    /// DEL of a subnet's last container races ADDs on the same subnet (separate sockets, as
    /// parallel plugins): no operation fails, every ADD ends with its chain in place (the
    /// deletion lost the race: EBUSY; or the ADD made the chain again: ENOENT), and nothing is
    /// left after the last DEL.
    @Test func lastElementDeletionRacesAddsSafely() throws {
        let workers = 6, each = 30
        let failures = LockedList()
        let path = "/run/netns/\(ns.name)"
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            do {
                let s = try NetworkNamespace(path: path).perform { try NFTSocket() }
                for i in 0..<each {
                    let n = w * each + i
                    let a = Attachment(containerID: "r\(n)", ifName: "eth0")
                    let p = IPPrefix("10.89.\(n / 250).\(n % 250 + 2)/16")!
                    let pm = PortMap.Mapping(hostPort: UInt16(30000 + n), containerPort: 80, proto: 6, hostIP: nil, container: p.address)
                    try Masquerade.add(s, network: "race", a, addresses: [p])
                    try PortMap.add(s, network: "race", a, mappings: [pm], subnets: [p], snat: true, masqAll: false)
                    try Firewall.add(s, network: "race", a, addresses: [p.address], adminChain: "admin", isolate: "br-race")
                    if let m = try Masquerade.missing(s, network: "race", a, addresses: [p.address]) { failures.append("\(a): \(m)") }
                    if let m = try PortMap.missing(s, network: "race", a, mappings: [pm], snat: true) { failures.append("\(a): \(m)") }
                    if !(try s.elements(Firewall.table, "isolation_in", .interfaceName).contains { $0.key == .interface("br-race") }) {
                        failures.append("\(a): br-race not isolated")
                    }
                    try Masquerade.remove(s, network: "race", a)
                    _ = try PortMap.remove(s, network: "race", a)
                    try Firewall.remove(s, network: "race", a)
                }
            } catch {
                failures.append("worker \(w): \(error)")
            }
        }
        #expect(failures.items.isEmpty, "\(failures.items.prefix(5))")
        let left = ns.nft("list", "ruleset")
        #expect(!left.contains("chain masq-") && !left.contains("chain snat-") && !left.contains("chain iso-") && !left.contains("chain net-"), "\(left)")
    }

    /// DEL with the runtime's host ports finds each element by its key: only this attachment's
    /// go (another owner's element of the same host port is never touched), its snat element
    /// too, and the snat chain with its last reference.
    @Test func removeByHostPortsTouchesOnlyTheOwner() throws {
        let s = try ns.socket()
        let a = Attachment(containerID: "aaaa", ifName: "eth0"), b = Attachment(containerID: "bbbb", ifName: "eth0")
        let sa = [IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!], sb = [IPPrefix("10.88.0.6/16")!]
        let ma = [mapping(8080, "10.88.0.5"), mapping(8080, "fd00:88::5"), mapping(53, "10.88.0.5", proto: 17, hostIP: "192.0.2.1")]
        try PortMap.add(s, network: "web", a, mappings: ma, subnets: sa, snat: true, masqAll: false)
        try PortMap.add(s, network: "web", b, mappings: [mapping(8081, "10.88.0.6")], subnets: sb, snat: true, masqAll: false)
        let ports = [
            PortMap.HostPort(proto: 6, port: 8080, hostIP: nil), PortMap.HostPort(proto: 17, port: 53, hostIP: IPAddress("192.0.2.1")),
            PortMap.HostPort(proto: 6, port: 8081, hostIP: nil),  // b's: not touched
        ]
        let removed = try PortMap.remove(s, network: "web", a, hostPorts: ports)
        #expect(Set(removed) == Set(ma))
        #expect(try PortMap.mappings(s, network: "web", a).isEmpty)
        #expect(try PortMap.mappings(s, network: "web", b) == [mapping(8081, "10.88.0.6")])
        #expect(try PortMap.missing(s, network: "web", b, mappings: [mapping(8081, "10.88.0.6")], snat: true) == nil, "b's snat and chain stay")
        let listing = ns.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(!listing.contains("10.88.0.5 comment") && !listing.contains("fd00:88::5 comment"), "a's snat elements are gone")
        #expect(!listing.contains(PortMap.snatChain(network: "web", a, subnet: sa[1], masqAll: false)), "the IPv6 snat chain went with its last element")
        #expect(try PortMap.remove(s, network: "web", a, hostPorts: ports).isEmpty, "again: nothing")
        _ = try PortMap.remove(s, network: "web", b, hostPorts: ports)
        #expect(!ns.nft("list", "table", "inet", "swift_cni_portmap").contains("chain snat-"), "the last snat chain went too")
    }

    /// One container on two networks asks for the same host ports through both interfaces
    /// (podman passes its mappings to every network): the second is no conflict but stands by,
    /// and takes over when the active one goes, whichever is added and deleted first. Another
    /// container is still refused.
    @Test(arguments: [(0, 0), (0, 1), (1, 0), (1, 1)])
    func sameContainerOnTwoNetworksSharesItsHostPorts(addFirst: Int, delFirst: Int) throws {
        let s = try ns.socket()
        let x = [Attachment(containerID: "cccc", ifName: "eth0"), Attachment(containerID: "cccc", ifName: "eth1")]
        let networks = ["front", "back"]
        let subnets = [[IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!], [IPPrefix("10.89.0.5/16")!, IPPrefix("fd00:89::5/64")!]]
        func maps(_ i: Int) -> [PortMap.Mapping] {
            [
                mapping(8080, subnets[i][0].address.description), mapping(8080, subnets[i][1].address.description),
                mapping(53, subnets[i][0].address.description, proto: 17, hostIP: "192.0.2.1"),
            ]
        }
        let ports = [PortMap.HostPort(proto: 6, port: 8080, hostIP: nil), PortMap.HostPort(proto: 17, port: 53, hostIP: IPAddress("192.0.2.1"))]
        let first = addFirst, second = 1 - addFirst
        for i in [first, second] {
            try PortMap.add(s, network: networks[i], x[i], mappings: maps(i), subnets: subnets[i], snat: true, masqAll: false)
        }
        try PortMap.add(s, network: networks[second], x[second], mappings: maps(second), subnets: subnets[second], snat: true, masqAll: false)
        let active = elements("dnat4").joined() + elements("dnat6").joined() + elements("dnat4_addr").joined()
        #expect(active.contains("\(subnets[first][0].address) . 80") && active.contains("\(subnets[first][1].address) . 80"))
        #expect(!active.contains("\(subnets[second][0].address) . 80"))
        #expect(Set(try PortMap.standbyMappings(s, network: networks[second], x[second])) == Set(maps(second)), "a repeated ADD keeps one standby")
        for i in [0, 1] {
            #expect(try PortMap.missing(s, network: networks[i], x[i], mappings: maps(i), snat: true) == nil, "CHECK of \(x[i])")
        }
        // Another container is refused with the owner named, as before.
        let other = Attachment(containerID: "dddd", ifName: "eth0")
        let e = try #require(throws: PortMap.Conflict.self) {
            try PortMap.add(
                s, network: "front", other, mappings: [mapping(8080, "10.88.0.6")], subnets: [IPPrefix("10.88.0.6/16")!], snat: true, masqAll: false)
        }
        #expect(e.owner == "container cccc (\(x[first].ifName)) on network \"\(networks[first])\"")

        // DEL of one: the port reaches the container through the other.
        let removed = try PortMap.remove(s, network: networks[delFirst], x[delFirst], hostPorts: ports, containers: subnets[delFirst].map(\.address))
        #expect(Set(removed) == Set(maps(delFirst)))
        let left = 1 - delFirst
        let now = elements("dnat4").joined() + elements("dnat6").joined() + elements("dnat4_addr").joined()
        #expect(
            now.contains("\(subnets[left][0].address) . 80") && now.contains("\(subnets[left][1].address) . 80")
                && now.contains("\(subnets[left][0].address) . 80"))
        #expect(!now.contains("\(subnets[delFirst][0].address) . "), "nothing points to the deleted interface")
        #expect(try PortMap.standbyMappings(s, network: networks[left], x[left]).isEmpty, "the standby took over")
        #expect(try PortMap.missing(s, network: networks[left], x[left], mappings: maps(left), snat: true) == nil)
        #expect(try PortMap.mappings(s, network: networks[delFirst], x[delFirst]).isEmpty)

        _ = try PortMap.remove(s, network: networks[left], x[left], hostPorts: ports, containers: subnets[left].map(\.address))
        let listing = ns.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(!listing.contains("cccc/"), "no element of the container left: \(listing)")
        #expect(!listing.contains("chain snat-"))
    }

    /// DEL without the mappings (by tag) and GC promote a standby as DEL by host port does; GC
    /// never promotes an attachment that is not valid.
    @Test func removeByTagAndGCPromoteTheStandby() throws {
        let s = try ns.socket()
        let a0 = Attachment(containerID: "cccc", ifName: "eth0"), a1 = Attachment(containerID: "cccc", ifName: "eth1")
        let a2 = Attachment(containerID: "cccc", ifName: "eth2")
        let m0 = [mapping(8080, "10.88.0.5")], m1 = [mapping(8080, "10.89.0.5")], m2 = [mapping(8080, "10.90.0.5")]
        try PortMap.add(s, network: "front", a0, mappings: m0, subnets: [IPPrefix("10.88.0.5/16")!], snat: true, masqAll: false)
        try PortMap.add(s, network: "back", a1, mappings: m1, subnets: [IPPrefix("10.89.0.5/16")!], snat: true, masqAll: false)
        try PortMap.add(s, network: "back", a2, mappings: m2, subnets: [IPPrefix("10.90.0.5/16")!], snat: true, masqAll: false)
        #expect(try PortMap.remove(s, network: "front", a0) == m0)
        #expect(elements("dnat4").joined().contains("10.89.0.5 . 80"), "eth1 took over: \(elements("dnat4"))")
        // GC of "back" with only eth2 valid: eth1 goes and eth2 takes over.
        try PortMap.collect(s, network: "back", valid: [a2])
        #expect(elements("dnat4").joined().contains("10.90.0.5 . 80"), "\(elements("dnat4"))")
        #expect(try PortMap.missing(s, network: "back", a2, mappings: m2, snat: true) == nil)
        try PortMap.collect(s, network: "back", valid: [])
        #expect(elements("dnat4").isEmpty && elements("dnat4_standby").isEmpty)
    }

    @Test func removeWithoutTableIsSuccessAndCreatesNothing() throws {
        let s = try ns.socket()
        #expect(try PortMap.remove(s, network: "web", Attachment(containerID: "a", ifName: "eth0")).isEmpty)
        #expect(ns.nft("list", "tables").isEmpty)
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ s: String) { lock.withLock { storage.append(s) } }
    var items: [String] { lock.withLock { storage } }
}
