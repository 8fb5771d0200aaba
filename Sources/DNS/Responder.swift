import Base

/// What to do with one received message.
public enum Outcome: Sendable {
    case reply([UInt8])
    /// Not ours: ask `upstreams` (in this order) and relay the answer; `refusal` is the answer to
    /// send when none answers.
    case forward(Query, upstreams: [IPAddress], servFail: [UInt8])
    case drop(String)
}

/// The answering logic, free of I/O: a message, who sent it and where, and the zones.
public enum Responder {
    /// Our EDNS UDP size (DNS flag day 2020): answers over UDP never exceed it.
    public static let ednsSize: UInt16 = 1232

    static let inAddrArpa = DNSName("in-addr.arpa")!
    static let ip6Arpa = DNSName("ip6.arpa")!

    /// The answer to `message` from `source`, received on `listener`: names of the networks `source` is on, PTR, the zones' SOA and NS; nil when the query must be forwarded upstream.
    public static func respond(
        _ message: [UInt8], source: IPAddress, listener: IPAddress, overTCP: Bool, zones: Zones,
        shuffle: (inout [IPAddress]) -> Void = { $0.shuffle() }
    ) -> Outcome {
        let q: Query
        switch DNSParser.parse(message) {
        case .drop(let why): return .drop(why)
        case .error(let id, let flags, let rcode, let question, _):
            let w = ResponseWriter(id: id, queryFlags: flags, rcode: rcode, authoritative: false, recursionAvailable: false, question: question)
            return .reply(w.bytes)
        case .query(let query): q = query
        }
        let (nets, member) = zones.visibility(source: source, listener: listener)
        // Forwarding only for the containers of the networks: anyone else who can reach a gateway
        // (the host, a routed client) gets the network's names, never an open resolver. A
        // container only on internal networks gets none either.
        let r = Reply(q: q, overTCP: overTCP, forwards: member && nets.contains { !$0.records.isInternal })
        if let e = q.edns, e.version > 0 {
            var w = r.writer(0, authoritative: false)
            w.opt(udpSize: ednsSize, extendedRCode: RCode.badVers)
            return .reply(w.bytes)
        }
        guard q.qclass == 1 || q.qclass == 255 else { return r.finish(r.writer(RCode.refused, authoritative: false)) }

        let name = q.name.lowercased
        if name.hasSuffix(inAddrArpa) || name.hasSuffix(ip6Arpa) {
            if let answer = reverse(name, nets, r) { return answer }
        } else {
            if let answer = lookup(name, nets, r, shuffle) ?? nonexistent(name, nets, zones, r) { return answer }
        }
        return forward(nets, r)
    }

    /// One query's answering context: how to start and finish a reply to it.
    struct Reply {
        let q: Query
        let overTCP: Bool
        /// The client may be forwarded for (RA set).
        let forwards: Bool

        func writer(_ rcode: UInt8, authoritative: Bool) -> ResponseWriter {
            ResponseWriter(id: q.id, queryFlags: q.flags, rcode: rcode, authoritative: authoritative, recursionAvailable: forwards, question: q.questionBytes)
        }

        /// The OPT record when the query had one; truncated to what the transport carries.
        func finish(_ w: ResponseWriter) -> Outcome {
            var w = w
            if q.edns != nil { w.opt(udpSize: ednsSize) }
            let limit = overTCP ? 65535 : q.edns.map { max(512, min(Int($0.udpSize), Int(ednsSize))) } ?? 512
            if w.count > limit { w.truncate(keepingOPT: q.edns != nil ? ednsSize : nil) }
            return .reply(w.bytes)
        }
    }

    /// A reverse lookup of a container address of `nets`; nil when none has it.
    static func reverse(_ name: DNSName, _ nets: [Zones.Network], _ r: Reply) -> Outcome? {
        guard let addr = reverseAddress(name) else { return nil }
        for n in nets {
            guard let i = n.byAddress[addr], let target = n.ptrTargets[i] else { continue }
            var w = r.writer(RCode.noError, authoritative: true)
            if r.q.type == RRType.ptr || r.q.type == RRType.any {
                w.answer(type: RRType.ptr, ttl: n.records.ttl, rdata: target)
            } else {
                w.authoritySOA(n.soa)
            }
            return r.finish(w)
        }
        return nil
    }

    /// A name of ours: a single label (the search domain applies) or under a network's domain,
    /// in the first of `nets` that has it; nil when none does.
    static func lookup(_ name: DNSName, _ nets: [Zones.Network], _ r: Reply, _ shuffle: (inout [IPAddress]) -> Void) -> Outcome? {
        for n in nets {
            var key: DNSName?
            if name.labels.count == 1 {
                key = name
            } else if !n.domain.labels.isEmpty && name.hasSuffix(n.domain) {
                key = name.dropping(n.domain)
                if key!.labels.isEmpty {  // the domain itself: it exists, with no address
                    var w = r.writer(RCode.noError, authoritative: true)
                    w.authoritySOA(n.soa)
                    return r.finish(w)
                }
            }
            guard let key, let hits = n.byName[key] else { continue }
            var w = r.writer(RCode.noError, authoritative: true)
            let wantA = r.q.type == RRType.a || r.q.type == RRType.any
            let wantAAAA = r.q.type == RRType.aaaa || r.q.type == RRType.any
            let ttl = n.records.ttl
            if hits.count == 1 {
                // One container (the usual case): its addresses, no intermediate arrays.
                let e = n.records.entries[hits[0]]
                if wantA { answer(&w, e.v4, ttl, shuffle) }
                if wantAAAA { answer(&w, e.v6, ttl, shuffle) }
            } else {
                var v4: [IPAddress] = [], v6: [IPAddress] = []
                for i in hits {
                    v4 += n.records.entries[i].v4
                    v6 += n.records.entries[i].v6
                }
                if wantA { answer(&w, v4, ttl, shuffle) }
                if wantAAAA { answer(&w, v6, ttl, shuffle) }
            }
            // A known name without data of the type asked: NODATA (NOERROR, SOA), never NXDOMAIN.
            if w.answerCount == 0 { w.authoritySOA(n.soa) }
            return r.finish(w)
        }
        return nil
    }

    /// Not found: under one of our domains, or a single label, it does not exist (and is never
    /// forwarded); nil for anything else (it goes upstream).
    static func nonexistent(_ name: DNSName, _ nets: [Zones.Network], _ zones: Zones, _ r: Reply) -> Outcome? {
        if let n = nets.first(where: { name.labels.count == 1 || (!$0.domain.labels.isEmpty && name.hasSuffix($0.domain)) }) {
            var w = r.writer(RCode.nxDomain, authoritative: true)
            w.authoritySOA(n.soa)
            return r.finish(w)
        }
        // Under the domain of a network the client is not on: it does not exist for it.
        if let d = zones.domains.first(where: { name.hasSuffix($0.name) }) {
            var w = r.writer(RCode.nxDomain, authoritative: true)
            w.authoritySOA(d.soa)
            return r.finish(w)
        }
        return nil
    }

    /// Upstream, for clients that may be forwarded for (the upstreams of their networks that
    /// are not internal); REFUSED for the others.
    static func forward(_ nets: [Zones.Network], _ r: Reply) -> Outcome {
        guard r.forwards else { return r.finish(r.writer(RCode.refused, authoritative: false)) }
        var upstreams: [IPAddress] = []
        for n in nets where !n.records.isInternal { for u in n.records.upstreams where !upstreams.contains(u) { upstreams.append(u) } }
        var fail = r.writer(RCode.servFail, authoritative: false)
        if r.q.edns != nil { fail.opt(udpSize: ednsSize) }
        return .forward(r.q, upstreams: upstreams, servFail: fail.bytes)
    }

    /// Writes `addresses` (shuffled when more than one) as A/AAAA answers.
    static func answer(_ w: inout ResponseWriter, _ addresses: [IPAddress], _ ttl: UInt32, _ shuffle: (inout [IPAddress]) -> Void) {
        if addresses.count == 1 {
            w.answer(address: addresses[0], ttl: ttl)
            return
        }
        var a = addresses
        shuffle(&a)
        for x in a { w.answer(address: x, ttl: ttl) }
    }

    /// The address of a reverse name (`4.3.2.1.in-addr.arpa`, 32 nibbles of `ip6.arpa`); nil for
    /// anything else.
    static func reverseAddress(_ n: DNSName) -> IPAddress? {
        if n.hasSuffix(inAddrArpa) {
            let parts = n.dropping(inAddrArpa).labels
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for l in parts.reversed() {
                guard !l.isEmpty, l.count <= 3, l.allSatisfy({ $0 >= 48 && $0 <= 57 }), let v = UInt8(String(decoding: l, as: UTF8.self)) else { return nil }
                bytes.append(v)
            }
            return IPAddress(networkBytes: bytes)
        }
        let parts = n.dropping(ip6Arpa).labels
        guard parts.count == 32 else { return nil }
        var nibbles: [UInt8] = []
        for l in parts.reversed() {
            guard l.count == 1 else { return nil }
            let c = l[0]
            switch c {
            case 48...57: nibbles.append(c - 48)
            case 97...102: nibbles.append(c - 87)
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: 32, by: 2) { bytes.append(nibbles[i] << 4 | nibbles[i + 1]) }
        return IPAddress(networkBytes: bytes)
    }
}
