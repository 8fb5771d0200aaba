import Base
import CNI
import DNS
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// Per-network counters. A query counts for the network of the gateway address it was sent to.
/// Updated from the event loop (answers, drops) and the forwarding pool (upstream failures).
final class Stats: @unchecked Sendable {
    struct Network: Sendable {
        var queries: UInt64 = 0
        /// Answers sent, by RCODE (0-15).
        var rcodes = [UInt64](repeating: 0, count: 16)
        var forwarded: UInt64 = 0
        var upstreamFailures: UInt64 = 0
        var rateLimited: UInt64 = 0
        /// Messages not answered: responses (QR=1), runts, forwards beyond the in-flight cap.
        var dropped: UInt64 = 0
    }

    private let lock = NIOLock()
    private var networks: [String: Network] = [:]

    func update(_ network: String, _ change: (inout Network) -> Void) {
        lock.withLock { change(&networks[network, default: Network()]) }
    }

    /// Counters of networks no longer served go (a reload).
    func keep(only names: Set<String>) {
        lock.withLock { networks = networks.filter { names.contains($0.key) } }
    }

    func snapshot() -> [String: Network] { lock.withLock { networks } }

    static let rcodeNames = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
        "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
    ]

    /// The control socket's `stats` reply: one line of JSON.
    func json(generation: UInt64) -> String {
        var nets = JSONObject()
        for (name, n) in snapshot().sorted(by: { $0.key < $1.key }) {
            var rc = JSONObject()
            for (i, c) in n.rcodes.enumerated() where c > 0 { rc[Stats.rcodeNames[i]] = .number(JSONNumber(Int(c))) }
            nets[name] = .object([
                "queries": .number(JSONNumber(Int(n.queries))), "rcodes": .object(rc),
                "forwarded": .number(JSONNumber(Int(n.forwarded))), "upstreamFailures": .number(JSONNumber(Int(n.upstreamFailures))),
                "rateLimited": .number(JSONNumber(Int(n.rateLimited))), "dropped": .number(JSONNumber(Int(n.dropped))),
            ])
        }
        return JSONValue.object(["generation": .number(JSONNumber(Int(generation))), "networks": .object(nets)]).serialized()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    func prometheus() -> String {
        let snap = snapshot().sorted(by: { $0.key < $1.key })
        var out = ""
        func family(_ name: String, _ help: String, _ rows: (String, Network) -> [(labels: String, value: UInt64)]) {
            out += "# HELP cni_dnsd_\(name) \(help)\n# TYPE cni_dnsd_\(name) counter\n"
            for (net, n) in snap {
                for r in rows(net, n) { out += "cni_dnsd_\(name){network=\"\(Stats.escape(net))\"\(r.labels)} \(r.value)\n" }
            }
        }
        family("queries_total", "DNS messages received, by network (the gateway they were sent to).") { [("", $1.queries)] }
        family("responses_total", "Answers sent, by network and RCODE.") { _, n in
            n.rcodes.enumerated().filter { $0.element > 0 }.map { (",rcode=\"\(Stats.rcodeNames[$0.offset])\"", $0.element) }
        }
        family("forwarded_total", "Queries forwarded to an upstream server.") { [("", $1.forwarded)] }
        family("upstream_failures_total", "Forwarded queries no upstream answered (SERVFAIL sent).") { [("", $1.upstreamFailures)] }
        family("rate_limited_total", "UDP queries dropped by the per-source rate limit.") { [("", $1.rateLimited)] }
        family("dropped_total", "Messages not answered (responses, runts, forwards over the in-flight cap).") { [("", $1.dropped)] }
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}

/// A token bucket per source address for UDP queries (TCP has connection caps): `rate` queries a
/// second, bursts of `2 x rate`. Over the limit a query is dropped (no answer, so no amplification).
/// The table is bounded: past `maxSources` sources, full buckets (idle sources) are forgotten.
struct RateLimiter {
    let rate: Double
    let burst: Double
    static let maxSources = 65536
    private var buckets: [IPAddress: (tokens: Double, at: UInt64)] = [:]

    init(rate: Int) {
        self.rate = Double(rate)
        burst = Double(rate) * 2
    }

    var enabled: Bool { rate > 0 }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Whether a query from `source` at `now` (ns) is within its rate; takes a token if so.
    mutating func admit(_ source: IPAddress, now: UInt64) -> Bool {
        guard enabled else { return true }
        var b = buckets[source] ?? (burst, now)
        b.tokens = min(burst, b.tokens + Double(now &- b.at) * rate / 1e9)
        b.at = now
        let ok = b.tokens >= 1
        if ok { b.tokens -= 1 }
        if buckets.count >= RateLimiter.maxSources && buckets[source] == nil {
            buckets = buckets.filter { min(burst, $0.value.tokens + Double(now &- $0.value.at) * rate / 1e9) < burst }
            if buckets.count >= RateLimiter.maxSources { buckets.removeAll(keepingCapacity: true) }
        }
        buckets[source] = b
        return ok
    }
}
