import Foundation
import Netlink
import TestSupport
import Testing

enum Privileges {
    /// Root, with `ip netns` working: the kernel tests' condition.
    static let canCreateNetns = TestSupport.canCreateNetns()
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

    /// `ip -n <ns> <args>`'s output.
    func ip(_ args: String...) -> String { sh(["ip", "-n", name] + args).out }

    /// The `ip -j -d link show dev <link>` object.
    func link(_ dev: String) -> [String: Any]? { ipJSON("-d", "link", "show", "dev", dev).first }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
