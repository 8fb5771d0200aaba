import Base
import CNI
import Foundation
import Netlink
import PortmapPlugin
import TestSupport
import Testing

let prev = """
    {"cniVersion":"1.1.0","interfaces":[{"name":"br0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/x"}],
     "ips":[{"address":"10.61.0.2/24","gateway":"10.61.0.1","interface":2},{"address":"fd00:61::2/64","interface":2},
            {"address":"10.99.0.9/24","interface":0}]}
    """

func conf(_ extra: String = "", mappings: String = #"[{"hostPort":8080,"containerPort":80}]"#, prevResult: String? = prev) -> String {
    let c =
        #"{"cniVersion":"1.1.0","name":"web","type":"portmap","capabilities":{"portMappings":true}"#
        + extra + #","runtimeConfig":{"portMappings":\#(mappings)}}"#
    return prevResult.map { withPrev(c, $0) } ?? c
}

func run(_ command: String, _ stdin: String, cid: String = "c1", in netns: String? = nil) throws -> PluginOutcome {
    let env = ["CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x", "CNI_PATH": "/nonexistent"]
    let bytes = Array(stdin.utf8)
    let body = { PluginMain.run(PortmapPlugin(), environment: env, readStdin: { bytes }, log: { _ in }) }
    guard let netns else { return body() }
    return try NetworkNamespace(path: "/run/netns/\(netns)").perform(body)
}

/// As root, a throwaway namespace for runs that must not touch the kernel: should one do so by
/// mistake, the machine's own tables stay untouched.
final class Sandbox {
    let name: String? = getuid() == 0 ? "swcni-pmc-\(getpid())-\(Int.random(in: 0...99999))" : nil
    init() { if let name { sh("ip", "netns", "add", name) } }
    deinit { if let name { sh("ip", "netns", "del", name) } }
}

/// Configuration errors: each is refused before any kernel call, with the code and the field.
@Suite struct PortmapConfigTests {
    let sandbox = Sandbox()

    @Test(
        arguments: [
            (conf(#","snat":"yes""#), 6, "snat"),
            (conf(mappings: #"[{"hostPort":0,"containerPort":80}]"#), 7, "runtimeConfig.portMappings[0].hostPort"),
            (conf(mappings: #"[{"hostPort":8080,"containerPort":70000}]"#), 7, "runtimeConfig.portMappings[0].containerPort"),
            (conf(mappings: #"[{"hostPort":"8080","containerPort":80}]"#), 6, "runtimeConfig.portMappings[0].hostPort"),
            (conf(mappings: #"[{"containerPort":80}]"#), 7, "runtimeConfig.portMappings[0].hostPort"),
            (conf(mappings: #"[{"hostPort":8080,"containerPort":80,"protocol":"icmp"}]"#), 7, "runtimeConfig.portMappings[0].protocol"),
            (conf(mappings: #"[{"hostPort":8080,"containerPort":80,"hostIP":"10.0.0.300"}]"#), 7, "runtimeConfig.portMappings[0].hostIP"),
            (conf(mappings: #"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81}]"#), 7, "8080/tcp is given twice"),
            (conf(mappings: #"{"hostPort":8080}"#), 6, "runtimeConfig.portMappings"),
            (conf(#","conditionsV4":["-s","1.2.3.4"]"#), 2, "conditionsV4"),
            (conf(#","markMasqBit":40"#), 7, "markMasqBit"),
            (conf(#","markMasqBit":13,"externalSetMarkChain":"KUBE-MARK-MASQ""#), 7, "externalSetMarkChain"),
            (conf(#","backend":"ebtables""#), 7, "backend"),
            (conf(prevResult: nil), 7, "chained plugin"),
            (
                conf(prevResult: #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth1","sandbox":"/x"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}"#),
                7, "no address for eth0"
            ),
        ] as [(String, UInt, String)])
    func refused(_ stdin: String, _ expected: UInt, _ named: String) throws {
        let o = try run("ADD", stdin, in: sandbox.name)
        #expect(code(o) == expected, "\(msg(o))")
        #expect(msg(o).contains(named), "\(msg(o))")
    }

    @Test func sameMappingTwiceIsOneMappingAndTheIptablesKnobsAreAccepted() throws {
        // Parsed only: markMasqBit alone, backend iptables, empty conditions are fine. Without
        // mappings ADD prints prevResult and touches nothing (no root needed).
        let o = try run("ADD", conf(#","markMasqBit":13,"backend":"iptables","conditionsV4":[]"#, mappings: "[]"), in: sandbox.name)
        #expect(o.exitCode == 0, "\(msg(o))")
        let out = try JSONValue.parse(o.stdout), expected = try JSONValue.parse(prev)
        #expect(out.objectValue?["ips"] == expected.objectValue?["ips"])
        #expect(out.objectValue?["interfaces"] == expected.objectValue?["interfaces"])
        if let n = sandbox.name { #expect(sh("ip", "netns", "exec", n, "nft", "list", "tables").out.isEmpty, "no table without mappings") }
    }
}

/// The plugin against the kernel, in-process inside a throwaway "host" namespace.
@Suite(.serialized, .enabled(if: TestSupport.canCreateNetns(needsNft: true), "needs root and nft"))
struct PortmapKernelTests {
    final class Host {
        let name = "swcni-pmk-\(getpid())-\(Int.random(in: 0...99999))"
        init() {
            sh("ip", "netns", "add", name)
            // A bridge that routes to the container subnet, as the bridge plugin leaves it.
            sh("ip", "-n", name, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", name, "addr", "add", "10.61.0.1/24", "dev", "br0")
            sh("ip", "-n", name, "link", "set", "br0", "up")
        }
        deinit { sh("ip", "netns", "del", name) }
        func nft(_ args: String...) -> String { sh(["ip", "netns", "exec", name, "nft"] + args).out }
    }

    @Test func addCheckDelGCStatus() throws {
        let h = Host()
        let m =
            #"[{"hostPort":8080,"containerPort":80},{"hostPort":5300,"containerPort":53,"protocol":"UDP"},{"hostPort":9000,"containerPort":9000,"protocol":"sctp"}]"#
        let add = try run("ADD", conf(mappings: m), in: h.name)
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(try JSONValue.parse(add.stdout).objectValue?["ips"] == JSONValue.parse(prev).objectValue?["ips"], "prevResult passes through")
        let t = h.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(t.contains("tcp . 8080 comment") && t.contains(": 10.61.0.2 . 80"))
        #expect(t.contains("udp . 5300 comment") && t.contains(": fd00:61::2 . 53"))
        #expect(t.contains("sctp . 9000 comment"), "SCTP mappings are accepted (this kernel has no SCTP to carry them)")
        #expect(!t.contains("10.99.0.9"), "an address of a host interface is not the container's")
        #expect(sh("ip", "netns", "exec", h.name, "sysctl", "-n", "net.ipv4.conf.br0.route_localnet").out.hasPrefix("1"))
        #expect(try run("CHECK", conf(mappings: m), in: h.name).exitCode == 0)
        #expect(try run("STATUS", conf(prevResult: nil), in: h.name).exitCode == 0)

        // Another container asking for 8080: 107, naming the owner; nothing of it stays.
        let other = try run("ADD", conf(prevResult: prev.replacingOccurrences(of: "10.61.0.2", with: "10.61.0.3")), cid: "c2", in: h.name)
        #expect(code(other) == 107 && msg(other).contains("8080/tcp is already mapped to container c1 (eth0)"), "\(msg(other))")
        #expect(!h.nft("list", "table", "inet", "swift_cni_portmap").contains("10.61.0.3"))

        // CHECK fails once an element is gone; DEL (no prevResult needed) removes all, twice.
        _ = h.nft("delete", "element", "inet", "swift_cni_portmap", "dnat4", "{ udp . 5300 }")
        let check = try run("CHECK", conf(mappings: m), in: h.name)
        #expect(code(check) == 108 && msg(check).contains("5300/udp"), "\(msg(check))")
        for _ in 0..<2 { #expect(try run("DEL", conf(mappings: "[]", prevResult: nil), in: h.name).exitCode == 0) }
        #expect(!h.nft("list", "table", "inet", "swift_cni_portmap").contains("comment"))

        // GC: c3 is not in the valid list, c4 is.
        for (cid, ip) in [("c3", "10.61.0.3"), ("c4", "10.61.0.4")] {
            let p = try run(
                "ADD",
                conf(
                    mappings: #"[{"hostPort":\#(cid == "c3" ? 81 : 82),"containerPort":80}]"#,
                    prevResult: prev.replacingOccurrences(of: "10.61.0.2", with: ip)), cid: cid, in: h.name)
            #expect(p.exitCode == 0, "\(msg(p))")
        }
        let gcConf = withPrev(conf(mappings: "[]", prevResult: nil), "{}").replacingOccurrences(
            of: #""prevResult":{}"#, with: #""cni.dev/valid-attachments":[{"containerID":"c4","ifname":"eth0"}]"#)
        let gc = try run("GC", gcConf, in: h.name)
        #expect(gc.exitCode == 0, "\(msg(gc))")
        let left = h.nft("list", "table", "inet", "swift_cni_portmap")
        #expect(!left.contains("c3/eth0") && left.contains("c4/eth0"))
    }
}
