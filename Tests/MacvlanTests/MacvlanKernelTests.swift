import Base
import CNI
import Foundation
import MacvlanPlugin
import Netlink
import TestSupport
import Testing

let canCreateNetns = TestSupport.canCreateNetns()

/// A fake host namespace with a master (one end of a veth pair: this kernel has no dummy links),
/// container namespaces, a private IPAM store and our host-local on CNI_PATH.
final class MBed {
    nonisolated(unsafe) static var counter = 0
    let id: Int
    let host: String
    var containers: [String] = []
    let dir: String

    init() throws {
        MBed.counter += 1
        id = MBed.counter
        host = "swcni-mh-\(getpid())-\(id)"
        dir = NSTemporaryDirectory() + "swift-cni-macvlan-\(getpid())-\(id)"
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/bin/host-local", withDestinationPath: try builtPluginBinary())
        sh("ip", "netns", "add", host)
        sh("ip", "-n", host, "link", "add", "master0", "mtu", "1400", "type", "veth", "peer", "name", "wire0")
        sh("ip", "-n", host, "link", "set", "master0", "up")
        sh("ip", "-n", host, "link", "set", "wire0", "up")
    }

    func container(_ tag: String) -> String {
        let n = "swcni-mc\(tag)-\(getpid())-\(id)"
        sh("ip", "netns", "add", n)
        containers.append(n)
        return n
    }

    func remove() {
        for c in containers { sh("ip", "netns", "del", c) }
        sh("ip", "netns", "del", host)
        try? FileManager.default.removeItem(atPath: dir)
    }

    func conf(_ v: CNIVersion = .v1_1_0, _ extra: String = #","master":"master0""#, routes: String = "") -> String {
        #"{"cniVersion":"\#(v.rawValue)","name":"mnet","type":"macvlan"\#(extra),"ipam":{"type":"host-local","ranges":[[{"subnet":"10.85.0.0/24"}]]\#(routes),"dataDir":"\#(dir)/ipam"}}"#
    }

    func run(_ command: String, _ ctr: String?, cid: String = "c1", conf: String, env extra: [String: String] = [:]) throws -> PluginOutcome {
        var env = ["CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0", "CNI_PATH": dir + "/bin"]
        if let ctr { env["CNI_NETNS"] = "/run/netns/\(ctr)" }
        for (k, v) in extra { env[k] = v }
        let stdin = Array(conf.utf8)
        return try NetworkNamespace(path: "/run/netns/\(host)").perform {
            PluginMain.run(MacvlanPlugin(), environment: env, readStdin: { stdin }, log: { _ in })
        }
    }

    func store() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/mnet")) ?? []).filter { $0 != ".swift-cni" }.sorted()
    }
}

func macvlanInfo(_ ns: String) -> [String: Any]? {
    ((ipJSON(ns, "-d", "link", "show", "dev", "eth0").first?["linkinfo"] as? [String: Any])?["info_data"] as? [String: Any])
}

@Suite(.serialized, .enabled(if: canCreateNetns, "needs root to create network namespaces"))
struct MacvlanKernelTests {
    @Test(arguments: CNIVersion.allSupported)
    func addCheckDelEveryVersion(_ v: CNIVersion) throws {
        let bed = try MBed()
        defer { bed.remove() }
        let ctr = bed.container("a")
        let conf = bed.conf(v, #","master":"master0","mtu":1300,"bcqueuelen":500"#)
        let add = try bed.run("ADD", ctr, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(try JSONValue.parse(add.stdout).objectValue?["cniVersion"] == .string(v.rawValue))
        let r = try CNIResult(json: JSONValue.parse(add.stdout))
        #expect(r.ips.first?.address.description == "10.85.0.2/24")
        if v >= .v0_3_0 {
            #expect(r.interfaces.count == 1 && r.interfaces[0].name == "eth0" && r.interfaces[0].sandbox == "/run/netns/\(ctr)")
            #expect(r.ips.first?.interface == 0)
        }
        let eth0 = try #require(ipJSON(ctr, "-d", "addr", "show", "dev", "eth0").first)
        #expect(eth0["mtu"] as? Int == 1300)
        #expect(((eth0["addr_info"] as? [[String: Any]]) ?? []).contains { $0["local"] as? String == "10.85.0.2" })
        #expect(macvlanInfo(ctr)?["mode"] as? String == "bridge")
        #expect(macvlanInfo(ctr)?["bcqueuelen"] as? Int == 500)
        #expect(ipJSON(bed.host, "link", "show", "type", "macvlan").isEmpty, "nothing on the host")
        #expect(sh("ip", "netns", "exec", ctr, "sysctl", "-n", "net.ipv4.conf.eth0.arp_notify").out.hasPrefix("1"))
        if v >= .v0_4_0 {
            let check = try bed.run("CHECK", ctr, conf: withPrev(conf, add.stdout))
            #expect(check.exitCode == 0, "\(msg(check))")
        }
        #expect(try bed.run("DEL", ctr, conf: conf).exitCode == 0)
        #expect(ipJSON(ctr, "link", "show", "dev", "eth0").isEmpty)
        #expect(bed.store() == ["last_reserved_ip.0", "lock"])
        #expect(try bed.run("DEL", ctr, conf: conf).exitCode == 0, "idempotent")
        sh("ip", "netns", "del", ctr)
        #expect(try bed.run("DEL", ctr, conf: conf).exitCode == 0, "netns gone")
    }

    /// Two macvlan networks on one container, each with a default route (added eth1 first): both
    /// ADDs succeed, eth0's route wins by its metric, and a DEL of eth0 leaves eth1's.
    @Test func secondInterfaceGetsItsOwnDefaultRoute() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let ctr = bed.container("2")
        func net(_ n: Int) -> String {
            #"{"cniVersion":"1.1.0","name":"mnet\#(n)","type":"macvlan","master":"master0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.8\#(4 + n).0.0/24"}],[{"subnet":"fd8\#(4 + n)::/64"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}],"dataDir":"\#(bed.dir)/ipam"}}"#
        }
        for (ifName, n) in [("eth1", 2), ("eth0", 1)] {
            let add = try bed.run("ADD", ctr, conf: net(n), env: ["CNI_IFNAME": ifName])
            #expect(add.exitCode == 0, "ADD \(ifName): \(msg(add))")
        }
        func defaults(_ f: String) -> [String] {
            ipJSON(ctr, f, "route", "show", "default").map { "\($0["dev"] as? String ?? "?") \($0["metric"] as? Int ?? 0)" }.sorted()
        }
        #expect(defaults("-4") == ["eth0 100", "eth1 101"])
        #expect(defaults("-6") == ["eth0 100", "eth1 101"])
        #expect(try bed.run("DEL", ctr, conf: net(1), env: ["CNI_IFNAME": "eth0"]).exitCode == 0)
        #expect(defaults("-4") == ["eth1 101"] && defaults("-6") == ["eth1 101"])
        #expect(try bed.run("DEL", ctr, conf: net(2), env: ["CNI_IFNAME": "eth1"]).exitCode == 0)
    }

    @Test func bridgeModeContainersTalkPrivateModeOnesDoNot() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let a = bed.container("a"), b = bed.container("b")
        #expect(try bed.run("ADD", a, cid: "a", conf: bed.conf()).exitCode == 0)
        #expect(try bed.run("ADD", b, cid: "b", conf: bed.conf()).exitCode == 0)
        #expect(sh("ip", "netns", "exec", a, "ping", "-c1", "-W2", "10.85.0.3").status == 0, "bridge mode")
        #expect(try bed.run("DEL", a, cid: "a", conf: bed.conf()).exitCode == 0)
        #expect(try bed.run("DEL", b, cid: "b", conf: bed.conf()).exitCode == 0)
        let priv = bed.conf(.v1_1_0, #","master":"master0","mode":"private""#)
        #expect(try bed.run("ADD", a, cid: "a", conf: priv).exitCode == 0)
        #expect(try bed.run("ADD", b, cid: "b", conf: priv).exitCode == 0)
        #expect(macvlanInfo(a)?["mode"] as? String == "private")
        #expect(sh("ip", "netns", "exec", a, "ping", "-c1", "-W1", "10.85.0.5").status != 0, "private mode")
    }

    @Test func passthruTakesTheMaster() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let a = bed.container("p"), b = bed.container("q")
        let conf = bed.conf(.v1_1_0, #","master":"master0","mode":"passthru""#)
        let add = try bed.run("ADD", a, cid: "a", conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(macvlanInfo(a)?["mode"] as? String == "passthru")
        let second = try bed.run("ADD", b, cid: "b", conf: conf)
        #expect(code(second) == 103, "the master is taken: \(msg(second))")
        #expect(bed.store().filter { $0.hasPrefix("10.") } == ["10.85.0.2"], "the second ADD allocated nothing")
    }

    @Test func macFromEverySource() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let c = bed.container("m")
        let cases: [(String, [String: String], String)] = [
            (#","master":"master0","mac":"02:33:00:00:00:01""#, [:], "02:33:00:00:00:01"),
            (#","master":"master0","mac":"02:33:00:00:00:01""#, ["CNI_ARGS": "MAC=02:33:00:00:00:02"], "02:33:00:00:00:02"),
            (#","master":"master0","runtimeConfig":{"mac":"02:33:00:00:00:03"}"#, ["CNI_ARGS": "MAC=02:33:00:00:00:02"], "02:33:00:00:00:03"),
        ]
        for (extra, env, want) in cases {
            let conf = bed.conf(.v1_1_0, extra)
            let add = try bed.run("ADD", c, conf: conf, env: env)
            #expect(add.exitCode == 0, "\(msg(add))")
            #expect(ipJSON(c, "link", "show", "dev", "eth0").first?["address"] as? String == want)
            #expect(try bed.run("CHECK", c, conf: withPrev(conf, add.stdout), env: env).exitCode == 0)
            #expect(try bed.run("DEL", c, conf: conf, env: env).exitCode == 0)
        }
    }

    @Test func clearErrorsAndNothingLeftBehind() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let c = bed.container("e")
        let tooBig = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, #","master":"master0","mtu":9000"#))
        #expect(code(tooBig) == 7 && msg(tooBig).contains("1400, the MTU of master \"master0\""))
        let missing = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, #","master":"nosuch0""#))
        #expect(code(missing) == 7 && msg(missing).contains("master \"nosuch0\" not found"))
        #expect(code(try bed.run("ADD", c, conf: bed.conf(.v1_1_0, #","master":"master0","mode":"fast""#))) == 7)
        // No default route in the host namespace: no master to take.
        let noDefault = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, ""))
        #expect(code(noDefault) == 7 && msg(noDefault).contains("no default route"))
        // ADD failing after IPAM (a route whose gateway is unreachable): the address is released and
        // the interface deleted.
        let late = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, routes: #","routes":[{"dst":"10.99.0.0/16","gw":"192.0.2.1"}]"#))
        #expect(code(late) == 103, "\(msg(late))")
        #expect(ipJSON(c, "link", "show", "dev", "eth0").isEmpty)
        #expect(ipJSON(c, "link", "show").count == 1, "only lo: no temporary link left")
        #expect(bed.store() == ["last_reserved_ip.0", "lock"])
        // The default-route interface is taken when master is not given.
        sh("ip", "-n", bed.host, "addr", "add", "192.168.77.1/24", "dev", "master0")
        sh("ip", "-n", bed.host, "route", "add", "default", "via", "192.168.77.254")
        let byRoute = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, ""))
        #expect(byRoute.exitCode == 0, "\(msg(byRoute))")
    }

    /// A master the kernel cannot put a macvlan on is refused before IPAM runs: nothing is
    /// reserved, not even host-local's cursor moves (its store is never created).
    @Test func unusableMasterIsRefusedBeforeIPAM() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let c = bed.container("u")
        sh("ip", "-n", bed.host, "link", "add", "brm0", "type", "bridge")
        sh("ip", "-n", bed.host, "link", "add", "port0", "type", "veth", "peer", "name", "port0p")
        sh("ip", "-n", bed.host, "link", "set", "port0", "master", "brm0")
        sh("ip", "-n", bed.host, "tuntap", "add", "tun0", "mode", "tun")
        for (master, why) in [
            ("lo", "is a loopback device"), ("port0", "is a port of bridge \"brm0\""), ("tun0", "is not an Ethernet device"),
        ] {
            let o = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, #","master":"\#(master)""#))
            #expect(code(o) == 7 && msg(o).contains("invalid master \"\(master)\"") && msg(o).contains(why), "\(master): \(msg(o))")
        }
        #expect(!FileManager.default.fileExists(atPath: bed.dir + "/ipam"), "IPAM never ran")
        #expect(ipJSON(c, "link", "show").count == 1, "only lo in the container")
        // The bridge itself carries one.
        let ok = try bed.run("ADD", c, conf: bed.conf(.v1_1_0, #","master":"brm0""#))
        #expect(ok.exitCode == 0, "\(msg(ok))")
    }

    @Test func chainedWithoutMasterTakesTheHostInterfaceOfPrevResult() throws {
        let bed = try MBed()
        defer { bed.remove() }
        let c = bed.container("h")
        let prev = #"{"cniVersion":"1.1.0","interfaces":[{"name":"master0"}]}"#
        let conf = withPrev(bed.conf(.v1_1_0, ""), prev)
        let add = try bed.run("ADD", c, conf: conf)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(try bed.run("DEL", c, conf: conf).exitCode == 0)
    }
}
