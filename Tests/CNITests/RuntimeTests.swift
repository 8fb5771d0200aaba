import Base
import CNI
import CNIRuntime
import Foundation
import Testing

/// The runtime (what cnictl runs) against fake plugins that are real child processes: small shell
/// scripts that log every call (command, environment, stdin) and answer as a plugin would.
@Suite struct RuntimeTests {
    let temp = TempDir()
    var dir: String { temp.path }
    var log: String { dir + "/calls" }

    init() {
        try! FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        // "first" returns a result; "second" echoes prevResult with a route added (a chained
        // plugin); "failing" fails ADD for container "boom"; every call is logged.
        plugin(
            "first",
            """
            if [ "$CNI_COMMAND" = ADD ]; then
              echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'$CNI_NETNS'"}],"ips":[{"interface":0,"address":"10.5.0.2/24"}]}'
            fi
            if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'; fi
            if [ "$CNI_COMMAND" = GC ] && [ -e "\(dir)/gcfail" ]; then echo '{"code":105,"msg":"store locked"}'; exit 1; fi
            """)
        plugin(
            "second",
            """
            if [ "$CNI_COMMAND" = ADD ]; then
              jq -c '.prevResult + {routes:[{dst:"0.0.0.0/0"}]}' "$in"
            fi
            if [ "$CNI_COMMAND" = STATUS ] && [ -e "\(dir)/down" ]; then echo '{"code":50,"msg":"daemon down"}'; exit 1; fi
            if [ "$CNI_COMMAND" = CHECK ] && [ -e "\(dir)/broken" ]; then echo '{"code":108,"msg":"route missing"}'; exit 1; fi
            if [ "$CNI_COMMAND" = GC ] && [ -e "\(dir)/gcfail" ]; then echo '{"code":104,"msg":"nft"}'; exit 1; fi
            """)
        plugin(
            "failing",
            """
            if [ "$CNI_COMMAND" = ADD ] && [ "$CNI_CONTAINERID" = boom ]; then echo '{"code":7,"msg":"bad"}'; exit 1; fi
            if [ "$CNI_COMMAND" = ADD ]; then jq -c .prevResult "$in"; fi
            """)
    }

    func plugin(_ name: String, _ body: String) {
        let path = dir + "/bin/" + name
        let script = """
            #!/bin/sh
            in=$(mktemp); cat > "$in"
            printf '%s %s %s %s %s\\n' "\(name)" "$CNI_COMMAND" "${CNI_CONTAINERID:--}" "${CNI_IFNAME:--}" "$(jq -c '{prev: (.prevResult != null), rc: .runtimeConfig, va: .["cni.dev/valid-attachments"], name, cniVersion}' "$in")" >> "\(log)"
            \(body)
            rm -f "$in"
            """
        _ = FileManager.default.createFile(atPath: path, contents: Data(script.utf8))
        chmod(path, 0o755)
    }

    func runtime() -> Runtime { Runtime(pluginPath: [dir + "/bin"], cacheDir: dir + "/cache") }
    func calls() -> [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
    func list(
        _ version: String = "1.1.0", _ plugins: String = #"{"type":"first"},{"type":"second","capabilities":{"portMappings":true,"mac":false}}"#,
        extra: String = ""
    ) throws -> NetworkConfigList {
        try NetworkConfigList(bytes: Array(#"{"cniVersion":"\#(version)","name":"rt"\#(extra),"plugins":[\#(plugins)]}"#.utf8))
    }

    @Test func addRunsInOrderPassingPrevResultAndCachesTheFinalResult() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let caps: JSONObject = ["portMappings": .array([.int(1)]), "mac": .string("x"), "ips": .array([])]
        let a = RuntimeAttachment(containerID: "c1", netns: "/run/netns/c1", cniArgs: [("K8S_POD_NAME", "web")], capabilityArgs: caps)
        let result = try runtime().add(try list(), a)
        #expect(
            result.serialized()
                == #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/c1"}],"ips":[{"interface":0,"address":"10.5.0.2/24"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#
        )
        // first: no prevResult, no runtimeConfig (no capabilities); second: prevResult, and only
        // the capability it enables.
        #expect(
            calls() == [
                #"first ADD c1 eth0 {"prev":false,"rc":null,"va":null,"name":"rt","cniVersion":"1.1.0"}"#,
                #"second ADD c1 eth0 {"prev":true,"rc":{"portMappings":[1]},"va":null,"name":"rt","cniVersion":"1.1.0"}"#,
            ])
        let cached = try ResultCache(root: dir + "/cache").load(network: "rt", "c1", "eth0")
        #expect(cached.result == result)
        #expect(cached.netns == "/run/netns/c1")
        #expect(cached.cniArgs.map { "\($0.key)=\($0.value)" } == ["K8S_POD_NAME=web"])
        let raw = try JSONValue.parse(try System.readFile(dir + "/cache/results/rt-c1-eth0")).objectValue!
        #expect(raw["kind"] == .string("cniCacheV1"))
        #expect(raw["config"]?.stringValue.flatMap(Base64.decode) == (try list()).bytes)
    }

    @Test func delRunsInReverseWithTheCachedResultAndRemovesTheCache() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = RuntimeAttachment(containerID: "c1", netns: "/run/netns/c1")
        _ = try runtime().add(try list(), a)
        try runtime().del(try list(), a)
        #expect(calls().suffix(2).map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["second DEL", "first DEL"])
        #expect(calls().last!.contains(#""prev":true"#))
        #expect(!FileManager.default.fileExists(atPath: dir + "/cache/results/rt-c1-eth0"))
        try runtime().del(try list(), a)  // repeated DEL: no cache, no prevResult, still fine
        #expect(calls().last!.contains(#""prev":false"#))
    }

    @Test func failedAddIsRolledBackWithDelAndNothingIsCached() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let l = try list("1.0.0", #"{"type":"first"},{"type":"failing"},{"type":"second"}"#)
        let err = try #require(throws: Runtime.PluginFailure.self) {
            try runtime().add(l, RuntimeAttachment(containerID: "boom", netns: "/run/netns/b"))
        }
        #expect(err.plugin == "failing" && err.error.code == .invalidNetworkConfig)
        #expect(
            calls().map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == [
                "first ADD", "failing ADD", "second DEL", "failing DEL", "first DEL",
            ])
        #expect(ResultCache(root: dir + "/cache").entries().isEmpty)
    }

    @Test func checkNeeds040AndACachedResultAndHonoursDisableCheck() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = RuntimeAttachment(containerID: "c1", netns: "/run/netns/c1")
        #expect(throws: CNIError.self) { try runtime().check(try list("0.3.1"), a) }
        #expect((try? runtime().check(try list(), a)) == nil, "no cached result")
        _ = try runtime().add(try list(), a)
        try runtime().check(try list(), a)
        _ = FileManager.default.createFile(atPath: dir + "/broken", contents: nil)
        let err = try #require(throws: Runtime.PluginFailure.self) { try runtime().check(try list(), a) }
        #expect(err.error.code == .checkFailed)
        try runtime().check(try list(extra: #","disableCheck":"true""#), a)
    }

    @Test func gcDeletesStaleAttachmentsThenSendsTheValidOnesToEveryPlugin() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let live = dir + "/live-netns"
        _ = FileManager.default.createFile(atPath: live, contents: nil)
        _ = try runtime().add(try list(), RuntimeAttachment(containerID: "alive", netns: live))
        _ = try runtime().add(try list(), RuntimeAttachment(containerID: "gone", netns: dir + "/no-such-netns"))
        try runtime().gc(try list(), valid: nil)
        let tail = calls().suffix(4)
        #expect(
            tail.map { $0.split(separator: " ").prefix(3).joined(separator: " ") } == [
                "second DEL gone", "first DEL gone", "first GC -", "second GC -",
            ])
        #expect(tail.last!.contains(#""va":[{"containerID":"alive","ifname":"eth0"}]"#))
        #expect(ResultCache(root: dir + "/cache").entries().map(\.containerID) == ["alive"])
        // 1.0.0 lists get the DELs but no GC; disableGC does nothing at all.
        let before = calls().count
        try runtime().gc(try list("1.0.0"), valid: [])
        #expect(calls().count == before + 2)
        try runtime().gc(try list(extra: #","disableGC":true"#), valid: [])
        #expect(calls().count == before + 2)
    }

    /// GC failing in several plugins is not an internal error: the first failure's own code,
    /// every failure in the details.
    @Test func gcFailuresKeepTheFirstPluginsCode() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/gcfail", contents: nil)
        let e = try #require(throws: CNIError.self) { try runtime().gc(try list(), valid: []) }
        #expect(e.code == .stateStoreFailure, "\(e)")
        #expect(e.details.contains("store locked") && e.details.contains("nft"), "\(e.details)")
    }

    @Test func statusStopsAtTheFirstFailureAndSkipsOldVersions() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try runtime().status(try list())
        _ = FileManager.default.createFile(atPath: dir + "/down", contents: nil)
        let err = try #require(throws: Runtime.PluginFailure.self) { try runtime().status(try list()) }
        #expect(err.error.code == .notAvailable && err.plugin == "second")
        try runtime().status(try list("1.0.0"))
        #expect(try runtime().versions(of: "first") == ["0.4.0", "1.0.0", "1.1.0"])
    }

    @Test func listLoadingPicksVersionsAndFilesAsLibcni() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(
            try NetworkConfigList(bytes: Array(#"{"name":"n","cniVersions":["0.4.0","1.1.0","9.9.9"],"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#.utf8))
                .cniVersion == .v1_1_0)
        #expect(try NetworkConfigList(bytes: Array(#"{"name":"n","plugins":[{"type":"a"}]}"#.utf8)).cniVersion == .v0_1_0)
        #expect(throws: CNIError.self) { try NetworkConfigList(bytes: Array(#"{"name":"n","cniVersion":"7.0.0","plugins":[{"type":"a"}]}"#.utf8)) }
        #expect(throws: CNIError.self) { try NetworkConfigList(bytes: Array(#"{"name":"n","plugins":[{}]}"#.utf8)) }
        #expect(throws: CNIError.self) { try NetworkConfigList(bytes: Array(#"{"name":"../n","plugins":[{"type":"a"}]}"#.utf8)) }
        let netd = dir + "/net.d"
        try FileManager.default.createDirectory(atPath: netd, withIntermediateDirectories: true)
        try #"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"from-20"}]}"#.write(toFile: netd + "/20-n.conflist", atomically: true, encoding: .utf8)
        try #"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"from-30"}]}"#.write(toFile: netd + "/30-n.conflist", atomically: true, encoding: .utf8)
        try "garbage".write(toFile: netd + "/10-broken.conflist", atomically: true, encoding: .utf8)
        try #"{"name":"single","cniVersion":"0.4.0","type":"bridge","bridge":"br9"}"#.write(toFile: netd + "/40-single.conf", atomically: true, encoding: .utf8)
        try "ignored".write(toFile: netd + "/05-n.txt", atomically: true, encoding: .utf8)
        #expect(try NetworkConfigList.find("n", in: netd).type(0) == "from-20")
        let single = try NetworkConfigList.find("single", in: netd)
        #expect(single.plugins.count == 1 && single.type(0) == "bridge" && single.plugins[0]["bridge"] == .string("br9"))
        let err = try #require(throws: CNIError.self) { try NetworkConfigList.find("none", in: netd) }
        #expect(err.msg.contains("no network \"none\"") && err.details.contains("10-broken.conflist"))
    }

    @Test func pluginConfigPassesUnknownKeysThroughAndOverridesRuntimeKeys() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let l = try list("1.0.0", #"{"type":"x","name":"wrong","cniVersion":"0.1.0","custom":{"deep":[1,2]},"capabilities":{"ips":true}}"#)
        let c = l.pluginConfig(0, capabilityArgs: ["portMappings": .array([])])
        #expect(c["name"] == .string("rt") && c["cniVersion"] == .string("1.0.0"))
        #expect(c["custom"] == json(#"{"deep":[1,2]}"#))
        #expect(c["runtimeConfig"] == nil, "no enabled capability has an argument")
        #expect(l.pluginConfig(0, capabilityArgs: ["ips": .array([.string("10.0.0.5")])])["runtimeConfig"] == json(#"{"ips":["10.0.0.5"]}"#))
    }

    @Test func base64RoundTrips() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"name\":\"n\"}\n"] {
            #expect(Base64.decode(Base64.encode(Array(s.utf8))) == Array(s.utf8))
        }
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
        #expect(Base64.decode("not base64!") == nil)
    }
}
