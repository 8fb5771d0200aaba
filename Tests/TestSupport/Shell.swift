import Foundation

/// Runs a command (no shell) and returns its exit status and standard output (standard error
/// too when `mergeStderr`). For asserting kernel state with `ip -j`, `nft -j` and friends.
@discardableResult
public func sh(_ args: String...) -> (status: Int32, out: String) { sh(args) }

@discardableResult
public func sh(_ args: [String], mergeStderr: Bool = false) -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = mergeStderr ? pipe : FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// `ip -j -n <ns> <args>`, parsed.
public func ipJSON(_ ns: String, _ args: String...) -> [[String: Any]] {
    let r = sh(["ip", "-j", "-n", ns] + args)
    return (try? JSONSerialization.jsonObject(with: Data(r.out.utf8))) as? [[String: Any]] ?? []
}

/// Root, with `ip netns` working: the kernel tests' condition. A tool the tests need (`ip`, `nft`,
/// ...) that is missing does not turn them off: they run and fail (Scripts/lib/deps.sh installs
/// every one). `needsNft` is kept for the call sites' documentation.
public func canCreateNetns(needsNft: Bool = false) -> Bool {
    guard getuid() == 0 else { return false }
    let n = "swcni-probe-\(getpid())-\(Int.random(in: 0...99999))"
    guard sh("ip", "netns", "add", n).status == 0 else {
        // Root without a working `ip netns`: a broken machine, not a reason to skip.
        fatalError("kernel tests: root, but `ip netns add` failed (iproute2 missing?)")
    }
    sh("ip", "netns", "del", n)
    return true
}

/// The `cni-plugins` binary built next to the running test bundle (for CNI_PATH symlinks).
public func builtPluginBinary() throws -> String {
    let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let binary = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("cni-plugins").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: binary])
    }
    return binary
}
