import Base
import CNI
import FirewallPlugin
import BridgePlugin
import Foundation
@testable import NFTables
import Netlink
import PluginKit
import TestSupport
import Testing

let canCreateNetns = TestSupport.canCreateNetns(needsNft: true)

/// Golden nft text: what a batch programs, readable without root.
@Suite struct BatchTextTests {
    @Test func masqueradeSkeleton() {
        #expect(
            Masquerade.skeleton().text == """
                create table inet swift_cni
                add chain inet swift_cni postrouting { type nat hook postrouting priority srcnat; policy accept; }
                add map inet swift_cni masq4 { type ipv4_addr : verdict; }
                add map inet swift_cni masq6 { type ipv6_addr : verdict; }
                add rule inet swift_cni postrouting ip saddr vmap @masq4
                add rule inet swift_cni postrouting ip6 saddr vmap @masq6
                """)
    }

    @Test func masqueradeAddForADualStackAttachment() {
        let a = Attachment(containerID: "c1", ifName: "eth0")
        let c4 = Masquerade.chain(network: "net1", subnet: IPPrefix("10.88.0.0/16")!)
        let c6 = Masquerade.chain(network: "net1", subnet: IPPrefix("fd00:88::/64")!)
        let tag = Masquerade.tag(network: "net1", a)
        #expect(tag.hasPrefix(Masquerade.networkTag("net1") + ":") && tag.count == 33)
        let text = Masquerade.addBatch(network: "net1", a, addresses: [IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!]).text
        #expect(
            text == """
                add chain inet swift_cni \(c4)
                flush chain inet swift_cni \(c4)
                add rule inet swift_cni \(c4) ip daddr 10.88.0.0/16 return
                add rule inet swift_cni \(c4) ip daddr 224.0.0.0/4 return
                add rule inet swift_cni \(c4) masquerade
                add chain inet swift_cni \(c6)
                flush chain inet swift_cni \(c6)
                add rule inet swift_cni \(c6) ip6 daddr fd00:88::/64 return
                add rule inet swift_cni \(c6) ip6 daddr ff00::/8 return
                add rule inet swift_cni \(c6) masquerade
                create element inet swift_cni masq4 { 10.88.0.5 comment "\(tag)" : jump \(c4) }
                create element inet swift_cni masq6 { fd00:88::5 comment "\(tag)" : jump \(c6) }
                """)
        #expect(c4 != c6 && c4 != Masquerade.chain(network: "net2", subnet: IPPrefix("10.88.0.0/16")!))
    }

    @Test func masqueradeExcludesAnOverlayNetworkInItsOwnChain() {
        // The vxlan plugin's ipMasq: the host's subnet and the whole overlay keep their source.
        let a = Attachment(containerID: "c1", ifName: "eth0")
        let overlay = [IPPrefix("10.244.0.0/16")!, IPPrefix("fd00:244::/48")!]
        let c = Masquerade.chain(network: "ov", subnet: IPPrefix("10.244.3.0/24")!, exclude: overlay)
        #expect(c != Masquerade.chain(network: "ov", subnet: IPPrefix("10.244.3.0/24")!), "its own chain, not the plain one")
        let text = Masquerade.addBatch(network: "ov", a, addresses: [IPPrefix("10.244.3.5/24")!], exclude: overlay).text
        #expect(
            text == """
                add chain inet swift_cni \(c)
                flush chain inet swift_cni \(c)
                add rule inet swift_cni \(c) ip daddr 10.244.3.0/24 return
                add rule inet swift_cni \(c) ip daddr 10.244.0.0/16 return
                add rule inet swift_cni \(c) ip daddr 224.0.0.0/4 return
                add rule inet swift_cni \(c) masquerade
                create element inet swift_cni masq4 { 10.244.3.5 comment "\(Masquerade.tag(network: "ov", a))" : jump \(c) }
                """)
    }

    /// An element another attachment leaked is replaced in the same transaction as the addition:
    /// at no moment is the address (or host interface) without an element.
    @Test func replacingALeakedElementIsOneTransaction() {
        let a = Attachment(containerID: "c1", ifName: "eth0")
        let c4 = Masquerade.chain(network: "net1", subnet: IPPrefix("10.88.0.0/16")!)
        let masq = Masquerade.addBatch(
            network: "net1", a, addresses: [IPPrefix("10.88.0.5/16")!], existing: [c4], replacing: [.v4: [.address(IPAddress("10.88.0.5")!)]])
        #expect(
            masq.text == """
                delete element inet swift_cni masq4 { 10.88.0.5 }
                create element inet swift_cni masq4 { 10.88.0.5 comment "\(Masquerade.tag(network: "net1", a))" : jump \(c4) }
                """)
        let leaked = VerdictElement(key: .interface("veth1"), jump: "spoof-old", comment: "x")
        let spoof = MacSpoofCheck.addBatch(network: "net1", a, hostInterface: "veth1", mac: [2, 0, 0, 0, 0, 1], replacing: leaked).text
        #expect(
            spoof.hasPrefix(
                """
                delete element bridge swift_cni macspoof { "veth1" }
                flush chain bridge swift_cni spoof-old
                delete chain bridge swift_cni spoof-old
                add chain bridge swift_cni \(MacSpoofCheck.chain(network: "net1", a))
                """))
        #expect(
            spoof.hasSuffix(
                "create element bridge swift_cni macspoof { \"veth1\" comment \"\(Masquerade.tag(network: "net1", a))\" : jump \(MacSpoofCheck.chain(network: "net1", a)) }"
            ))
    }
}

/// The same batches against the kernel, inside a throwaway namespace; read back with `nft -j`.
@Suite(.serialized, .enabled(if: canCreateNetns, "needs root and nft to create namespaces and tables"))
struct MasqueradeKernelTests {
    final class NS {
        let name = "swcni-nft-\(getpid())-\(Int.random(in: 0...99999))"
        init() { sh("ip", "netns", "add", name) }
        deinit { sh("ip", "netns", "del", name) }
        /// A socket made on a thread inside the namespace: it stays bound to it.
        func socket() throws -> NFTSocket {
            try NetworkNamespace(path: "/run/netns/\(name)").perform { try NFTSocket() }
        }
        func nft(_ args: String...) -> String { sh(["ip", "netns", "exec", name, "nft"] + args).out }
        func json() -> [[String: Any]] {
            let out = sh("ip", "netns", "exec", name, "nft", "-j", "list", "table", "inet", "swift_cni").out
            let doc = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
            return (doc?["nftables"] as? [[String: Any]]) ?? []
        }
    }

    @Test func addListRemoveAndCollect() throws {
        let ns = NS()
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0"), b = Attachment(containerID: "b", ifName: "eth0")
        try Masquerade.add(s, network: "n1", a, addresses: [IPPrefix("10.88.0.5/16")!, IPPrefix("fd00:88::5/64")!])
        try Masquerade.add(s, network: "n1", b, addresses: [IPPrefix("10.88.0.6/16")!])
        try Masquerade.add(s, network: "n2", a, addresses: [IPPrefix("10.89.0.5/24")!])
        // The kernel has the layout: two lookup rules, one chain per subnet, the elements.
        let doc = ns.json()
        let rules = doc.compactMap { $0["rule"] as? [String: Any] }
        #expect(rules.filter { $0["chain"] as? String == "postrouting" }.count == 2)
        #expect(rules.filter { ($0["chain"] as? String)?.hasPrefix("masq-") == true }.count == 9)
        let listing = ns.nft("list", "table", "inet", "swift_cni")
        #expect(listing.contains("ip saddr vmap @masq4") && listing.contains("ip6 saddr vmap @masq6"))
        #expect(listing.contains("ip daddr 10.88.0.0/16 return") && listing.contains("masquerade"))
        #expect(
            listing.contains(
                "10.88.0.5 comment \"\(Masquerade.tag(network: "n1", a))\" : jump \(Masquerade.chain(network: "n1", subnet: IPPrefix("10.88.0.0/16")!))"))
        #expect(try Masquerade.elements(s, .v4).map(\.key.description).sorted() == ["10.88.0.5", "10.88.0.6", "10.89.0.5"])
        // Rules do not grow with containers: a fourth ADD in n1 adds one element only.
        try Masquerade.add(s, network: "n1", Attachment(containerID: "c", ifName: "eth0"), addresses: [IPPrefix("10.88.0.7/16")!])
        #expect(ns.json().compactMap { $0["rule"] }.count == 11)
        // ADD again over a leaked element of the same address (another owner): replaced.
        try Masquerade.add(s, network: "n1", Attachment(containerID: "d", ifName: "eth0"), addresses: [IPPrefix("10.88.0.7/16")!])
        #expect(
            try Masquerade.elements(s, .v4).first { $0.key.description == "10.88.0.7" }?.comment
                == Masquerade.tag(network: "n1", Attachment(containerID: "d", ifName: "eth0")))
        // DEL by tag: both families of a in n1, nothing of a in n2, nothing of b.
        try Masquerade.remove(s, network: "n1", a)
        #expect(try Masquerade.elements(s, .v4).map(\.key.description).sorted() == ["10.88.0.6", "10.88.0.7", "10.89.0.5"])
        #expect(try Masquerade.elements(s, .v6).isEmpty)
        try Masquerade.remove(s, network: "n1", a)  // idempotent
        // GC of n1 keeping b: d goes, n2's element stays.
        try Masquerade.collect(s, network: "n1", valid: [b])
        #expect(try Masquerade.elements(s, .v4).map(\.key.description).sorted() == ["10.88.0.6", "10.89.0.5"])
    }

    /// The kernel answers every message of a batch before sendmsg returns: a batch whose
    /// acknowledgements stop early is a failure, never a success. Here the second message does
    /// not ask for its acknowledgement.
    @Test func missingAcknowledgementsAreAFailure() throws {
        let ns = NS()
        let s = try ns.socket()
        var b = Batch()
        b.addTable(TableRef(.inet, "acked"))
        var other = Batch()
        other.addTable(TableRef(.inet, "unacked"))
        let m = other.messages[0]
        b.messages.append(
            Batch.Message(text: m.text) { seq in
                var bytes = m.build(seq)
                bytes[6] &= ~UInt8(4)  // NLM_F_ACK
                return bytes
            })
        let e = try #require(throws: NFTError.self) { try s.apply(b) }
        #expect(e.errno == EAGAIN && e.operation.contains("only 1 acknowledged"), "\(e)")
    }

    /// A host interface name or an address reused while a leaked element still holds it: the
    /// new attachment takes it over (macspoofchk: with its own chain, the old one removed).
    @Test func leakedMacSpoofAndFirewallElementsAreTakenOver() throws {
        let ns = NS()
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0"), b = Attachment(containerID: "b", ifName: "eth0")
        try MacSpoofCheck.add(s, network: "n1", a, hostInterface: "veth1", mac: [2, 0, 0, 0, 0, 1])
        try MacSpoofCheck.add(s, network: "n1", b, hostInterface: "veth1", mac: [2, 0, 0, 0, 0, 2])
        let el = try MacSpoofCheck.element(s, hostInterface: "veth1")
        #expect(el?.comment == Masquerade.tag(network: "n1", b) && el?.jump == MacSpoofCheck.chain(network: "n1", b))
        let listing = ns.nft("list", "table", "bridge", "swift_cni")
        #expect(!listing.contains(MacSpoofCheck.chain(network: "n1", a)), "the leaked attachment's chain went with its element")
        #expect(listing.contains("ether saddr 02:00:00:00:00:02 return"))

        try Firewall.add(s, network: "n1", a, addresses: [IPAddress("10.88.0.5")!], adminChain: "admin", isolate: nil)
        try Firewall.add(s, network: "n1", b, addresses: [IPAddress("10.88.0.5")!, IPAddress("10.88.0.6")!], adminChain: "admin", isolate: nil)
        #expect(try Firewall.addresses(s, network: "n1", a).isEmpty)
        #expect(try Firewall.addresses(s, network: "n1", b).map(\.description).sorted() == ["10.88.0.5", "10.88.0.6"])
    }

    /// Rules flushed or a chain deleted behind our back (the table intact): CHECK sees it, and
    /// the next ADD puts the layout back in one transaction, without duplicating a rule.
    @Test func aDamagedLayoutIsSeenByCheckAndRepairedByAdd() throws {
        let ns = NS()
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0"), b = Attachment(containerID: "b", ifName: "eth0")
        let pa = IPPrefix("10.88.0.5/16")!, pb = IPPrefix("10.88.0.6/16")!
        let mac: [UInt8] = [2, 0, 0, 0, 0, 1]
        try Masquerade.add(s, network: "n1", a, addresses: [pa])
        try MacSpoofCheck.add(s, network: "n1", a, hostInterface: "veth1", mac: mac)
        try Firewall.add(s, network: "n1", a, addresses: [pa.address], adminChain: "admin", isolate: nil)
        func allIntact() throws -> [String?] {
            [
                try Masquerade.missing(s, network: "n1", a, addresses: [pa.address]),
                try MacSpoofCheck.missing(s, network: "n1", a, hostInterface: "veth1"),
                try Firewall.missingLayout(s, adminChain: "admin"),
            ]
        }
        #expect(try allIntact() == [nil, nil, nil])
        _ = ns.nft("flush", "chain", "inet", "swift_cni", "postrouting")
        _ = ns.nft("flush", "chain", "bridge", "swift_cni", MacSpoofCheck.chain(network: "n1", a))
        _ = ns.nft("flush", "chain", "inet", "swift_cni_firewall", "forward")
        let damaged = try allIntact()
        #expect(damaged[0]?.contains("chain postrouting has 0 of its 2 rules") == true, "\(damaged)")
        #expect(damaged[1]?.contains("has 0 of its 2 rules") == true, "\(damaged)")
        #expect(damaged[2]?.contains("chain forward has 0 of its 6 rules") == true, "\(damaged)")
        _ = ns.nft("add", "rule", "inet", "swift_cni_firewall", "admin", "counter")  // the administrator's: kept
        try Masquerade.add(s, network: "n1", b, addresses: [pb])
        try MacSpoofCheck.add(s, network: "n1", a, hostInterface: "veth1", mac: mac)
        try Firewall.add(s, network: "n1", b, addresses: [pb.address], adminChain: "admin", isolate: nil)
        #expect(try allIntact() == [nil, nil, nil])
        let masq = ns.nft("list", "chain", "inet", "swift_cni", "postrouting")
        #expect(masq.components(separatedBy: "saddr vmap").count - 1 == 2, "each lookup rule once: \(masq)")
        #expect(ns.nft("list", "chain", "inet", "swift_cni_firewall", "admin").contains("counter"), "the admin's rule stays")
        // A subnet chain emptied: CHECK sees it; the next ADD of the subnet makes it again.
        let c = Masquerade.chain(network: "n1", subnet: pa)
        _ = ns.nft("flush", "chain", "inet", "swift_cni", c)
        #expect(try Masquerade.missing(s, network: "n1", a, addresses: [pa.address])?.contains("chain \(c) has 0 of its 3 rules") == true)
        try Masquerade.add(s, network: "n1", Attachment(containerID: "c", ifName: "eth0"), addresses: [IPPrefix("10.88.0.7/16")!])
        #expect(try Masquerade.missing(s, network: "n1", a, addresses: [pa.address]) == nil)
    }

    /// Every network's admin chain is jumped to before any verdict of ours (a second admin chain
    /// too), and its jump comes back after the forward rules were put back without it.
    @Test func everyAdminChainIsConsultedFirst() throws {
        let ns = NS()
        let s = try ns.socket()
        let a = Attachment(containerID: "a", ifName: "eth0")
        func forward() -> [String] {
            ns.nft("list", "chain", "inet", "swift_cni_firewall", "forward").split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("jump") || $0.contains("vmap") }
        }
        try Firewall.add(s, network: "n1", a, addresses: [IPAddress("10.88.0.5")!], adminChain: "ADMIN1", isolate: nil)
        try Firewall.add(s, network: "n2", a, addresses: [IPAddress("10.89.0.5")!], adminChain: "ADMIN2", isolate: nil)
        let f = forward()
        #expect(f.prefix(2).sorted() == ["jump ADMIN1", "jump ADMIN2"], "\(f)")
        _ = ns.nft("flush", "chain", "inet", "swift_cni_firewall", "forward")
        try Firewall.add(
            s, network: "n1", Attachment(containerID: "b", ifName: "eth0"), addresses: [IPAddress("10.88.0.6")!], adminChain: "ADMIN1", isolate: nil)
        try Firewall.add(
            s, network: "n2", Attachment(containerID: "b", ifName: "eth0"), addresses: [IPAddress("10.89.0.6")!], adminChain: "ADMIN2", isolate: nil)
        let g = forward()
        #expect(g.prefix(2).sorted() == ["jump ADMIN1", "jump ADMIN2"] && g.filter { $0.hasPrefix("jump") }.count == 2, "\(g)")
    }

    @Test func removeWithoutTableIsSuccess() throws {
        let ns = NS()
        let s = try ns.socket()
        try Masquerade.remove(s, network: "n1", Attachment(containerID: "a", ifName: "eth0"))
        #expect(try Masquerade.elements(s, .v4).isEmpty)
        #expect(ns.nft("list", "tables").isEmpty, "DEL creates nothing")
    }
}
