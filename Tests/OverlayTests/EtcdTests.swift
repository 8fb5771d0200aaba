import Base
import CNI
import Etcd
import Foundation
import Overlay
import Testing

@Suite struct EtcdDecodingTests {
    @Test func streamSplitterFindsEveryMessageWhereverTheChunksBreak() throws {
        let text = #"{"result":{"a":"}{\"x"}}"# + "\n" + #"{"result":{"b":[1,{"c":"]"}]}}"# + #"{"error":{}}"#
        let bytes = Array(text.utf8)
        let whole = try {
            var s = JSONStreamSplitter(); return try s.feed(bytes)
        }()
        #expect(whole.count == 3)
        #expect(whole[0] == (try JSONValue.parse(#"{"result":{"a":"}{\"x"}}"#)))
        for cut in 1..<bytes.count {
            var s = JSONStreamSplitter()
            let parts = try s.feed(Array(bytes[..<cut])) + s.feed(Array(bytes[cut...]))
            #expect(parts == whole, "split at \(cut)")
        }
        var bad = JSONStreamSplitter()
        #expect(throws: EtcdError.self) { _ = try bad.feed(Array("x{}".utf8)) }
    }

    @Test func watchMessagesDecodePutsDeletesAndCompaction() throws {
        let put = try EtcdClient.watchResponse(
            JSONValue.parse(
                #"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"YQ==","create_revision":"5","mod_revision":"7","version":"2","value":"eA==","lease":"42"}},{"type":"DELETE","kv":{"key":"Yg==","mod_revision":"7"}}]}}"#
            ))
        #expect(put.revision == 7 && !put.canceled)
        #expect(
            put.events == [.put(EtcdKeyValue(key: [0x61], value: [0x78], createRevision: 5, modRevision: 7, lease: 42)), .delete(key: [0x62], modRevision: 7)])
        let compacted = try EtcdClient.watchResponse(JSONValue.parse(#"{"result":{"header":{},"canceled":true,"compact_revision":"3"}}"#))
        #expect(compacted.canceled && compacted.compactRevision == 3 && compacted.events.isEmpty)
        #expect(throws: EtcdError.self) { _ = try EtcdClient.watchResponse(JSONValue.parse(#"{"error":{"grpc_code":14}}"#)) }
    }

    @Test func rangeEndIsThePrefixPlusOne() {
        #expect(EtcdClient.rangeEnd(Array("/a/".utf8)) == Array("/a0".utf8))
        #expect(EtcdClient.rangeEnd([0x61, 0xFF]) == [0x62])
        #expect(EtcdClient.rangeEnd([0xFF]) == [0])
    }
}

/// A real etcd (Debian's etcd-server) on loopback, on free ports, in a directory of its own;
/// stopped and removed when the test ends.
final class LocalEtcd {
    let process = Process()
    let dir: String
    let endpoint: String

    init() throws {
        dir = NSTemporaryDirectory() + "swift-cni-etcd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let client = LocalEtcd.freePort(), peer = LocalEtcd.freePort()
        endpoint = "http://127.0.0.1:\(client)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = [
            "--name", "t", "--data-dir", dir, "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
            "--listen-peer-urls", "http://127.0.0.1:\(peer)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peer)",
            "--initial-cluster", "t=http://127.0.0.1:\(peer)", "--log-level", "error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until etcd answers (its readiness, not a fixed time).
    func ready() async throws -> EtcdClient {
        let client = try EtcdClient(endpoints: [endpoint], timeout: .seconds(2))
        for _ in 0..<200 {
            if (try? await client.range(prefix: Array("/".utf8))) != nil { return client }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        await client.shutdown()
        throw EtcdError("etcd at \(endpoint) did not start")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}

@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd"), "needs etcd (Debian etcd-server)"))
struct EtcdStoreTests {
    let network = try! OverlayNetwork(network: IPPrefix("10.240.0.0/16")!, subnetLength: 24)

    func withEtcd(_ body: (EtcdClient, String) async throws -> Void) async throws {
        let etcd = try LocalEtcd()
        defer { etcd.stop() }
        let client = try await etcd.ready()
        do {
            try await body(client, "/t\(getpid())")
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    @Test func concurrentClaimsGetDistinctSubnetsAndAHostKeepsItsSubnetWhenItsAddressChanges() async throws {
        try await withEtcd { client, prefix in
            let stores = (0..<12).map { EtcdLeaseStore(client: client, prefix: prefix, network: network, node: "host\($0)", ttl: 30) }
            let leases = try await withThrowingTaskGroup(of: NodeLease.self) { g in
                for (i, s) in stores.enumerated() { g.addTask { try await s.claim(vtep: IPAddress("192.168.0.\(i + 1)")!) } }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(leases.map(\.subnet)).count == 12, "12 hosts, 12 subnets: \(leases.map(\.subnet))")
            let (listed, _) = try await stores[0].list()
            #expect(Set(listed.map(\.node)) == Set((0..<12).map { "host\($0)" }))
            let before = leases.first { $0.node == "host3" }!
            let moved = try await stores[3].claim(vtep: IPAddress("192.168.9.9")!)
            #expect(moved.subnet == before.subnet && moved.vtep == IPAddress("192.168.9.9"))
            #expect(try await stores[3].list().leases.filter { $0.node == "host3" } == [moved], "one key per host, updated in place")
        }
    }

    @Test func aRevokedLeaseTakesItsSubnetAwayAndARestartKeepsThePreferredSubnet() async throws {
        try await withEtcd { client, prefix in
            let a = EtcdLeaseStore(client: client, prefix: prefix, network: network, node: "a", ttl: 30)
            let b = EtcdLeaseStore(client: client, prefix: prefix, network: network, node: "b", ttl: 30)
            let la = try await a.claim(vtep: IPAddress("192.168.0.1")!)
            _ = try await b.claim(vtep: IPAddress("192.168.0.2")!)
            try await a.release()
            #expect(try await b.list().leases.map(\.node) == ["b"])
            #expect(try await a.keepAlive() == false, "no lease after the revoke")
            // b's earlier subnet is free again for a new host; a comes back asking for its own.
            let again = try await a.claim(vtep: IPAddress("192.168.0.1")!, preferred: la.subnet)
            #expect(again.subnet == la.subnet)
            #expect(try await a.keepAlive() == true)
        }
    }

    @Test func aLeaseThatIsNotKeptAliveExpiresAndTheWatchSeesItGo() async throws {
        try await withEtcd { client, prefix in
            let a = EtcdLeaseStore(client: client, prefix: prefix, network: network, node: "a", ttl: 2)
            let (_, rev) = try await a.list()
            let lease = try await a.claim(vtep: IPAddress("192.168.0.1")!)
            var seen: [EtcdEvent] = []
            for try await w in client.watch(prefix: a.subnetsPrefix, from: rev + 1) {
                seen += w.events
                if seen.contains(where: { if case .delete = $0 { return true } else { return false } }) { break }
            }
            #expect(seen.count == 2)
            guard case .put(let kv) = seen.first else { Issue.record("first event: \(seen)"); return }
            #expect(kv.key == a.key(lease.subnet))
            guard case .delete(let gone, _)? = seen.last else { Issue.record("last event: \(seen)"); return }
            #expect(gone == a.key(lease.subnet))
            #expect(try await a.keepAlive() == false)
        }
    }

    @Test func aWatchFromACompactedRevisionIsCancelledWithTheCompactRevision() async throws {
        try await withEtcd { client, prefix in
            let key = Array("\(prefix)/subnets/x".utf8)
            var last: Int64 = 0
            for i in 0..<5 { last = try await client.put(key, Array("v\(i)".utf8)) }
            try await client.compact(last)
            var responses: [EtcdWatchResponse] = []
            for try await w in client.watch(prefix: Array("\(prefix)/".utf8), from: 2) {
                responses.append(w)
                if w.canceled { break }
            }
            #expect(responses.last?.canceled == true)
            #expect(responses.last?.compactRevision == last)
            // From the revision after the compaction: the changes from there on.
            try await client.put(key, Array("after".utf8))
            for try await w in client.watch(prefix: Array("\(prefix)/".utf8), from: last + 1) where !w.events.isEmpty {
                #expect(w.events.count == 1)
                if case .put(let kv) = w.events[0] { #expect(kv.value == Array("after".utf8)) }
                break
            }
        }
    }

    @Test func anEndpointThatDoesNotAnswerIsSkippedAndAllDownIsAnErrorNamingThem() async throws {
        try await withEtcd { good, _ in
            let dead = "http://127.0.0.1:\(LocalEtcd.freePort())"
            let client = try EtcdClient(endpoints: [dead, good.endpoints[0]])
            _ = try await client.range(prefix: Array("/".utf8))
            await client.shutdown()
            let none = try EtcdClient(endpoints: [dead])
            do {
                _ = try await none.range(prefix: Array("/".utf8))
                Issue.record("no error")
            } catch {
                #expect("\(error)".contains(dead))
            }
            await none.shutdown()
        }
    }
}
