import Base
import CNI
import DNS
import Testing

/// A query: header (ID 0x1234, RD), one question, optional OPT.
func query(_ name: String, _ type: RRType = .a, qclass: UInt16 = 1, flags: UInt16 = 0x0100, edns: (size: UInt16, version: UInt8)? = nil) -> [UInt8] {
    var m: [UInt8] = [0x12, 0x34, UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
    DNSName(name)!.write(to: &m)
    m += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), UInt8(qclass >> 8), UInt8(qclass & 0xFF)]
    if let e = edns { m += [0, 0, 41, UInt8(e.size >> 8), UInt8(e.size & 0xFF), 0, e.version, 0, 0, 0, 0] }
    return m
}

/// The parts of an answer the tests look at.
struct Answer {
    let bytes: [UInt8]
    var id: UInt16 { UInt16(bytes[0]) << 8 | UInt16(bytes[1]) }
    var rcode: UInt8 { bytes[3] & 0xF }
    var aa: Bool { bytes[2] & 0x04 != 0 }
    var tc: Bool { bytes[2] & 0x02 != 0 }
    var ra: Bool { bytes[3] & 0x80 != 0 }
    var qd: Int { Int(bytes[5]) }
    var an: Int { Int(bytes[6]) << 8 | Int(bytes[7]) }
    var ns: Int { Int(bytes[8]) << 8 | Int(bytes[9]) }
    var ar: Int { Int(bytes[10]) << 8 | Int(bytes[11]) }
    /// The records of every section: (type, rdata).
    var records: [(type: RRType, rdata: [UInt8])] {
        var at = 12
        func name() { while at < bytes.count { let b = bytes[at]; if b == 0 { at += 1; return }; if b & 0xC0 == 0xC0 { at += 2; return }; at += Int(b) + 1 } }
        if qd == 1 { name(); at += 4 }
        var out: [(RRType, [UInt8])] = []
        for _ in 0..<(an + ns + ar) {
            name()
            let t = UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
            let len = Int(bytes[at + 8]) << 8 | Int(bytes[at + 9])
            out.append((RRType(rawValue: t), Array(bytes[(at + 10)..<(at + 10 + len)])))
            at += 10 + len
        }
        return out
    }
    var addresses: [String] { records.filter { $0.type == RRType.a || $0.type == RRType.aaaa }.compactMap { IPAddress(networkBytes: $0.rdata)?.description } }
}

func zones() -> Zones {
    var web = NetworkRecords(network: "web")
    web.listen = [IPAddress("10.88.0.1")!, IPAddress("fd00:88::1")!]
    web.upstreams = [IPAddress("192.0.2.53")!]
    web.entries = [
        .init(owner: "t1", v4: [IPAddress("10.88.0.5")!], v6: [IPAddress("fd00:88::5")!], names: ["web", "web-alias", "0123456789ab"]),
        .init(owner: "t2", v4: [IPAddress("10.88.0.6")!], v6: [], names: ["db"]),
        .init(owner: "t3", v4: (0..<100).map { IPAddress("10.88.1.\($0)")! }, v6: [], names: ["many"]),
    ]
    var other = NetworkRecords(network: "other")
    other.listen = [IPAddress("10.89.0.1")!]
    other.isInternal = true
    other.entries = [.init(owner: "t4", v4: [IPAddress("10.89.0.5")!], v6: [], names: ["secret"])]
    return Zones([web, other], generation: 1)
}

let z = zones()
let inWeb = IPAddress("10.88.0.6")!, webListener = IPAddress("10.88.0.1")!

func ask(_ m: [UInt8], from source: IPAddress = inWeb, listener: IPAddress = webListener, tcp: Bool = false) -> Outcome {
    Responder.respond(m, source: source, listener: listener, overTCP: tcp, zones: z, shuffle: { _ in })
}
func answer(_ m: [UInt8], from source: IPAddress = inWeb, listener: IPAddress = webListener, tcp: Bool = false) -> Answer? {
    if case .reply(let b) = ask(m, from: source, listener: listener, tcp: tcp) { return Answer(bytes: b) }
    return nil
}

@Suite struct AnswerTests {
    @Test func namesAliasesShortIDAndFQDNCaseInsensitive() throws {
        for n in ["web", "WEB", "web-alias", "0123456789ab", "web.dns.podman", "Web.DNS.Podman."] {
            let a = try #require(answer(query(n)))
            #expect(a.rcode == 0 && a.aa && a.ra && a.id == 0x1234, "\(n)")
            #expect(a.addresses == ["10.88.0.5"], "\(n)")
        }
        #expect(answer(query("web", RRType.aaaa))?.addresses == ["fd00:88::5"])
        #expect(answer(query("web", RRType.any))?.addresses == ["10.88.0.5", "fd00:88::5"])
    }

    @Test func nodataNotNXDOMAINForAnyOtherTypeOfAKnownName() throws {
        for t: RRType in [.aaaa, 16, 15, 33, 65280] {  // db has no IPv6; TXT, MX, SRV, private
            let a = try #require(answer(query("db", t)))
            #expect(a.rcode == 0 && a.an == 0 && a.ns == 1 && a.aa, "type \(t.rawValue)")
            #expect(a.records.first?.type == RRType.soa)
        }
    }

    @Test func nxdomainWithSOAAndNeverForwardedInOurDomainOrSingleLabel() throws {
        for n in ["nobody", "nobody.dns.podman"] {
            let a = try #require(answer(query(n)))
            #expect(a.rcode == 3 && a.aa && a.ns == 1 && a.records.first?.type == RRType.soa, "\(n)")
        }
    }

    @Test func otherNamesAreForwardedToTheNetworksUpstreams() {
        guard case .forward(let q, let ups, let fail) = ask(query("example.org")) else { Issue.record("not forwarded"); return }
        #expect(q.id == 0x1234 && ups.map(\.description) == ["192.0.2.53"])
        #expect(Answer(bytes: fail).rcode == 2)
    }

    @Test func isolationBySourceAndListener() throws {
        // A container of "other" sees only its names; "web" names are NXDOMAIN for it (single label)
        // and it is internal: no forwarding, REFUSED.
        let fromOther = IPAddress("10.89.0.5")!
        #expect(answer(query("web"), from: fromOther, listener: IPAddress("10.89.0.1")!)?.rcode == 3)
        #expect(answer(query("secret"), from: fromOther, listener: IPAddress("10.89.0.1")!)?.addresses == ["10.89.0.5"])
        #expect(answer(query("example.org"), from: fromOther, listener: IPAddress("10.89.0.1")!)?.rcode == 5)
        #expect(answer(query("secret"))?.rcode == 3, "web's containers do not see other's names")
        // Asking web's listener from other's container: still only its own networks.
        #expect(answer(query("web"), from: fromOther)?.rcode == 3)
        // A source that is no container sees the listener's network.
        #expect(answer(query("web"), from: IPAddress("10.88.0.1")!)?.addresses == ["10.88.0.5"])
        #expect(answer(query("secret"), from: IPAddress("192.0.2.9")!, listener: IPAddress("10.89.0.1")!)?.addresses == ["10.89.0.5"])
    }

    @Test func onlyContainersGetForwardingNeverAnOpenResolver() throws {
        // The host, or a client routed to a gateway address: names yes, forwarding no (REFUSED, no RA).
        for source in ["10.88.0.1", "192.0.2.9", "10.88.0.200", "fd00:88::77"] {
            let a = try #require(answer(query("example.org"), from: IPAddress(source)!), "\(source)")
            #expect(a.rcode == 5 && !a.ra && !a.aa, "\(source)")
            #expect(try #require(answer(query("web"), from: IPAddress(source)!)).ra == false, "\(source)")
        }
        if case .forward = ask(query("example.org"), from: IPAddress("fd00:88::5")!) {} else { Issue.record("a container's IPv6 address forwards") }
    }

    @Test func reverseLookupsBothFamilies() throws {
        let a = try #require(answer(query("5.0.88.10.in-addr.arpa", RRType.ptr)))
        #expect(a.rcode == 0 && a.an == 1 && a.aa)
        var target: [UInt8] = []
        DNSName("web.dns.podman")!.write(to: &target)
        #expect(a.records.first?.rdata == target)
        let nibbles = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.8.0.0.0.0.d.f.ip6.arpa"
        #expect(answer(query(nibbles, RRType.ptr))?.records.first?.rdata == target)
        // An address of another network is not shown: forwarded (web is not internal).
        if case .forward = ask(query("5.0.89.10.in-addr.arpa", RRType.ptr)) {} else { Issue.record("expected forward") }
    }

    @Test func truncationOverUDPAndFullAnswersOverTCP() throws {
        let plain = try #require(answer(query("many")))
        #expect(plain.tc && plain.an == 0 && plain.bytes.count <= 512)
        let edns = try #require(answer(query("many", edns: (4096, 0))))
        #expect(edns.tc && edns.bytes.count <= 1232 && edns.ar == 1, "EDNS size capped at 1232, OPT kept")
        let tcp = try #require(answer(query("many"), tcp: true))
        #expect(!tcp.tc && tcp.an == 100)
        let small = try #require(answer(query("web", edns: (1232, 0))))
        #expect(!small.tc && small.an == 1 && small.ar == 1)
    }
}

/// The founding document's compose topology: web on frontend; api on frontend (eth0) and
/// backend (eth1); db and cache on backend; "both", another container on the two networks
/// (backend as eth0, frontend as eth1), whose name exists on both.
@Suite struct SeveralNetworksTests {
    static let api = Attachment(containerID: "api", ifName: "eth0").containerTag
    static let both = Attachment(containerID: "both", ifName: "eth0").containerTag
    static let zones: Zones = {
        func entry(_ tag: String, _ v4: String, _ names: [String], _ container: String? = nil, _ ifName: String? = nil) -> NetworkRecords.Entry {
            .init(owner: tag, v4: [IPAddress(v4)!], v6: [], names: names, container: container, ifName: ifName)
        }
        var front = NetworkRecords(network: "frontend")
        front.domain = "front.test"
        front.listen = [IPAddress("10.251.0.1")!]
        front.upstreams = [IPAddress("192.0.2.53")!]
        front.entries = [
            entry("f1", "10.251.0.2", ["web"], Attachment(containerID: "web", ifName: "eth0").containerTag, "eth0"),
            entry("f2", "10.251.0.3", ["api", "api-alias"], api, "eth0"),
            entry("f3", "10.251.0.4", ["both"], both, "eth1"),
        ]
        var back = NetworkRecords(network: "backend")
        back.domain = "back.test"
        back.listen = [IPAddress("10.252.0.1")!]
        back.isInternal = true
        back.entries = [
            entry("b1", "10.252.0.3", ["api"], api, "eth1"),
            entry("b2", "10.252.0.4", ["db", "0123456789ab"], Attachment(containerID: "db", ifName: "eth0").containerTag, "eth0"),
            entry("b3", "10.252.0.5", ["cache"]),  // written before container tags: still served
            entry("b4", "10.252.0.6", ["both"], both, "eth0"),
        ]
        return Zones([front, back], generation: 1)
    }()
    static let frontGW = IPAddress("10.251.0.1")!, backGW = IPAddress("10.252.0.1")!

    func ask(_ name: String, _ type: RRType = .a, from: String, via: IPAddress) -> Answer? {
        if case .reply(let b) = Responder.respond(
            query(name, type), source: IPAddress(from)!, listener: via, overTCP: false, zones: Self.zones, shuffle: { _ in })
        {
            return Answer(bytes: b)
        }
        return nil
    }

    @Test func aContainerSeesTheNamesOfAllOfItsNetworksOnEveryNameserver() throws {
        // api, from either of its addresses, on either nameserver: web (frontend), db and cache (backend).
        for (from, via) in [("10.251.0.3", Self.frontGW), ("10.251.0.3", Self.backGW), ("10.252.0.3", Self.backGW), ("10.252.0.3", Self.frontGW)] {
            #expect(ask("web", from: from, via: via)?.addresses == ["10.251.0.2"], "\(from) via \(via)")
            #expect(ask("db", from: from, via: via)?.addresses == ["10.252.0.4"], "\(from) via \(via)")
            #expect(ask("0123456789ab", from: from, via: via)?.addresses == ["10.252.0.4"], "short ID")
            #expect(ask("cache", from: from, via: via)?.addresses == ["10.252.0.5"])
            #expect(ask("db.back.test", from: from, via: via)?.addresses == ["10.252.0.4"], "FQDN of the other network")
            #expect(ask("4.0.252.10.in-addr.arpa", RRType.ptr, from: from, via: via)?.an == 1, "reverse of db")
        }
        // api's own alias, from the backend side.
        #expect(ask("api-alias", from: "10.252.0.4", via: Self.backGW)?.rcode == 3, "db is not on frontend: api's frontend alias is hidden")
        #expect(ask("api-alias", from: "10.252.0.3", via: Self.backGW)?.addresses == ["10.251.0.3"])
    }

    @Test func isolationHolds() throws {
        // web (frontend only) reaches api by name but never db or cache: NXDOMAIN, not a timeout.
        #expect(ask("api", from: "10.251.0.2", via: Self.frontGW)?.addresses == ["10.251.0.3"])
        for name in ["db", "cache", "db.back.test"] {
            let a = try #require(ask(name, from: "10.251.0.2", via: Self.frontGW))
            #expect(a.rcode == 3, "\(name)")
        }
        // Asking backend's nameserver does not help web either.
        #expect(ask("db", from: "10.251.0.2", via: Self.backGW)?.rcode == 3)
        // db (backend only) sees api on backend, never web.
        #expect(ask("api", from: "10.252.0.4", via: Self.backGW)?.addresses == ["10.252.0.3"])
        #expect(ask("web", from: "10.252.0.4", via: Self.backGW)?.rcode == 3)
        #expect(ask("4.0.251.10.in-addr.arpa", RRType.ptr, from: "10.252.0.4", via: Self.backGW)?.an == 0)
    }

    @Test func aNameOnTwoNetworksAnswersWithTheAddressOnTheNetworkAsked() throws {
        // "both" and api share both networks: the nameserver asked decides; then the asker's
        // interface order (api's eth0 is frontend).
        #expect(ask("both", from: "10.251.0.3", via: Self.frontGW)?.addresses == ["10.251.0.4"])
        #expect(ask("both", from: "10.251.0.3", via: Self.backGW)?.addresses == ["10.252.0.6"])
        #expect(ask("both", from: "10.252.0.3", via: Self.backGW)?.addresses == ["10.252.0.6"])
        #expect(ask("both", from: "10.252.0.3", via: IPAddress("10.9.9.9")!)?.addresses == ["10.251.0.4"], "no listener of its networks: eth0's network first")
        // And for "both" itself, whose eth0 is backend.
        #expect(ask("api", from: "10.251.0.4", via: IPAddress("10.9.9.9")!)?.addresses == ["10.252.0.3"])
        // web and db see "both" on their one network.
        #expect(ask("both", from: "10.251.0.2", via: Self.frontGW)?.addresses == ["10.251.0.4"])
        #expect(ask("both", from: "10.252.0.4", via: Self.backGW)?.addresses == ["10.252.0.6"])
    }

    @Test func forwardingAsToday() throws {
        // api is on a non-internal network: forwarded to frontend's upstream on either nameserver.
        for via in [Self.frontGW, Self.backGW] {
            guard
                case .forward(_, let upstreams, _) = Responder.respond(
                    query("example.org"), source: IPAddress("10.252.0.3")!, listener: via, overTCP: false, zones: Self.zones)
            else {
                Issue.record("api via \(via) is forwarded")
                continue
            }
            #expect(upstreams == [IPAddress("192.0.2.53")!])
        }
        // db is only on the internal backend: refused.
        #expect(ask("example.org", from: "10.252.0.4", via: Self.backGW)?.rcode == 5)
    }

    @Test func entriesKeepTheirContainerThroughTheFile() throws {
        var r = NetworkRecords(network: "n")
        r.entries = [
            .init(owner: "a:b", v4: [IPAddress("10.0.0.2")!], v6: [], names: ["x"], container: "c0ffee0123456789", ifName: "eth1"),
            .init(owner: "a:c", v4: [IPAddress("10.0.0.3")!], v6: [], names: ["y"]),
        ]
        #expect(r.text.contains("entry a:b@c0ffee0123456789:eth1 10.0.0.2 - x\n"))
        var problems: [String] = []
        #expect(NetworkRecords(network: "n", text: r.text, problems: &problems) == r)
        #expect(problems.isEmpty)
    }
}

/// The bad-packet table of dns.md, row by row.
@Suite struct BadPacketTests {
    func rcode(_ m: [UInt8]) -> UInt8? { answer(m)?.rcode }
    func dropped(_ m: [UInt8]) -> Bool { if case .drop = ask(m) { return true }; return false }

    @Test func tooShortEmptyOrQuestionlessIsDropped() {
        #expect(dropped([]) && dropped([0x12, 0x34, 1]) && dropped(Array(query("web").prefix(11))))
        #expect(dropped(Array(query("web").prefix(12))), "QDCOUNT=1 without question bytes")
    }

    @Test func responsesAreNeverAnswered() {
        #expect(dropped(query("web", flags: 0x8100)))
    }

    @Test func notifyAndUpdateAreNOTIMP() {
        #expect(rcode(query("web", flags: 4 << 11)) == 4 && rcode(query("web", flags: 5 << 11)) == 4)
    }

    @Test func qdcountZeroOrTwoIsFORMERR() {
        var zero = query("web")
        zero[5] = 0
        #expect(rcode(Array(zero.prefix(12)) + [0]) == 1)
        var two = query("web")
        two[5] = 2
        #expect(rcode(two + Array(query("db").dropFirst(12))) == 1)
    }

    @Test func compressionLoopsAndForwardPointersAreFORMERR() {
        let header: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        #expect(rcode(header + [0xC0, 12, 0, 1, 0, 1]) == 1, "points at itself")
        #expect(rcode(header + [1, 97, 0xC0, 12, 0, 1, 0, 1]) == 1, "two-step loop back to its start")
        #expect(rcode(header + [0xC0, 200, 0, 1, 0, 1]) == 1, "past the end")
        #expect(rcode(header + [0xC0, 20, 0, 1, 0, 1, 0, 0, 0]) == 1, "forward")
        #expect(rcode(header + [0xC0, 5, 0, 1, 0, 1]) == 1, "into the header")
    }

    @Test func labelTypes01And10AreFORMERR() {
        let header: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for b: UInt8 in [0x40, 0x7F, 0x80, 0xBF] {
            #expect(rcode(header + [b] + [UInt8](repeating: 97, count: 70) + [0, 0, 1, 0, 1]) == 1, "0x\(String(b, radix: 16))")
        }
    }

    @Test func namesOver255OctetsAreFORMERR() {
        var m: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for _ in 0..<5 { m += [63] + [UInt8](repeating: 97, count: 63) }  // 5 * 64 + 1 > 255
        m += [0, 0, 1, 0, 1]
        #expect(rcode(m) == 1)
    }

    @Test func claimedButAbsentRecordsAreFORMERR() {
        var an = query("web")
        an[7] = 1
        #expect(rcode(an) == 1)
        var ns = query("web")
        ns[9] = 2
        #expect(rcode(ns) == 1)
    }

    @Test func twoOPTRecordsAreFORMERR() {
        var m = query("web", edns: (1232, 0))
        m[11] = 2
        m += [0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]
        #expect(rcode(m) == 1)
    }

    @Test func ednsVersion1IsBADVERS() throws {
        let a = try #require(answer(query("web", edns: (1232, 1))))
        #expect(a.rcode == 0 && a.ar == 1 && a.an == 0)
        // The OPT's extended rcode byte carries 16 >> 4 = 1.
        #expect(a.bytes.suffix(11)[a.bytes.count - 11 + 5] == 1)
    }

    @Test func trailingGarbageIsTolerated() {
        #expect(answer(query("web") + [1, 2, 3])?.addresses == ["10.88.0.5"])
    }

    @Test func classCHIsREFUSED() {
        #expect(rcode(query("web", qclass: 3)) == 5)
    }

    @Test func anyGetsAAndAAAA() {
        #expect(answer(query("web", RRType.any))?.addresses.count == 2)
    }

    @Test func nulAndDotBytesInsideALabelAreOpaque() {
        let header: [UInt8] = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        // "web\0" and "web.dns" as one label: neither is "web".
        for label in [[119, 101, 98, 0], [119, 101, 98, 46, 100, 110, 115]] as [[UInt8]] {
            let m = header + [UInt8(label.count)] + label + [0, 0, 1, 0, 1]
            #expect(rcode(m) == 3, "\(label)")
        }
    }

    @Test func randomJunkNeverCrashes() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<4000 {
            let n = Int.random(in: 0...1400, using: &rng)
            var m = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if m.count > 2, Bool.random(using: &rng) { m[2] &= 0x7F }  // often a query, to go deeper
            switch ask(m) {
            case .reply(let b): #expect(b.count >= 12 && b.count <= 512)
            case .drop, .forward: break
            }
        }
    }
}
