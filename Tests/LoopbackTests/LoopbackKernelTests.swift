import Base
import CNI
import Foundation
import LoopbackPlugin
import Netlink
import TestSupport
import Testing

/// The loopback plugin against a real namespace, in-process as the dispatcher runs it.
@Suite(.serialized, .enabled(if: TestSupport.canCreateNetns(), "needs root to create network namespaces"))
struct LoopbackKernelTests {
    final class NS {
        let name = "swcni-lo-\(getpid())-\(Int.random(in: 0...99999))"
        init() { sh("ip", "netns", "add", name) }  // lo starts down
        deinit { sh("ip", "netns", "del", name) }
        var path: String { "/run/netns/\(name)" }
        var loUp: Bool { (ipJSON(name, "link", "show", "lo").first?["flags"] as? [String])?.contains("UP") ?? false }
    }

    func run(_ command: String, _ ns: String, version: String = "1.1.0", extra: String = "", ifName: String = "lo") -> PluginOutcome {
        let env = ["CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": ns, "CNI_IFNAME": ifName, "CNI_PATH": "/nonexistent"]
        let conf = Array(#"{"cniVersion":"\#(version)","name":"lo","type":"loopback"\#(extra)}"#.utf8)
        return PluginMain.run(LoopbackPlugin(), environment: env, readStdin: { conf }, log: { _ in })
    }

    @Test func addBringsLoUpWithItsAddressesCheckAndDelUndo() throws {
        let ns = NS()
        #expect(!ns.loUp)
        let add = run("ADD", ns.path, ifName: "eth0")  // the interface is lo whatever CNI_IFNAME says
        #expect(add.exitCode == 0, "\(msg(add))")
        #expect(ns.loUp)
        let r = try CNIResult(json: JSONValue.parse(add.stdout))
        #expect(r.interfaces.map(\.name) == ["lo"])
        #expect(r.interfaces.first?.mac == "00:00:00:00:00:00" && r.interfaces.first?.sandbox == ns.path)
        #expect(r.ips.map(\.address.description) == ["127.0.0.1/8", "::1/128"])
        #expect(run("CHECK", ns.path, extra: #","prevResult":\#(add.stdout)"#).exitCode == 0)
        #expect(sh("ip", "netns", "exec", ns.name, "ping", "-c1", "-W1", "127.0.0.1").status == 0, "lo carries traffic")
        #expect(run("DEL", ns.path).exitCode == 0)
        #expect(!ns.loUp)
        let check = run("CHECK", ns.path, extra: #","prevResult":\#(add.stdout)"#)
        #expect(code(check) == 108, "\(msg(check))")
    }

    @Test func chainedItPassesPrevResultThroughInEveryVersion() throws {
        let ns = NS()
        for v in ["0.3.1", "0.4.0", "1.0.0"] {
            let prev = #"{"cniVersion":"\#(v)","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.1.0.2/24","interface":0}]}"#
            let o = run("ADD", ns.path, version: v, extra: #","prevResult":\#(prev)"#)
            #expect(o.exitCode == 0, "\(msg(o))")
            #expect(try CNIResult(json: JSONValue.parse(o.stdout)).ips.map(\.address.description) == ["10.1.0.2/24"], "\(v)")
        }
        #expect(ns.loUp)
    }

    @Test func delOfAGoneOrEmptyNamespaceSucceedsAddOfAMissingOneIsCode3() {
        #expect(run("DEL", "/run/netns/swcni-lo-gone-\(getpid())").exitCode == 0)
        #expect(run("DEL", "").exitCode == 0, "no namespace (ctr deletes so after the task is gone)")
        #expect(code(run("ADD", "/run/netns/swcni-lo-gone-\(getpid())")) == 3)
    }
}
