import Base
import CNI
import PluginKit
import Testing

@Suite struct DispatchTests {
    @Test(arguments: CNIVersion.allSupported)
    func addAnswersInTheConfigVersion(_ v: CNIVersion) throws {
        let o = run(EchoPlugin(), env("ADD"), conf(v.rawValue))
        #expect(o.exitCode == 0)
        let doc = json(o.stdout)
        #expect(doc.objectValue?["cniVersion"] == .string(v.rawValue))
        #expect(try doc == EchoPlugin().result.json(version: v))
    }

    @Test func missingCNIVersionMeans010() {
        let o = run(EchoPlugin(), env("ADD"), Array(#"{"name":"n"}"#.utf8))
        #expect(o.exitCode == 0)
        #expect(json(o.stdout).objectValue?["ip4"] != nil)
        #expect(json(o.stdout).objectValue?["cniVersion"] == .string("0.1.0"))
    }

    @Test func versionListsAllSevenAndEchoesTheRequestedVersion() {
        let all = #"["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#
        let o = run(EchoPlugin(), ["CNI_COMMAND": "VERSION"], Array(#"{"cniVersion":"0.4.0"}"#.utf8))
        #expect(o.stdout == #"{"cniVersion":"0.4.0","supportedVersions":\#(all)}"# + "\n")
        let empty = run(EchoPlugin(), ["CNI_COMMAND": "VERSION"], [])
        #expect(empty.stdout == #"{"cniVersion":"1.1.0","supportedVersions":\#(all)}"# + "\n")
        // Garbage stdin is ignored on VERSION, as the Go library does.
        #expect(run(EchoPlugin(), ["CNI_COMMAND": "VERSION"], [0xFF, 0x00]).exitCode == 0)
    }

    @Test(arguments: ["0.5.0", "2.0.0", "1.1", "abc", ""])
    func unsupportedVersionIsCode1(_ version: String) throws {
        let err = try #require(errorOf(run(EchoPlugin(), env("ADD"), conf(version))))
        #expect(err.code == .incompatibleVersion)
        #expect(err.details.contains("\"\(version)\""))
    }

    @Test(arguments: CNIVersion.allSupported)
    func verbGates(_ v: CNIVersion) throws {
        for (command, minimum) in [("CHECK", CNIVersion.v0_4_0), ("GC", .v1_1_0), ("STATUS", .v1_1_0)] {
            let o = run(EchoPlugin(), env(command), conf(v.rawValue))
            if v >= minimum {
                #expect(o == PluginOutcome(exitCode: 0, stdout: ""), "\(command) at \(v)")
            } else {
                let err = try #require(errorOf(o))
                #expect(err.code == .incompatibleVersion, "\(command) at \(v)")
                #expect(err.msg == "config version does not allow \(command)")
            }
        }
        #expect(run(EchoPlugin(), env("DEL"), conf(v.rawValue)) == PluginOutcome(exitCode: 0, stdout: ""))
    }

    @Test func pluginErrorsAreReportedWithCodeAndVersion() throws {
        let plugin = EchoPlugin(failWith: CNIError(.addressUnavailable, "no addresses", details: "range set 0"))
        let o = run(plugin, env("ADD"), conf("0.4.0"))
        #expect(o.exitCode == 1)
        #expect(o.stdout == #"{"cniVersion":"0.4.0","code":106,"msg":"no addresses","details":"range set 0"}"# + "\n")
    }

    @Test func resultNotExpressibleInConfigVersionIsCode1() throws {
        var plugin = EchoPlugin()
        plugin.result.ips.append(.init(address: IPPrefix("10.1.0.3/24")!, interface: 0))
        let err = try #require(errorOf(run(plugin, env("ADD"), conf("0.2.0"))))
        #expect(err.code == .incompatibleVersion)
    }

    @Test func networkNameIsValidated() throws {
        for name in ["", "../x", "a/b", ".hidden", "a b", String(repeating: "a", count: 201)] {
            let stdin = Array(#"{"cniVersion":"1.0.0","name":"\#(name)"}"#.utf8)
            let err = try #require(errorOf(run(EchoPlugin(), env("ADD"), stdin)), "\(name)")
            #expect(err.code == .invalidNetworkConfig, "\(name)")
        }
        let missing = try #require(errorOf(run(EchoPlugin(), env("ADD"), Array(#"{"cniVersion":"1.0.0"}"#.utf8))))
        #expect(missing.msg == "missing network name")
    }

    @Test func wrongTypesAreCode6NamingTheField() throws {
        let cases: [(String, String)] = [
            (#","capabilities":{"portMappings":"yes"}"#, "capabilities.portMappings"),
            (#","runtimeConfig":[]"#, "runtimeConfig"),
            (#","ipam":"host-local""#, "ipam"),
            (#","prevResult":{"cniVersion":"1.0.0","ips":5}"#, "prevResult.ips"),
            (#","dns":{"nameservers":"1.1.1.1"}"#, "dns.nameservers"),
        ]
        for (extra, field) in cases {
            let err = try #require(errorOf(run(EchoPlugin(), env("ADD"), conf("1.0.0", extra))), "\(extra)")
            #expect(err.code == .decodingFailure, "\(extra)")
            #expect(err.msg.contains(field), "\(err)")
        }
        let name = try #require(errorOf(run(EchoPlugin(), env("ADD"), Array(#"{"cniVersion":"1.0.0","name":7}"#.utf8))))
        #expect(name.code == .decodingFailure)
    }

    /// A list given where one configuration belongs: code 7 on every verb, and the plugin never
    /// runs (it would run with defaults).
    @Test(arguments: ["ADD", "DEL", "CHECK", "GC", "STATUS"])
    func aConfigurationListOnStdinIsCode7(_ command: String) throws {
        let list = #"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#
        let err = try #require(errorOf(run(EchoPlugin(), env(command), Array(list.utf8))))
        #expect(err.code == .invalidNetworkConfig && err.msg.contains("\"plugins\""), "\(err)")
    }

    /// Cleanup failures keep their codes: one passes through unchanged, several carry the
    /// first one's code and all of them in the details.
    @Test func stepFailuresKeepTheirCodes() throws {
        struct Plain: Error {}
        let ipam = CNIError(.stateStoreFailure, "host-local: cannot lock", details: "ENOTDIR")
        var one = StepFailures()
        one.run("IPAM DEL", code: .delegateFailed) { throw ipam }
        #expect(throws: ipam) { try one.throwIfAny("DEL was incomplete") }
        var two = StepFailures()
        two.run("IPAM DEL", code: .delegateFailed) { throw ipam }
        two.run("delete eth0", code: .kernelOperationFailed) { throw Plain() }
        two.run("fine", code: .internalError) {}
        let e = try #require(throws: CNIError.self) { try two.throwIfAny("DEL was incomplete") }
        #expect(e.code == .stateStoreFailure && e.msg == "DEL was incomplete")
        #expect(
            e.details.contains("IPAM DEL: host-local: cannot lock (ENOTDIR) (code 105)") && e.details.contains("delete eth0 (Plain()) (code 103)"),
            "\(e.details)")
        #expect(throws: Never.self) { try StepFailures().throwIfAny("x") }
    }

    @Test func unknownKeysAreTolerated() {
        #expect(run(EchoPlugin(), env("ADD"), conf("1.1.0", #","x-unknown":{"a":[1,2]},"cni.dev/foo":true"#)).exitCode == 0)
    }

    @Test func gcAttachmentsFromEitherKey() throws {
        let list = #"[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"net1"}]"#
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let c = try NetConf(decoding: conf("1.1.0", #","\#(key)":\#(list)"#))
            #expect(c.validAttachments == [.init(containerID: "a", ifName: "eth0"), .init(containerID: "b", ifName: "net1")])
        }
        #expect(try NetConf(decoding: conf("1.1.0")).validAttachments == nil)
        #expect(try NetConf(decoding: conf("1.1.0", #","cni.dev/valid-attachments":[]"#)).validAttachments == [])
    }

    @Test func prevResultIsReadInItsOwnVersion() throws {
        let c = try NetConf(decoding: conf("1.0.0", #","prevResult":\#(Golden.v020)"#))
        #expect(c.prevResult?.ips.first?.address.description == "10.222.0.2/24")
    }

    /// Bad stdin never crashes or hangs a plugin: code 6 with a message.
    @Test func hostileStdinIsCode6() throws {
        let inputs: [(String, [UInt8])] = [
            ("empty", []),
            ("10 MB", [UInt8](repeating: UInt8(ascii: " "), count: 10 << 20)),
            ("binary garbage", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }),
            ("JSON array", Array(#"[{"cniVersion":"1.0.0","name":"n"}]"#.utf8)),
            (
                "100k nesting",
                [UInt8](repeating: UInt8(ascii: "{"), count: 1) + Array(#""a":"#.utf8)
                    + [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
            ),
            ("NUL", [0]),
            ("truncated", Array(#"{"cniVersion":"1.0.0","name":"n""#.utf8)),
        ]
        for (what, bytes) in inputs {
            for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
                let o = run(EchoPlugin(), env(command), bytes)
                let err = try #require(errorOf(o), "\(what) \(command)")
                #expect(err.code == .decodingFailure, "\(what) \(command)")
                #expect(!err.msg.isEmpty && !err.details.isEmpty, "\(what) \(command)")
            }
        }
    }
}
