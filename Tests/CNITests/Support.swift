import Base
import CNI
import Foundation
import Testing

/// A plugin that records what it was called with and returns a fixed result; lets the dispatcher be
/// tested without exec.
struct EchoPlugin: CNIPlugin {
    static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) {}
    static let type = "echo"
    static let summary = "echo test plugin"
    var result = CNIResult(
        interfaces: [.init(name: "eth0", mac: "02:00:00:00:00:01", mtu: 1500, sandbox: "/run/netns/x")],
        ips: [.init(address: IPPrefix("10.1.0.2/24")!, gateway: IPAddress("10.1.0.1"), interface: 0)],
        routes: [.init(dst: IPPrefix("0.0.0.0/0")!)])
    var failWith: CNIError? = nil

    func add(_ ctx: PluginContext) throws -> CNIResult {
        if let failWith { throw failWith }
        return result
    }
    func del(_ ctx: PluginContext) throws { if let failWith { throw failWith } }
    func check(_ ctx: PluginContext) throws { if let failWith { throw failWith } }
    func gc(_ ctx: PluginContext) throws { if let failWith { throw failWith } }
    func status(_ ctx: PluginContext) throws { if let failWith { throw failWith } }
}

func env(_ command: String, _ extra: [String: String] = [:]) -> [String: String] {
    var e = [
        "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    ]
    for (k, v) in extra { e[k] = v }
    return e
}

func conf(_ version: String, _ extra: String = "") -> [UInt8] {
    Array("{\"cniVersion\":\"\(version)\",\"name\":\"net1\",\"type\":\"echo\"\(extra)}".utf8)
}

func run(_ plugin: some CNIPlugin = EchoPlugin(), _ environment: [String: String], _ stdin: [UInt8]) -> PluginOutcome {
    PluginMain.run(plugin, environment: environment, readStdin: { stdin }, log: { _ in })
}

/// The error object of a failed outcome.
func errorOf(_ o: PluginOutcome) -> CNIError? {
    guard o.exitCode != 0, let v = try? JSONValue.parse(o.stdout) else { return nil }
    return CNIError(json: v)
}

func json(_ text: String) -> JSONValue { try! JSONValue.parse(text) }

/// A temporary directory, removed with the suite instance that holds it.
final class TempDir: Sendable {
    let path = makeTempDir()
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A temporary directory removed by the caller.
func makeTempDir() -> String {
    let path = NSTemporaryDirectory() + "swift-cni-test-\(getpid())-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
