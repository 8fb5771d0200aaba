import Foundation
import Netlink
import Testing

enum Privileges {
    /// Root, with `ip netns` working: the kernel tests' condition.
    static let canCreateNetns: Bool = {
        guard getuid() == 0 else { return false }
        let name = "swcni-probe-\(getpid())"
        guard sh("ip", "netns", "add", name).status == 0 else { return false }
        _ = sh("ip", "netns", "del", name)
        return true
    }()
}

/// Runs a command; returns its status and stdout.
@discardableResult
func sh(_ args: String...) -> (status: Int32, out: String) { sh(args) }

func sh(_ args: [String]) -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A throwaway network namespace named after the test and the pid, removed by `remove()`.
final class TestNetns {
    let name: String
    var path: String { "/run/netns/\(name)" }
    nonisolated(unsafe) static var counter = 0

    init(_ tag: String) throws {
        TestNetns.counter += 1
        name = "swcni-\(tag)-\(getpid())-\(TestNetns.counter)"
        let r = sh("ip", "netns", "add", name)
        guard r.status == 0 else { throw TestFailure("ip netns add \(name) failed") }
        sh("ip", "-n", name, "link", "set", "lo", "up")
    }

    func remove() { sh("ip", "netns", "del", name) }

    func open() throws -> NetworkNamespace { try NetworkNamespace(path: path) }

    /// `ip -j -n <ns> <args>` parsed.
    func ipJSON(_ args: String...) -> [[String: Any]] {
        let r = sh(["ip", "-j", "-n", name] + args)
        return (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [[String: Any]] ?? []
    }

    /// The `ip -j -d link show dev <link>` object.
    func link(_ dev: String) -> [String: Any]? { ipJSON("-d", "link", "show", "dev", dev).first }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
