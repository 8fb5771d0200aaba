import Base
import CNI
import Foundation
import Netlink
import TestSupport

let canCreateNetns = TestSupport.canCreateNetns()

/// This kernel can make a link of `kind` (a sub-interface of a veth for ipvlan and vlan), tried in
/// a throwaway namespace: this VM's kernel has no ipvlan, 802.1Q, dummy or VRF driver; Debian's stock
/// kernel (Scripts/kernel-vm-test) has them all.
func kernelHas(_ kind: String) -> Bool {
    guard canCreateNetns else { return false }
    let n = "swcni-kprobe-\(getpid())-\(kind)"
    sh("ip", "netns", "add", n)
    defer { sh("ip", "netns", "del", n) }
    sh("ip", "-n", n, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
    switch kind {
    case "ipvlan": return sh("ip", "-n", n, "link", "add", "link", "p0", "name", "k0", "type", "ipvlan").status == 0
    case "vlan": return sh("ip", "-n", n, "link", "add", "link", "p0", "name", "k0", "type", "vlan", "id", "5").status == 0
    case "vrf": return sh("ip", "-n", n, "link", "add", "k0", "type", "vrf", "table", "10").status == 0
    default: return sh("ip", "-n", n, "link", "add", "k0", "type", kind).status == 0
    }
}

/// A fake host namespace with a master (`master0`, one end of a veth pair whose other end `wire0`
/// stays in the host as the "switch side"), container namespaces, a private IPAM store, our
/// host-local and static on CNI_PATH, the reference plugins' directory beside.
final class LBed {
    /// Beds of suites that run in parallel never share a name.
    static let counter = Counter()
    let id: Int
    let host: String
    var containers: [String] = []
    let dir: String

    init() throws {
        id = LBed.counter.next()
        host = "swcni-lh-\(getpid())-\(id)"
        dir = NSTemporaryDirectory() + "swift-cni-links-\(getpid())-\(id)"
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        for p in ["host-local", "static"] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/bin/\(p)", withDestinationPath: try builtPluginBinary())
        }
        sh("ip", "netns", "add", host)
        sh("ip", "-n", host, "link", "add", "master0", "mtu", "1400", "type", "veth", "peer", "name", "wire0")
        sh("ip", "-n", host, "link", "set", "master0", "up")
        sh("ip", "-n", host, "link", "set", "wire0", "up")
    }

    func container(_ tag: String) -> String {
        let n = "swcni-lc\(tag)-\(getpid())-\(id)"
        sh("ip", "netns", "add", n)
        containers.append(n)
        return n
    }

    func remove() {
        for c in containers { sh("ip", "netns", "del", c) }
        sh("ip", "netns", "del", host)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A configuration of `type` with `extra` keys and host-local IPAM on 10.86.0.0/24 (and
    /// fd86::/64 with `dual`).
    func conf(_ type: String, _ v: CNIVersion = .v1_1_0, _ extra: String = "", dual: Bool = false, routes: String = "") -> String {
        let ranges = dual ? #"[{"subnet":"10.86.0.0/24"}],[{"subnet":"fd86::/64"}]"# : #"[{"subnet":"10.86.0.0/24"}]"#
        return
            #"{"cniVersion":"\#(v.rawValue)","name":"lnet","type":"\#(type)"\#(extra),"ipam":{"type":"host-local","ranges":[\#(ranges)]\#(routes),"dataDir":"\#(dir)/ipam"}}"#
    }

    func env(_ command: String, _ ctr: String?, cid: String, ifName: String, path: String, extra: [String: String]) -> [String: String] {
        var env = ["CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifName, "CNI_PATH": path]
        if let ctr { env["CNI_NETNS"] = "/run/netns/\(ctr)" }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Our plugin, in process, in the host namespace.
    func run(
        _ plugin: some CNIPlugin, _ command: String, _ ctr: String?, cid: String = "c1", ifName: String = "eth0", conf: String,
        env extra: [String: String] = [:]
    ) throws -> PluginOutcome {
        let env = env(command, ctr, cid: cid, ifName: ifName, path: dir + "/bin", extra: extra)
        let stdin = Array(conf.utf8)
        return try NetworkNamespace(path: "/run/netns/\(host)").perform {
            PluginMain.run(plugin, environment: env, readStdin: { stdin }, log: { _ in })
        }
    }

    /// The reference plugin `type` from /usr/lib/cni (with its own IPAM plugins), in the host
    /// namespace: exit status and stdout.
    func reference(_ type: String, _ command: String, _ ctr: String, cid: String = "r1", conf: String) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let env = env(command, ctr, cid: cid, ifName: "eth0", path: "/usr/lib/cni", extra: [:])
        p.arguments = ["ip", "netns", "exec", host, "env"] + env.map { "\($0)=\($1)" } + ["/usr/lib/cni/\(type)"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle.nullDevice
        try p.run()
        input.fileHandleForWriting.write(Data(conf.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    func store() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/ipam/lnet")) ?? []).filter { $0 != ".swift-cni" }.sorted()
    }
}

/// `ip -d` of the container's eth0: kind, its info_data, MTU, up.
func linkInfo(_ ns: String, _ ifName: String = "eth0") -> (kind: String?, data: [String: Any], mtu: Int?, up: Bool) {
    let l = ipJSON(ns, "-d", "link", "show", "dev", ifName).first ?? [:]
    let info = l["linkinfo"] as? [String: Any] ?? [:]
    let flags = l["flags"] as? [String] ?? []
    return (info["info_kind"] as? String, info["info_data"] as? [String: Any] ?? [:], l["mtu"] as? Int, flags.contains("UP"))
}

/// The container's interface, addresses and routes as data with the addresses, MACs and metrics
/// left out: what the same configuration through two plugins must both produce.
func layout(_ ns: String, _ ifName: String = "eth0") -> [String] {
    let info = linkInfo(ns, ifName)
    var out = ["\(info.kind ?? "-") mtu \(info.mtu ?? 0) up \(info.up) " + info.data.map { "\($0)=\($1)" }.sorted().joined(separator: " ")]
    for a in (ipJSON(ns, "addr", "show", "dev", ifName).first?["addr_info"] as? [[String: Any]] ?? []) where a["scope"] as? String == "global" {
        out.append("addr \(a["family"] as? String ?? "") /\(a["prefixlen"] as? Int ?? 0)")
    }
    for family in ["-4", "-6"] {
        for r in ipJSON(ns, family, "route", "show") {
            let dst = r["dst"] as? String ?? ""
            if dst.hasPrefix("fe80") { continue }
            let generic = dst.hasPrefix("10.86.") || dst.hasPrefix("fd86:") ? "SUBNET" : dst
            out.append("route \(generic) via \(r["gateway"] == nil ? "-" : "GW") dev \(r["dev"] as? String ?? "") scope \(r["scope"] as? String ?? "")")
        }
    }
    return out.sorted()
}

/// A counter safe to share between suites running in parallel.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
