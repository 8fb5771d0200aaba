import Base
import CNI
import Foundation
import HostLocalPlugin
import IPAM
import Testing

/// A host-local network in a private data directory, driven in-process through PluginMain.
final class Net {
    let dir: String
    let name: String
    var ipam: String
    var version: CNIVersion
    var extra: String = ""

    init(_ ipam: String, version: CNIVersion = .v1_1_0, name: String = "hl") {
        dir = NSTemporaryDirectory() + "swift-cni-hl-\(getpid())-\(UUID().uuidString.prefix(8))"
        self.name = name
        self.ipam = ipam
        self.version = version
    }
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    var store: String { dir + "/" + name }

    func conf() -> [UInt8] {
        let body = ipam.isEmpty ? "" : ipam + ","
        return Array(
            #"{"cniVersion":"\#(version.rawValue)","name":"\#(name)","type":"bridge"\#(extra),"ipam":{\#(body)"type":"host-local","dataDir":"\#(dir)"}}"#.utf8)
    }

    @discardableResult
    func run(_ command: String, _ cid: String = "c1", ifname: String = "eth0", env extra: [String: String] = [:], stdin: [UInt8]? = nil)
        -> PluginOutcome
    {
        var e = ["CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": ifname, "CNI_PATH": "/x"]
        if command == "GC" || command == "STATUS" { e = ["CNI_COMMAND": command, "CNI_PATH": "/x"] }
        for (k, v) in extra { e[k] = v }
        let input = stdin ?? conf()
        return PluginMain.run(HostLocalPlugin(), environment: e, readStdin: { input }, log: { _ in })
    }

    /// ADD and the addresses of its result.
    func add(_ cid: String = "c1", ifname: String = "eth0", env: [String: String] = [:]) throws -> [String] {
        let o = run("ADD", cid, ifname: ifname, env: env)
        guard o.exitCode == 0 else { throw OutcomeError(text: o.stdout) }
        return try CNIResult(json: JSONValue.parse(o.stdout)).ips.map(\.address.description)
    }

    func gc(valid: [(String, String)]) -> PluginOutcome {
        var c = try! JSONValue.parse(conf()).objectValue!
        c["cni.dev/valid-attachments"] = .array(valid.map { .object(["containerID": .string($0.0), "ifname": .string($0.1)]) })
        return run("GC", stdin: Array(JSONValue.object(c).serialized().utf8))
    }

    /// Files in the store, without the index directory.
    var files: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: store)) ?? []).filter { $0 != ".swift-cni" }.sorted() }
}

struct OutcomeError: Error, CustomStringConvertible { let text: String; var description: String { text } }

func code(_ o: PluginOutcome) -> UInt? {
    guard o.exitCode != 0, let v = try? JSONValue.parse(o.stdout) else { return nil }
    return CNIError(json: v)?.code.rawValue
}
func message(_ o: PluginOutcome) -> String {
    guard let v = try? JSONValue.parse(o.stdout), let e = CNIError(json: v) else { return o.stdout }
    return e.msg + " " + e.details
}

@Suite struct HostLocalTests {
    @Test(arguments: CNIVersion.allSupported)
    func addCheckDelEveryVersion(_ v: CNIVersion) throws {
        let net = Net(#""ranges":[[{"subnet":"10.10.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]"#, version: v)
        let o = net.run("ADD")
        #expect(o.exitCode == 0)
        let doc = try JSONValue.parse(o.stdout)
        #expect(doc.objectValue?["cniVersion"] == .string(v.rawValue))
        let r = try CNIResult(json: doc)
        #expect(r.ips.map(\.address.description) == ["10.10.0.2/24"])
        #expect(r.ips.first?.gateway?.description == "10.10.0.1")
        #expect(r.routes.map(\.dst.description) == ["0.0.0.0/0"])
        #expect(net.files == ["10.10.0.2", "last_reserved_ip.0", "lock"])
        #expect(try String(contentsOfFile: net.store + "/10.10.0.2", encoding: .utf8) == "c1\r\neth0")
        if v >= .v0_4_0 {
            #expect(net.run("CHECK", stdin: prev(net.conf(), o.stdout)).exitCode == 0)
        } else {
            #expect(code(net.run("CHECK")) == 1)
        }
        #expect(net.run("DEL").exitCode == 0)
        #expect(net.files == ["last_reserved_ip.0", "lock"])
        #expect(net.run("DEL").exitCode == 0, "DEL is idempotent")
        if v >= .v1_1_0 {
            #expect(net.run("STATUS").exitCode == 0)
            #expect(net.gc(valid: []).exitCode == 0)
        } else {
            #expect(code(net.run("STATUS")) == 1)
            #expect(code(net.run("GC")) == 1)
        }
    }

    @Test func dualStackAndTwoRangeSetsGiveOneAddressPerSet() throws {
        let net = Net(#""ranges":[[{"subnet":"10.11.0.0/24"}],[{"subnet":"fd00:11::/64"}],[{"subnet":"10.12.0.0/24"}]]"#)
        #expect(try net.add() == ["10.11.0.2/24", "fd00:11::2/64", "10.12.0.2/24"])
        #expect(try net.add("c2") == ["10.11.0.3/24", "fd00:11::3/64", "10.12.0.3/24"])
        #expect(net.files.filter { $0.hasPrefix("last_reserved") } == ["last_reserved_ip.0", "last_reserved_ip.1", "last_reserved_ip.2"])
        net.version = .v0_2_0
        net.ipam = #""ranges":[[{"subnet":"10.11.0.0/24"}],[{"subnet":"10.12.0.0/24"}]]"#
        #expect(code(net.run("ADD", "c3")) == 1, "0.2.0 cannot carry two IPv4 addresses")
    }

    @Test func rangesInOneSetArePooledAndWrapRoundRobin() throws {
        let net = Net(#""ranges":[[{"subnet":"10.13.0.0/29","rangeStart":"10.13.0.5"},{"subnet":"10.13.1.0/30"}]]"#)
        // .5 .6 of the first range, then .2 of the second (.1 is its gateway), then exhausted.
        #expect(try net.add("a") == ["10.13.0.5/29"])
        #expect(try net.add("b") == ["10.13.0.6/29"])
        #expect(try net.add("c") == ["10.13.1.2/30"])
        #expect(code(net.run("ADD", "d")) == 106)
        #expect(message(net.run("ADD", "d")).contains("no IP addresses available in range set: 10.13.0.5-10.13.0.6,10.13.1.1-10.13.1.2"))
        // Release b; round-robin continues after the last reserved (.1.2), wraps, finds .6.
        #expect(net.run("DEL", "b").exitCode == 0)
        #expect(try net.add("e") == ["10.13.0.6/29"])
    }

    @Test func roundRobinDoesNotReuseAReleasedAddressAtOnce() throws {
        let net = Net(#""ranges":[[{"subnet":"10.14.0.0/24"}]]"#)
        #expect(try net.add("a") == ["10.14.0.2/24"])
        net.run("DEL", "a")
        #expect(try net.add("b") == ["10.14.0.3/24"])
        #expect(try net.add("c") == ["10.14.0.4/24"])
    }

    @Test func defaultsExcludeBroadcastAndGateway() throws {
        let net = Net(#""subnet":"10.15.0.0/30""#)
        #expect(try net.add("a") == ["10.15.0.2/30"])
        #expect(code(net.run("ADD", "b")) == 106, ".3 is the broadcast address, .1 the gateway")
        let v6 = Net(#""subnet":"fd00:15::/126""#)
        #expect(try v6.add("a") == ["fd00:15::2/126"])
        #expect(try v6.add("b") == ["fd00:15::3/126"], "IPv6 has no broadcast")
    }

    @Test func legacyKeysAndRuntimeIPRangesArePrepended() throws {
        let net = Net(#""subnet":"10.16.0.0/24","rangeStart":"10.16.0.50","gateway":"10.16.0.254","ranges":[[{"subnet":"10.17.0.0/24"}]]"#)
        net.extra = #","runtimeConfig":{"ipRanges":[[{"subnet":"10.18.0.0/24"}]]}"#
        let o = net.run("ADD")
        let r = try CNIResult(json: JSONValue.parse(o.stdout))
        #expect(r.ips.map(\.address.description) == ["10.18.0.2/24", "10.16.0.50/24", "10.17.0.2/24"])
        #expect(r.ips[1].gateway?.description == "10.16.0.254")
    }

    @Test func requestedAddressesFromEverySource() throws {
        let net = Net(#""ranges":[[{"subnet":"10.19.0.0/24"}],[{"subnet":"fd00:19::/64"}]]"#)
        #expect(try net.add("a", env: ["CNI_ARGS": "IP=10.19.0.77"]) == ["10.19.0.77/24", "fd00:19::2/64"])
        #expect(try net.add("b", env: ["CNI_ARGS": "IgnoreUnknown=1;IP=10.19.0.78/24,fd00:19::78"]) == ["10.19.0.78/24", "fd00:19::78/64"])
        net.extra = #","runtimeConfig":{"ips":["fd00:19::99/64"]},"args":{"cni":{"ips":["10.19.0.99"]}}"#
        // args.cni.ips wins over CNI_ARGS IP (the convention); runtimeConfig.ips adds to it.
        #expect(try net.add("c", env: ["CNI_ARGS": "IP=10.19.0.50"]) == ["10.19.0.99/24", "fd00:19::99/64"])
        net.extra = ""
        let taken = net.run("ADD", "d", env: ["CNI_ARGS": "IP=10.19.0.77"])
        #expect(code(taken) == 106)
        #expect(message(taken).contains("10.19.0.77 is not available") && message(taken).contains("a/eth0"))
        #expect(code(net.run("ADD", "d", env: ["CNI_ARGS": "IP=10.99.0.1"])) == 106)
        #expect(message(net.run("ADD", "d", env: ["CNI_ARGS": "IP=10.99.0.1"])).contains("not in any range set"))
        #expect(code(net.run("ADD", "d", env: ["CNI_ARGS": "IP=10.19.0.1"])) == 106, "the gateway is never handed out")
        #expect(code(net.run("ADD", "d", env: ["CNI_ARGS": "IP=10.19.0.5,10.19.0.6"])) == 106, "two in one set")
        #expect(code(net.run("ADD", "d", env: ["CNI_ARGS": "IP=banana"])) == 7)
        #expect(code(net.run("ADD", "d", env: ["CNI_ARGS": "FOO=1"])) == 4, "unknown CNI_ARGS key")
        // A failed request left nothing behind: d has no address.
        #expect(!net.files.contains { (try? String(contentsOfFile: net.store + "/" + $0, encoding: .utf8))?.hasPrefix("d\r") == true })
        // Requested addresses move the round-robin cursor too, as in the reference.
        #expect(try net.add("d") == ["10.19.0.100/24", "fd00:19::9a/64"])
    }

    @Test func failedAllocationReleasesWhatItReserved() throws {
        // The second set is full, so the address taken in the first must be released again.
        let net = Net(#""ranges":[[{"subnet":"10.20.0.0/24"}],[{"subnet":"10.21.0.0/30"}]]"#)
        _ = try net.add("a")
        #expect(code(net.run("ADD", "b")) == 106)
        #expect(net.files == ["10.20.0.2", "10.21.0.2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"])
    }

    @Test func secondAddForTheSameAttachmentIsRefused() throws {
        let net = Net(#""ranges":[[{"subnet":"10.22.0.0/24"}]]"#)
        _ = try net.add("a")
        let again = net.run("ADD", "a")
        #expect(code(again) == 107)
        #expect(message(again).contains("duplicate allocation is not allowed"))
        #expect(try net.add("a", ifname: "net1") == ["10.22.0.3/24"], "another interface of the same container is fine")
        #expect(net.run("DEL", "a").exitCode == 0)
        #expect(net.files == ["10.22.0.3", "last_reserved_ip.0", "lock"], "DEL releases only eth0's address")
    }

    /// A switch in place: the reference plugin reserved an address for a/eth0 (no index of ours).
    /// Our ADD for the same attachment must find it and refuse, as the reference does, instead of
    /// reserving a second address.
    @Test func addFindsTheReferencePluginsReservation() throws {
        let reference = "/usr/lib/cni/host-local"
        try #require(FileManager.default.isExecutableFile(atPath: reference), "\(reference) missing: install containernetworking-plugins")
        let net = Net(#""ranges":[[{"subnet":"10.28.0.0/24"}]]"#, version: .v1_0_0)
        _ = try net.add("seed")
        let env = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "a", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"]
        let out = try Subprocess.run(reference, environment: env, stdin: net.conf())
        #expect(out.succeeded, "\(String(decoding: out.stdout + out.stderr, as: UTF8.self))")
        #expect(net.files == ["10.28.0.2", "10.28.0.3", "last_reserved_ip.0", "lock"])
        let again = net.run("ADD", "a")
        #expect(code(again) == 107)
        #expect(message(again).contains("10.28.0.3 has been allocated to a/eth0"))
        #expect(net.files == ["10.28.0.2", "10.28.0.3", "last_reserved_ip.0", "lock"], "no second address")
        #expect(net.run("DEL", "a").exitCode == 0)
        #expect(try net.add("a") == ["10.28.0.4/24"])
    }

    /// The index lost (removed, or a crash between a reservation and its index entry): the next
    /// ADD reads the directory in full and still refuses the duplicate.
    @Test func addRefusesADuplicateWhenTheIndexIsGone() throws {
        let net = Net(#""ranges":[[{"subnet":"10.29.0.0/24"}]]"#)
        _ = try net.add("a")
        _ = try net.add("b")
        try FileManager.default.removeItem(atPath: net.store + "/.swift-cni")
        #expect(code(net.run("ADD", "a")) == 107)
        #expect(code(net.run("ADD", "b")) == 107)
        #expect(net.files == ["10.29.0.2", "10.29.0.3", "last_reserved_ip.0", "lock"])
        // The index was rebuilt: a lost entry of one attachment alone is found as well.
        try FileManager.default.removeItem(atPath: net.store + "/.swift-cni/a%eth0")
        #expect(code(net.run("ADD", "a")) == 107)
        #expect(try net.add("c") == ["10.29.0.4/24"])
        #expect(net.run("DEL", "a").exitCode == 0)
        #expect(net.files == ["10.29.0.3", "10.29.0.4", "last_reserved_ip.0", "lock"])
    }

    /// DEL, CHECK and GC of a network that never had an address leave the disk as it was.
    @Test func delOfNothingCreatesNothing() throws {
        let net = Net(#""ranges":[[{"subnet":"10.30.0.0/24"}]]"#)
        #expect(net.run("DEL", "never").exitCode == 0)
        #expect(net.gc(valid: []).exitCode == 0)
        #expect(code(net.run("CHECK", "never")) == 108)
        #expect(!FileManager.default.fileExists(atPath: net.dir), "no data directory, no lock")
    }

    @Test func delFindsLegacyAndForeignReservations() throws {
        let net = Net(#""ranges":[[{"subnet":"10.23.0.0/24"}]]"#)
        _ = try net.add("seed")
        // Made by another host-local (no index): the two-line form with white space, and the
        // legacy id-only form.
        try " ref1\r\neth0\n".write(toFile: net.store + "/10.23.0.50", atomically: true, encoding: .utf8)
        try "legacy\n".write(toFile: net.store + "/10.23.0.51", atomically: true, encoding: .utf8)
        #expect(net.run("CHECK", "ref1").exitCode == 0)
        #expect(net.run("CHECK", "legacy").exitCode == 0)
        #expect(code(net.run("CHECK", "nobody")) == 108)
        #expect(net.run("DEL", "ref1").exitCode == 0)
        #expect(net.run("DEL", "legacy").exitCode == 0)
        #expect(net.files == ["10.23.0.2", "last_reserved_ip.0", "lock"])
    }

    @Test func delWorksWithABrokenRangeAndNeverTouchesOthers() throws {
        let net = Net(#""ranges":[[{"subnet":"10.24.0.0/24"}]]"#)
        _ = try net.add("a")
        _ = try net.add("b")
        net.ipam = #""ranges":[[{"subnet":"not-a-cidr"}]]"#
        #expect(net.run("DEL", "a").exitCode == 0)
        #expect(net.files == ["10.24.0.3", "last_reserved_ip.0", "lock"])
    }

    @Test func checkComparesWithPrevResult() throws {
        let net = Net(#""ranges":[[{"subnet":"10.25.0.0/24"}]]"#)
        let a = net.run("ADD", "a")
        _ = try net.add("b")
        #expect(net.run("CHECK", "a", stdin: prev(net.conf(), a.stdout)).exitCode == 0)
        let other = #"{"cniVersion":"1.1.0","ips":[{"address":"10.25.0.3/24"}]}"#
        let c = net.run("CHECK", "a", stdin: prev(net.conf(), other))
        #expect(code(c) == 108)
        #expect(message(c).contains("10.25.0.3 of prevResult is not allocated to a/eth0"))
    }

    @Test func gcReleasesEverythingNotValidAndReportsNothingElse() throws {
        let net = Net(#""ranges":[[{"subnet":"10.26.0.0/24"}],[{"subnet":"fd00:26::/64"}]]"#)
        for cid in ["a", "b", "c"] { _ = try net.add(cid) }
        try "legacy-keep".write(toFile: net.store + "/10.26.0.100", atomically: true, encoding: .utf8)
        try "legacy-drop".write(toFile: net.store + "/10.26.0.101", atomically: true, encoding: .utf8)
        #expect(net.gc(valid: [("b", "eth0"), ("legacy-keep", "eth0")]).exitCode == 0)
        #expect(net.files == ["10.26.0.100", "10.26.0.3", "fd00:26::3", "last_reserved_ip.0", "last_reserved_ip.1", "lock"])
        // Index entries of released attachments are gone too: a new ADD of "a" succeeds.
        #expect(try net.add("a").count == 2)
        #expect(net.gc(valid: []).exitCode == 0)
        #expect(net.files == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"])
    }

    /// A writer killed before renaming its index entry leaves `<entry>.tmp` (fixed name, under
    /// the lock): DEL of that attachment, and GC, remove it; it is never read as an attachment.
    @Test func indexTemporariesOfKilledWritersAreRemoved() throws {
        let net = Net(#""ranges":[[{"subnet":"10.27.0.0/24"}]]"#)
        _ = try net.add("a")
        let index = net.store + "/.swift-cni"
        try "b\neth0\n10.27.0.9\n".write(toFile: index + "/b%eth0.tmp", atomically: false, encoding: .utf8)
        try "a\neth0\n".write(toFile: index + "/a%eth0.tmp", atomically: false, encoding: .utf8)
        #expect(net.run("DEL", "a").exitCode == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: index) == ["b%eth0.tmp"])
        #expect(net.gc(valid: [("b", "eth0")]).exitCode == 0)
        #expect(!FileManager.default.fileExists(atPath: index), "GC removed the last temporary and the index directory")
        #expect(net.files == ["last_reserved_ip.0", "lock"])
    }

    @Test func statusIs50WhenExhaustedOrUnusable() throws {
        let net = Net(#""ranges":[[{"subnet":"10.27.0.0/30"}]]"#)
        #expect(net.run("STATUS").exitCode == 0)
        _ = try net.add("a")
        let s = net.run("STATUS")
        #expect(code(s) == 50)
        #expect(message(s).contains("10.27.0.1-10.27.0.2"))
        net.run("DEL", "a")
        #expect(net.run("STATUS").exitCode == 0)
        // A data directory that is a file.
        let broken = Net(#""ranges":[[{"subnet":"10.28.0.0/24"}]]"#)
        _ = FileManager.default.createFile(atPath: broken.dir, contents: Data("x".utf8))
        #expect(code(broken.run("STATUS")) == 50)
        #expect(code(broken.run("ADD")) == 105)
    }

    @Test(arguments: [
        (#""ranges":[[{"subnet":"10.30.0.0/24"}],[{"subnet":"10.30.0.0/25"}]]"#, "overlaps"),
        (#""ranges":[[{"subnet":"10.30.0.0/24"},{"subnet":"10.30.0.128/25"}]]"#, "overlaps"),
        (#""ranges":[[{"subnet":"10.30.0.1/24"}]]"#, "host bits"),
        (#""ranges":[[{"subnet":"10.30.0.0/31"}]]"#, "too small"),
        (#""ranges":[[{"subnet":"10.30.0.0/24","gateway":"10.31.0.1"}]]"#, "10.31.0.1"),
        (#""ranges":[[{"subnet":"10.30.0.0/24","rangeStart":"10.30.1.1"}]]"#, "10.30.1.1"),
        (#""ranges":[[{"subnet":"10.30.0.0/24","rangeEnd":"10.31.0.9"}]]"#, "10.31.0.9"),
        (#""ranges":[[{"subnet":"10.30.0.0/24","rangeStart":"10.30.0.9","rangeEnd":"10.30.0.5"}]]"#, "after rangeEnd"),
        (#""ranges":[[{"subnet":"10.30.0.0/33"}]]"#, "10.30.0.0/33"),
        (#""ranges":[[{"subnet":"banana"}]]"#, "banana"),
        (#""ranges":[[{"subnet":"10.30.0.0/24"},{"subnet":"fd00::/64"}]]"#, "mixes"),
        (#""ranges":[[]]"#, "at least one range"),
        (#""ranges":[]"#, "no IP ranges"),
        (#""routes":[]"#, "no IP ranges"),
        (#""ranges":[[{"rangeStart":"10.0.0.1"}]]"#, "subnet"),
        (#""subnet":"10.30.0.0/24","resolvConf":"/nonexistent/resolv.conf""#, "/nonexistent/resolv.conf"),
    ])
    func invalidConfigurationIsCode7NamingTheValue(_ ipam: String, _ mention: String) {
        let net = Net(ipam)
        let o = net.run("ADD")
        #expect(code(o) == 7, "\(ipam)")
        #expect(message(o).contains(mention), "\(message(o))")
        #expect(!FileManager.default.fileExists(atPath: net.store + "/10.30.0.2"))
    }

    @Test func wrongTypesAreCode6() {
        for ipam in [
            #""ranges":{"subnet":"10.0.0.0/24"}"#, #""ranges":[[{"subnet":24}]]"#, #""routes":{},"subnet":"10.0.0.0/24""#,
            #""resolvConf":["x"],"subnet":"10.0.0.0/24""#,
        ] {
            #expect(code(Net(ipam).run("ADD")) == 6, "\(ipam)")
        }
    }

    @Test func networkNameCannotEscapeDataDir() {
        for name in ["../../etc", "a/b", "..", ".x"] {
            let net = Net(#""subnet":"10.31.0.0/24""#, name: name)
            #expect(code(net.run("ADD")) == 7, "\(name)")
        }
    }

    @Test func resolvConfBecomesTheResultDNS() throws {
        let net = Net("")
        try FileManager.default.createDirectory(atPath: net.dir, withIntermediateDirectories: true)
        let path = net.dir + "/resolv.conf"
        try """
        # comment
        nameserver 10.0.0.53
        nameserver fd00::53
        domain example.org
        search a.example b.example
        ; also a comment
        options ndots:2 timeout:1
        sortlist 10.0.0.0
        """.write(toFile: path, atomically: true, encoding: .utf8)
        net.ipam = #""subnet":"10.32.0.0/24","resolvConf":"\#(path)""#
        let r = try CNIResult(json: JSONValue.parse(net.run("ADD").stdout))
        #expect(
            r.dns
                == CNIResult.DNS(
                    nameservers: ["10.0.0.53", "fd00::53"], domain: "example.org", search: ["a.example", "b.example"],
                    options: ["ndots:2", "timeout:1"]))
    }
}

/// The configuration with `prevResult` set.
func prev(_ conf: [UInt8], _ result: String) -> [UInt8] {
    var c = try! JSONValue.parse(conf).objectValue!
    c["prevResult"] = try! JSONValue.parse(result)
    return Array(JSONValue.object(c).serialized().utf8)
}
