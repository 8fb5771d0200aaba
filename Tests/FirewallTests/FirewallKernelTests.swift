import Base
import CNI
import FirewallPlugin
import Foundation
import NFTables
import Netlink
import TestSupport
import Testing

/// The firewall plugin against the kernel: a host namespace with two bridges of containers
/// (made with ip, as the bridge plugin would), the plugin in-process inside the host namespace.
@Suite(.serialized, .enabled(if: TestSupport.canCreateNetns(needsNft: true), "needs root and nft"))
struct FirewallKernelTests {
    final class Bed {
        let id = "\(getpid())-\(Int.random(in: 0...99999))"
        var host: String { "swcni-fwh-\(id)" }
        var names: [String] = []
        init() {
            sh("ip", "netns", "add", host)
            sh("ip", "-n", host, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            for (br, net) in [("fwbr1", "10.71.1"), ("fwbr2", "10.71.2")] {
                sh("ip", "-n", host, "link", "add", br, "type", "bridge")
                sh("ip", "-n", host, "addr", "add", "\(net).1/24", "dev", br)
                sh("ip", "-n", host, "link", "set", br, "up")
            }
        }
        deinit {
            for n in names { sh("ip", "netns", "del", n) }
            sh("ip", "netns", "del", host)
        }
        /// A container on `bridge` with `address`/24, default route via .1.
        func container(_ short: String, bridge: String, address: String) -> String {
            let ns = "swcni-fw\(short)-\(id)"
            names.append(ns)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", host, "link", "add", "v\(short)", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", host, "link", "set", "v\(short)", "master", bridge, "up")
            sh("ip", "-n", ns, "addr", "add", "\(address)/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", address.split(separator: ".").dropLast().joined(separator: ".") + ".1")
            return ns
        }
        func ping(_ from: String, _ to: String) -> Bool { sh("ip", "netns", "exec", from, "ping", "-c1", "-W1", to).status == 0 }
        func run(_ command: String, cid: String, ns: String, ip: String, bridge: String, keys: String = "") throws -> PluginOutcome {
            let prev =
                #"{"cniVersion":"1.0.0","interfaces":[{"name":"\#(bridge)"},{"name":"veth"},{"name":"eth0","sandbox":"/run/netns/\#(ns)"}],"ips":[{"address":"\#(ip)/24","interface":2}]}"#
            let conf = Array(#"{"cniVersion":"1.0.0","name":"fw","type":"firewall"\#(keys),"prevResult":\#(prev)}"#.utf8)
            let env = ["CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/\(ns)", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"]
            return try NetworkNamespace(path: "/run/netns/\(host)").perform {
                PluginMain.run(FirewallPlugin(), environment: env, readStdin: { conf }, log: { _ in })
            }
        }
        func nft(_ args: String...) -> String { sh(["ip", "netns", "exec", host, "nft"] + args).out }
    }

    @Test func sameBridgeIsolatesBridgesAcceptsByElementAndKeepsTheAdminChain() throws {
        let bed = Bed()
        let a = bed.container("a", bridge: "fwbr1", address: "10.71.1.2")
        let b = bed.container("b", bridge: "fwbr2", address: "10.71.2.2")
        #expect(bed.ping(a, "10.71.2.2"), "forwarding works before the plugin")
        let addA = try bed.run("ADD", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1", keys: #","ingressPolicy":"same-bridge""#)
        #expect(addA.exitCode == 0, "\(msg(addA))")
        #expect(bed.ping(a, "10.71.1.1"), "A reaches its own gateway")
        let addB = try bed.run("ADD", cid: "cb", ns: b, ip: "10.71.2.2", bridge: "fwbr2", keys: #","ingressPolicy":"same-bridge""#)
        #expect(addB.exitCode == 0, "\(msg(addB))")
        #expect(!bed.ping(a, "10.71.2.2"), "isolated bridges do not reach each other")
        #expect(!bed.ping(b, "10.71.1.2"))
        let listing = bed.nft("list", "table", "inet", "swift_cni_firewall")
        #expect(
            listing.contains("jump CNI-ADMIN") && listing.contains("ip saddr vmap @from4")
                && listing.contains("ct state established,related ip daddr vmap @from4"))
        #expect(listing.contains("10.71.1.2 comment") && listing.contains("10.71.2.2 comment"))
        let fw = Firewall.networkChain("fw")
        #expect(listing.contains(": jump \(fw)") && listing.contains("chain \(fw) {\n\t\taccept"), "\(listing)")

        #expect(try bed.run("CHECK", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1").exitCode == 0)

        // An administrator's rule in CNI-ADMIN runs first and is never touched by the plugin.
        _ = bed.nft("add", "rule", "inet", "swift_cni_firewall", "CNI-ADMIN", "ip", "saddr", "10.71.1.0/24", "ip", "daddr", "10.71.1.1", "counter")
        #expect(try bed.run("DEL", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1").exitCode == 0)
        #expect(!bed.nft("list", "map", "inet", "swift_cni_firewall", "from4").contains("10.71.1.2"))
        #expect(bed.nft("list", "chain", "inet", "swift_cni_firewall", "CNI-ADMIN").contains("ip daddr 10.71.1.1 counter"), "admin rule kept")
        let check = try bed.run("CHECK", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1")
        #expect(code(check) == 108, "\(msg(check))")
        #expect(try bed.run("DEL", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1").exitCode == 0, "DEL again")
    }

    @Test func openPolicyLeavesBridgesConnectedAndGCRemovesWhatIsNotValid() throws {
        let bed = Bed()
        let a = bed.container("a", bridge: "fwbr1", address: "10.71.1.2")
        let b = bed.container("b", bridge: "fwbr2", address: "10.71.2.2")
        #expect(try bed.run("ADD", cid: "ca", ns: a, ip: "10.71.1.2", bridge: "fwbr1").exitCode == 0)
        #expect(try bed.run("ADD", cid: "cb", ns: b, ip: "10.71.2.2", bridge: "fwbr2").exitCode == 0)
        // The accepted path is taken: a counter on it moves with A's forwarded traffic.
        _ = bed.nft("insert", "rule", "inet", "swift_cni_firewall", Firewall.networkChain("fw"), "counter")
        #expect(bed.ping(a, "10.71.2.2"), "open: bridges reach each other")
        #expect(
            bed.nft("list", "chain", "inet", "swift_cni_firewall", Firewall.networkChain("fw")).contains("counter packets 2 "), "request and reply accepted")
        // GC with only B valid.
        let gc = Array(#"{"cniVersion":"1.1.0","name":"fw","type":"firewall","cni.dev/valid-attachments":[{"containerID":"cb","ifname":"eth0"}]}"#.utf8)
        let o = try NetworkNamespace(path: "/run/netns/\(bed.host)").perform {
            PluginMain.run(FirewallPlugin(), environment: ["CNI_COMMAND": "GC", "CNI_PATH": "/x"], readStdin: { gc }, log: { _ in })
        }
        #expect(o.exitCode == 0, "\(msg(o))")
        let left = bed.nft("list", "map", "inet", "swift_cni_firewall", "from4")
        #expect(!left.contains("10.71.1.2") && left.contains("10.71.2.2"))
    }

    @Test(
        arguments: [
            (#","backend":"firewalld""#, 2, "firewalld"),
            (#","backend":"ebtables""#, 7, "backend"),
            (#","ingressPolicy":"closed""#, 7, "ingressPolicy"),
            (#","iptablesAdminChainName":"bad name""#, 7, "iptablesAdminChainName"),
        ] as [(String, UInt, String)])
    func refused(_ keys: String, _ expected: UInt, _ named: String) throws {
        let bed = Bed()
        let o = try bed.run("ADD", cid: "c1", ns: bed.host, ip: "10.71.1.9", bridge: "fwbr1", keys: keys)
        #expect(code(o) == expected && msg(o).contains(named), "\(msg(o))")
        #expect(bed.nft("list", "tables").isEmpty, "nothing made")
    }
}
