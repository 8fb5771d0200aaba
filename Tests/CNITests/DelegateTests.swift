import Base
import CNI
import Foundation
import Testing

/// A main plugin that delegates every verb to its IPAM plugin, as bridge does.
struct DelegatingPlugin: CNIPlugin {
    static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) {}
    static let type = "delegating"
    static let summary = "test"
    func add(_ ctx: PluginContext) throws -> CNIResult { try Delegate.add(ctx.config.ipamType ?? "", ctx) }
    func del(_ ctx: PluginContext) throws { try Delegate.run(ctx.config.ipamType ?? "", .del, ctx) }
    func check(_ ctx: PluginContext) throws { try Delegate.run(ctx.config.ipamType ?? "", .check, ctx) }
    func gc(_ ctx: PluginContext) throws { try Delegate.run(ctx.config.ipamType ?? "", .gc, ctx) }
    func status(_ ctx: PluginContext) throws { try Delegate.run(ctx.config.ipamType ?? "", .status, ctx) }
}

/// IPAM delegation against a real child process: a small shell script acting as the IPAM plugin.
@Suite struct DelegateTests {
    let temp = TempDir()
    var dir: String { temp.path }

    func install(_ name: String, _ script: String) {
        let path = dir + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(("#!/bin/sh\n" + script).utf8))
        chmod(path, 0o755)
    }

    func stdin(_ ipam: String = "fake-ipam", version: String = "1.0.0") -> [UInt8] {
        Array(#"{"cniVersion":"\#(version)","name":"net1","type":"delegating","ipam":{"type":"\#(ipam)","x":1}}"#.utf8)
    }

    init() {
        // Records its command, environment and stdin; answers ADD with a 0.3.1 result; fails
        // with a CNI error for container "bad" and without one for container "crash".
        install(
            "fake-ipam",
            """
            cat > "\(dir)/stdin.$CNI_COMMAND"
            env | grep '^CNI_' | sort > "\(dir)/env.$CNI_COMMAND"
            echo "note from ipam on stderr" >&2
            if [ "$CNI_CONTAINERID" = bad ]; then
              echo '{"code":106,"msg":"no IP addresses available in range set","details":"10.0.0.2-10.0.0.3"}'; exit 1
            fi
            if [ "$CNI_CONTAINERID" = crash ]; then echo 'panic: oops' >&2; exit 2; fi
            if [ "$CNI_COMMAND" = ADD ]; then
              echo '{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}'
            fi
            exit 0
            """)
    }

    @Test func addExecsTheDelegateWithSameStdinAndEnvironment() throws {
        let logged = LockedLines()
        let e = env("ADD", ["CNI_PATH": "/nonexistent:\(dir)", "CNI_ARGS": "IgnoreUnknown=1", "OTHER": "kept"])
        let o = PluginMain.run(DelegatingPlugin(), environment: e, readStdin: { stdin() }, log: { logged.append($0) })
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(o.exitCode == 0)
        // The delegate's 0.3.1 result, answered in the config's version (1.0.0).
        #expect(o.stdout == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}"# + "\n")
        #expect(try String(contentsOfFile: dir + "/stdin.ADD", encoding: .utf8) == String(decoding: stdin(), as: UTF8.self))
        let childEnv = try String(contentsOfFile: dir + "/env.ADD", encoding: .utf8)
        #expect(childEnv.contains("CNI_COMMAND=ADD\n"))
        #expect(childEnv.contains("CNI_ARGS=IgnoreUnknown=1\n"))
        #expect(childEnv.contains("CNI_CONTAINERID=ctr1\n"))
        #expect(logged.lines.joined().contains("note from ipam on stderr"))
    }

    @Test(arguments: ["DEL", "CHECK", "GC", "STATUS"])
    func otherVerbsAreForwardedWithTheSameVerb(_ command: String) throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = stdin(version: "1.1.0")
        let o = PluginMain.run(
            DelegatingPlugin(), environment: env(command, ["CNI_PATH": dir]), readStdin: { s }, log: { _ in })
        #expect(o == PluginOutcome(exitCode: 0, stdout: ""))
        #expect(try String(contentsOfFile: dir + "/env.\(command)", encoding: .utf8).contains("CNI_COMMAND=\(command)\n"))
    }

    @Test func delegateErrorPassesThroughUnchanged() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let o = run(DelegatingPlugin(), env("ADD", ["CNI_PATH": dir, "CNI_CONTAINERID": "bad"]), stdin())
        let err = try #require(errorOf(o))
        #expect(err == CNIError(.addressUnavailable, "no IP addresses available in range set", details: "10.0.0.2-10.0.0.3"))
    }

    @Test func delegateCrashWithoutErrorObjectIsCode102WithItsStderr() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let err = try #require(errorOf(run(DelegatingPlugin(), env("ADD", ["CNI_PATH": dir, "CNI_CONTAINERID": "crash"]), stdin())))
        #expect(err.code == .delegateFailed)
        #expect(err.msg.contains("exit status 2"))
        #expect(err.details.contains("panic: oops"))
    }

    @Test func missingDelegateOrUnsafeTypeIsAClearError() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = try #require(errorOf(run(DelegatingPlugin(), env("ADD", ["CNI_PATH": dir]), stdin("nope"))))
        #expect(missing.code == .delegateFailed)
        #expect(missing.msg == "failed to find plugin \"nope\" in CNI_PATH")
        let escape = try #require(errorOf(run(DelegatingPlugin(), env("ADD", ["CNI_PATH": dir]), stdin("../../bin/sh"))))
        #expect(escape.code == .invalidNetworkConfig)
        let noPath = try #require(errorOf(run(DelegatingPlugin(), ["CNI_COMMAND": "STATUS"], stdin(version: "1.1.0"))))
        #expect(noPath.code == .invalidEnvironment)
        #expect(noPath.msg.contains("CNI_PATH"))
    }

    @Test func largeStdinAndOutputDoNotDeadlock() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The child echoes 3 MB back while we are still writing 3 MB to it.
        install("cat-ipam", "cat; head -c 3000000 /dev/zero | tr '\\0' x >&2")
        let big = [UInt8](repeating: UInt8(ascii: "y"), count: 3_000_000)
        let out = try Subprocess.run(dir + "/cat-ipam", environment: [:], stdin: big)
        #expect(out.succeeded)
        #expect(out.stdout == big)
        #expect(out.stderr.count == 3_000_000)
    }

    /// A delegate that exits without reading its stdin (one that fails on its environment does)
    /// must not take the caller down with SIGPIPE: the caller reports the delegate's failure.
    /// (Before the guard, this killed the whole test process.)
    @Test func delegateThatIgnoresItsStdinDoesNotKillTheCaller() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        install("deaf-ipam", "echo '{\"code\":4,\"msg\":\"missing CNI_COMMAND\"}'; exit 1")
        let big = [UInt8](repeating: UInt8(ascii: "y"), count: 4_000_000)
        for _ in 0..<20 {
            let out = try Subprocess.run(dir + "/deaf-ipam", environment: [:], stdin: big)
            #expect(out.exitStatus == 1)
        }
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGPIPE) == 0, "no SIGPIPE left pending")
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ s: String) { lock.withLock { storage.append(s) } }
    var lines: [String] { lock.withLock { storage } }
}

/// A delegate that is this very binary runs in-process; any other is exec'ed.
@Suite struct InProcessDelegateTests {
    @Test func theRunningBinaryIsNotExecedAgain() throws {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        try FileManager.default.createSymbolicLink(atPath: dir + "/echo-ipam", withDestinationPath: exe)
        let stdin = Array(#"{"cniVersion":"1.0.0","name":"n","type":"delegating","ipam":{"type":"echo-ipam"}}"#.utf8)
        func run(_ plugin: EchoPlugin) -> PluginOutcome {
            PluginMain.run(
                DelegatingPlugin(), environment: env("ADD", ["CNI_PATH": dir]), readStdin: { stdin }, log: { _ in },
                inProcess: ["echo-ipam": plugin])
        }
        let o = run(EchoPlugin())
        // EchoPlugin's result: exec'ing the test binary could never have produced it.
        #expect(o.exitCode == 0)
        #expect(try CNIResult(json: JSONValue.parse(o.stdout)).ips.first?.address.description == "10.1.0.2/24")
        // Its errors come back as they would from an exec.
        #expect(errorOf(run(EchoPlugin(failWith: CNIError(.addressUnavailable, "full"))))?.code == .addressUnavailable)
        // A listed type whose file is some other program is exec'ed as usual.
        try FileManager.default.removeItem(atPath: dir + "/echo-ipam")
        _ = FileManager.default.createFile(
            atPath: dir + "/echo-ipam", contents: Data("#!/bin/sh\necho '{\"code\":7,\"msg\":\"from the exec\"}'; exit 1\n".utf8))
        chmod(dir + "/echo-ipam", 0o755)
        #expect(errorOf(run(EchoPlugin()))?.msg == "from the exec")
    }
}
