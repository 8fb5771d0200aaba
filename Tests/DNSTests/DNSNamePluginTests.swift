import Base
import CNI
import DNSNamePlugin
import TestSupport
import Testing

/// The dnsname plugin refuses bad input before touching anything (the e2e script covers the rest).
@Suite struct DNSNameConfigTests {
    static let prev =
        #"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.93.0.2/24","gateway":"10.93.0.1","interface":0}]}"#

    func run(_ extra: String, prev: String? = DNSNameConfigTests.prev, args: String = "K8S_POD_NAME=alpha", runtime: String = "{}") -> PluginOutcome {
        var conf = #"{"cniVersion":"1.0.0","name":"web","type":"dnsname","runDir":"/nonexistent/swift-cni-test"\#(extra),"runtimeConfig":\#(runtime)}"#
        if let prev { conf = withPrev(conf, prev) }
        let env = [
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "0123456789abcdef", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x",
            "CNI_PATH": "/nonexistent", "CNI_ARGS": "IgnoreUnknown=1;" + args,
        ]
        let bytes = Array(conf.utf8)
        return PluginMain.run(DNSNamePlugin(), environment: env, readStdin: { bytes }, log: { _ in })
    }

    @Test func refusals() {
        let cases: [(PluginOutcome, UInt, String)] = [
            (run("", prev: nil), 7, "chained plugin"),
            (run("", prev: #"{"cniVersion":"1.0.0","ips":[{"address":"10.93.0.2/24"}]}"#), 7, "no gateway"),
            (run("", args: "K8S_POD_NAME=bad name!"), 7, "CNI_ARGS K8S_POD_NAME"),
            (run("", runtime: #"{"aliases":{"web":["a..b"]}}"#), 7, "runtimeConfig.aliases.web[0]"),
            (run("", runtime: #"{"aliases":{"web":"x"}}"#), 6, "aliases.web"),
            (run(#","domainName":"bad domain""#), 7, "domainName"),
            (run(#","runDir":"relative/dir""#), 7, "runDir"),
            (run(#","ttl":-1"#), 7, "ttl"),
            (run(#","ttl":"x""#), 6, "ttl"),
            (run(#","upstreams":["nope"]"#), 7, "upstreams[0]"),
        ]
        for (o, want, mention) in cases {
            #expect(code(o) == want, "\(mention): \(msg(o))")
            #expect(msg(o).contains(mention), "\(msg(o))")
        }
    }
}
