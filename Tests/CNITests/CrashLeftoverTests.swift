import Base
import CNI
import CNIRuntime
import Foundation
import Testing

/// What a writer killed half-way leaves, and who removes it (Scripts/crash hits these windows at
/// random; these tests hit them every time).
@Suite struct CrashLeftoverTests {
    /// A pid no process has: the highest pid the kernel could hand out is below this.
    static let deadPid = 4_194_305

    @Test func abandonedTemporariesOfDeadWritersGoLiveOnesStay() throws {
        let dir = TempDir()
        let target = dir.path + "/results/net-c1-eth0"
        try FileManager.default.createDirectory(atPath: dir.path + "/results", withIntermediateDirectories: true)
        let dead = "\(target).tmp.\(Self.deadPid)", live = "\(target).tmp.\(getpid())"
        let otherDead = dir.path + "/results/net-c2-eth0.tmp.\(Self.deadPid)"
        for p in [dead, live, otherDead] { #expect(FileManager.default.createFile(atPath: p, contents: Data("{".utf8))) }
        System.removeAbandonedTemporaries(of: target)
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live), "a live writer's temporary stays")
        #expect(FileManager.default.fileExists(atPath: otherDead), "another file's temporary is not this one's")
        System.removeAbandonedTemporaries(in: dir.path + "/results", namePrefix: "net-")
        #expect(!FileManager.default.fileExists(atPath: otherDead))
        #expect(System.temporaryWriter("net-c1-eth0.tmp.42") == 42)
        #expect(System.temporaryWriter("net-c1-eth0.100") == nil, "an interface name with a dot is not a temporary")
        #expect(System.temporaryWriter("net-c1-eth0.tmp.x") == nil)
    }

    @Test func resultCacheSkipsTemporariesAndRemoveTakesTheEntrysLeftovers() throws {
        let dir = TempDir()
        let cache = ResultCache(root: dir.path)
        let list = try NetworkConfigList(bytes: Array(#"{"cniVersion":"1.1.0","name":"net","plugins":[{"type":"x"}]}"#.utf8))
        let a = RuntimeAttachment(containerID: "c1", netns: "/run/netns/x", ifName: "eth0", cniArgs: [], capabilityArgs: [:])
        try cache.store(list, a, result: .object([:]))
        let entry = cache.path(network: "net", "c1", "eth0")
        // A killed runtime's temporary holds a whole entry: it must not count as a second one.
        try FileManager.default.copyItem(atPath: entry, toPath: "\(entry).tmp.\(Self.deadPid)")
        #expect(cache.entries(network: "net").count == 1)
        try cache.remove(network: "net", "c1", "eth0")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.directory) == [])
    }

    @Test func lockedWritersReuseTheirTemporaryWhateverItsMode() throws {
        let dir = TempDir()
        let path = dir.path + "/records.net"
        FileManager.default.createFile(atPath: path + ".tmp", contents: Data("half".utf8), attributes: [.posixPermissions: 0o666])
        try System.writeFileAtomically(path, Array("whole\n".utf8), mode: 0o644, temporary: path + ".tmp")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "whole\n")
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o644, "the mode asked for, not the leftover's")
    }

    @Test func createExclusivelyIsWholeOrNothing() throws {
        let dir = TempDir()
        let path = dir.path + "/10.0.0.2"
        #expect(try System.createExclusively(path, Array("c1\r\neth0".utf8)))
        #expect(try System.createExclusively(path, Array("c2\r\neth0".utf8)) == false, "taken")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "c1\r\neth0")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["10.0.0.2"], "no temporary name ever")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }
}
