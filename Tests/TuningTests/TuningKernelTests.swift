import Base
import CNI
import Foundation
import Netlink
import TestSupport
import Testing
import TuningPlugin

/// The tuning plugin against a real namespace with a veth `eth0`, in-process.
@Suite(.serialized, .enabled(if: TestSupport.canCreateNetns(), "needs root to create network namespaces"))
struct TuningKernelTests {
    final class Bed {
        let ns = "swcni-tu-\(getpid())-\(Int.random(in: 0...99999))"
        let dir = NSTemporaryDirectory() + "swift-cni-tuning-\(getpid())-\(Int.random(in: 0...99999))"
        init() {
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "add", "eth0", "mtu", "1500", "type", "veth", "peer", "name", "peer0")
            sh("ip", "-n", ns, "link", "set", "eth0", "address", "02:00:00:00:00:01", "up")
        }
        deinit {
            sh("ip", "netns", "del", ns)
            try? FileManager.default.removeItem(atPath: dir)
        }
        var path: String { "/run/netns/\(ns)" }
        var eth0: [String: Any] { ipJSON(ns, "-d", "link", "show", "eth0").first ?? [:] }
        func sysctl(_ key: String) -> String {
            sh("ip", "netns", "exec", ns, "sysctl", "-n", key).out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func conf(_ keys: String) -> String {
            let prev =
                #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"\#(path)"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}"#
            return #"{"cniVersion":"1.1.0","name":"tn","type":"tuning","dataDir":"\#(dir)"\#(keys),"prevResult":\#(prev)}"#
        }
        func run(_ command: String, _ stdin: String, netns: String? = nil) -> PluginOutcome {
            let env = ["CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netns ?? path, "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"]
            let bytes = Array(stdin.utf8)
            return PluginMain.run(TuningPlugin(), environment: env, readStdin: { bytes }, log: { _ in })
        }
    }

    let keys =
        #","sysctl":{"net.core.somaxconn":"512","net/ipv4/conf/eth0/rp_filter":"2"},"mac":"02:00:00:00:00:aa","mtu":1400,"promisc":true,"allmulti":true,"txQLen":2000"#

    @Test func addTunesCheckVerifiesDelPutsTheInterfaceBack() throws {
        let bed = Bed()
        let before = bed.eth0
        let add = bed.run("ADD", bed.conf(keys))
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(bed.sysctl("net.core.somaxconn") == "512")
        #expect(bed.sysctl("net.ipv4.conf.eth0.rp_filter") == "2")
        let l = bed.eth0
        #expect(l["address"] as? String == "02:00:00:00:00:aa" && l["mtu"] as? Int == 1400 && l["txqlen"] as? Int == 2000)
        #expect((l["flags"] as? [String]).map { $0.contains("PROMISC") && $0.contains("ALLMULTI") && $0.contains("UP") } == true)
        let result = try CNIResult(json: JSONValue.parse(add.stdout))
        #expect(result.interfaces.first?.mac == "02:00:00:00:00:aa", "the result carries the new MAC")
        #expect(bed.run("CHECK", bed.conf(keys)).exitCode == 0)
        sh("ip", "-n", bed.ns, "link", "set", "eth0", "mtu", "1300")
        let check = bed.run("CHECK", bed.conf(keys))
        #expect(code(check) == 108 && msg(check).contains("MTU 1300"), "\(msg(check))")

        #expect(bed.run("DEL", bed.conf(keys)).exitCode == 0)
        let after = bed.eth0
        for k in ["address", "mtu", "txqlen"] { #expect("\(after[k] ?? "-")" == "\(before[k] ?? "-")", "\(k) put back") }
        #expect((after["flags"] as? [String]).map { !$0.contains("PROMISC") && !$0.contains("ALLMULTI") } == true)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: bed.dir)) == [], "the saved state is gone")
        #expect(bed.run("DEL", bed.conf(keys)).exitCode == 0, "DEL again")
    }

    /// A new MAC (podman's --mac-address, CNI_ARGS MAC=...) keeps what came before: the
    /// addresses (IPv6 too) and the routes, the default route included; and so does DEL putting
    /// the old MAC back.
    @Test func aMACChangeKeepsAddressesAndRoutes() throws {
        let bed = Bed()
        sh("ip", "-n", bed.ns, "link", "set", "peer0", "up")
        sh("ip", "-n", bed.ns, "addr", "add", "10.1.0.2/24", "dev", "eth0")
        sh("ip", "-n", bed.ns, "addr", "add", "fd00:1::2/64", "dev", "eth0", "nodad")
        sh("ip", "-n", bed.ns, "route", "add", "default", "via", "10.1.0.1", "dev", "eth0")
        sh("ip", "-n", bed.ns, "-6", "route", "add", "default", "via", "fd00:1::1", "dev", "eth0")
        func state() -> [String] {
            let a = sh("ip", "-n", bed.ns, "-br", "addr", "show", "eth0").out.split(separator: " ").filter { !$0.hasPrefix("fe80") && $0.contains("/") }
            let r = sh("ip", "-n", bed.ns, "route", "show", "default").out + sh("ip", "-n", bed.ns, "-6", "route", "show", "default").out
            return a.map(String.init).sorted() + r.split(separator: "\n").map { $0.split(separator: " ").prefix(5).joined(separator: " ") }.sorted()
        }
        let before = state()
        #expect(before.count == 4, "\(before)")
        let add = bed.run("ADD", bed.conf(#","mac":"02:00:00:00:00:bb""#))
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(bed.eth0["address"] as? String == "02:00:00:00:00:bb")
        #expect(state() == before, "addresses and routes after ADD")
        #expect(bed.run("DEL", bed.conf(#","mac":"02:00:00:00:00:bb""#)).exitCode == 0)
        #expect(bed.eth0["address"] as? String == "02:00:00:00:00:01")
        #expect(state() == before, "addresses and routes after DEL")
    }

    @Test func aFailedAddChangesNothingOnTheLink() throws {
        let bed = Bed()
        // A sysctl that does not exist fails before any change to the link: nothing saved.
        let o = bed.run("ADD", bed.conf(#","sysctl":{"net.ipv4.no_such_knob":"1"},"mtu":1400"#))
        #expect(code(o) == 7 && msg(o).contains("net.ipv4.no_such_knob"), "\(msg(o))")
        #expect(bed.eth0["mtu"] as? Int == 1500)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: bed.dir)) ?? [] == [])
    }

    @Test(
        arguments: [
            (#","sysctl":{"kernel.hostname":"x"}"#, 7, "net.*"),
            (#","sysctl":{"net/../../kernel/hostname":"x"}"#, 7, "not a sysctl name"),
            (#","sysctl":{"net.core.somaxconn":512}"#, 6, "sysctl.net.core.somaxconn"),
            (#","mac":"01:00:5e:00:00:01""#, 7, "multicast"),
            (#","mac":"zz""#, 7, "mac"),
            (#","mtu":20"#, 7, "mtu"),
            (#","dataDir":"run/tuning""#, 7, "dataDir"),
        ] as [(String, UInt, String)])
    func refused(_ keys: String, _ expected: UInt, _ named: String) {
        let bed = Bed()
        let o = bed.run("ADD", bed.conf(keys))
        #expect(code(o) == expected && msg(o).contains(named), "\(msg(o))")
    }

    @Test func withoutPrevResultItIsAChainedPluginError() {
        let bed = Bed()
        let o = bed.run("ADD", #"{"cniVersion":"1.1.0","name":"tn","type":"tuning"}"#)
        #expect(code(o) == 7 && msg(o).contains("chained"), "\(msg(o))")
    }
}
