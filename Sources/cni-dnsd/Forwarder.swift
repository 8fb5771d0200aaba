import Base
import CNI
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// Forwarding to upstream servers: the timeout split between them (at most 3), an upstream that
/// did not answer is asked last for a while, and the number of forwards in flight is capped.
final class Forwarder: @unchecked Sendable {
    /// The whole budget of one forwarded query, below a stub resolver's own 5 s.
    static let budgetMs = 4000
    static let maxInFlight = 512
    /// How long an upstream that timed out is asked last.
    static let deadFor: Double = 30

    private let state = NIOLockedValueBox(State())
    let log: (String) -> Void
    var resolvConf = "/etc/resolv.conf"

    struct State {
        var inFlight = 0
        var deadUntil: [IPAddress: Double] = [:]
        var host: [IPAddress] = []
    }

    init(log: @escaping (String) -> Void) { self.log = log }

    var hostUpstreams: [IPAddress] { state.withLockedValue { $0.host } }

    /// The first 3 nameservers of resolv.conf.
    func reloadResolvConf() {
        let text = (try? String(contentsOfFile: resolvConf, encoding: .utf8)) ?? ""
        var out: [IPAddress] = []
        for line in text.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.count >= 2, f[0] == "nameserver", let a = IPAddress(f[1].split(separator: "%").first ?? f[1]), out.count < 3 {
                out.append(a)
            }
        }
        state.withLockedValue { $0.host = out }
    }

    func begin() -> Bool {
        state.withLockedValue { s in
            guard s.inFlight < Forwarder.maxInFlight else { return false }
            s.inFlight += 1
            return true
        }
    }

    func end() { state.withLockedValue { $0.inFlight -= 1 } }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Asks the upstreams in turn (those that recently failed last) and returns the first answer
    /// with our ID; nil when none answered in time.
    func exchange(_ query: [UInt8], id: UInt16, upstreams: [IPAddress], overTCP: Bool) -> [UInt8]? {
        let ups = Array(upstreams.prefix(3))
        guard !ups.isEmpty else { return nil }
        let now = Forwarder.now()
        let ordered = state.withLockedValue { s in
            ups.filter { (s.deadUntil[$0] ?? 0) <= now } + ups.filter { (s.deadUntil[$0] ?? 0) > now }
        }
        let each = Int32(Forwarder.budgetMs / ordered.count)
        for u in ordered {
            let answer = overTCP ? exchangeTCP(query, u, timeoutMs: each) : exchangeUDP(query, id: id, u, timeoutMs: each)
            if let answer {
                state.withLockedValue { _ = $0.deadUntil.removeValue(forKey: u) }
                return answer
            }
            state.withLockedValue { $0.deadUntil[u] = Forwarder.now() + Forwarder.deadFor }
            log("upstream \(u) did not answer within \(each) ms")
        }
        return nil
    }

    func socketTo(_ a: IPAddress, type: Int32) -> (fd: Int32, ok: Bool) {
        let fd = socket(a.family == .v4 ? AF_INET : AF_INET6, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (fd, false) }
        let bytes = a.networkBytes
        var rc: Int32
        if a.family == .v4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = UInt16(53).bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: bytes) }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = UInt16(53).bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes) }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        if rc != 0 && errno != EINPROGRESS {
            close(fd)
            return (-1, false)
        }
        return (fd, true)
    }

    func wait(_ fd: Int32, _ events: Int16, until deadline: Double) -> Bool {
        while true {
            let left = Int32((deadline - Forwarder.now()) * 1000)
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, left)
            if n > 0 { return p.revents & events != 0 }
            if n == 0 { return false }
            if errno != EINTR { return false }
        }
    }

    func exchangeUDP(_ query: [UInt8], id: UInt16, _ a: IPAddress, timeoutMs: Int32) -> [UInt8]? {
        let (fd, ok) = socketTo(a, type: Int32(SOCK_DGRAM.rawValue))
        guard ok else { return nil }
        defer { close(fd) }
        guard query.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == query.count else { return nil }
        let deadline = Forwarder.now() + Double(timeoutMs) / 1000
        var buf = [UInt8](repeating: 0, count: 65535)
        while wait(fd, Int16(POLLIN), until: deadline) {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return nil }  // e.g. ECONNREFUSED: nothing listens there
            // Only the answer to our query: right ID, a response.
            if n >= 12, UInt16(buf[0]) << 8 | UInt16(buf[1]) == id, buf[2] & 0x80 != 0 { return Array(buf.prefix(n)) }
        }
        return nil
    }

    func exchangeTCP(_ query: [UInt8], _ a: IPAddress, timeoutMs: Int32) -> [UInt8]? {
        let (fd, ok) = socketTo(a, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
        guard ok else { return nil }
        defer { close(fd) }
        let deadline = Forwarder.now() + Double(timeoutMs) / 1000
        guard wait(fd, Int16(POLLOUT), until: deadline) else { return nil }
        var err: Int32 = 0
        var len = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        guard err == 0 else { return nil }
        var out = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        while !out.isEmpty {
            guard wait(fd, Int16(POLLOUT), until: deadline) else { return nil }
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return nil }
            out.removeFirst(n)
        }
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65537)
        while true {
            if got.count >= 2 {
                let want = Int(got[0]) << 8 | Int(got[1])
                if got.count >= 2 + want { return Array(got[2..<(2 + want)]) }
            }
            guard wait(fd, Int16(POLLIN), until: deadline) else { return nil }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            got += buf.prefix(n)
        }
    }
}
