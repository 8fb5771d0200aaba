import CLinux
import Base
import CNI
import NIOConcurrencyHelpers
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// UDP serving without a channel pipeline: one thread, epoll over the UDP socket of every listen
/// address, datagrams read and answered in batches (recvmmsg, sendmmsg) through buffers made
/// once. Per query this leaves the parse, the lookup and the answer; the pipeline's envelope,
/// buffer and address objects (an address string per datagram) are gone.
///
/// Sockets are added and removed from other threads (reloads) through a queue the loop drains
/// when its eventfd is signalled; removal waits until the loop has closed the socket, so the
/// address can be bound again at once. Answers that come later (forwarded queries) are queued
/// the same way and sent by the loop, only to a socket it still has.
final class UDPLoop: @unchecked Sendable {
    /// `(message, source, listener, where an answer that comes later goes) -> answer or nil`;
    /// runs on the loop thread.
    typealias Handler = (_ message: [UInt8], _ source: IPAddress, _ listener: IPAddress, _ replyTo: ReplyTo) -> [UInt8]?

    /// The client of a datagram, for an answer sent later (from any thread): no allocation
    /// unless it is used.
    struct ReplyTo: Sendable {
        unowned(unsafe) let loop: UDPLoop
        let fd: Int32
        let address: sockaddr_storage
        let length: socklen_t
        func send(_ bytes: [UInt8]) { loop.send(later: bytes, fd: fd, to: address, length: length) }
    }

    static let batch = 32
    static let bufferSize = 4096

    private let epfd: Int32
    private let wake: Int32
    private let handler: Handler
    private let lock = NIOLock()
    private var adds: [(fd: Int32, listener: IPAddress)] = []
    private var removes: [(fd: Int32, done: DispatchSemaphore)] = []
    private var late: [(fd: Int32, address: sockaddr_storage, length: socklen_t, bytes: [UInt8])] = []
    /// Loop thread only.
    private var sockets: [Int32: IPAddress] = [:]

    init(handler: @escaping Handler) throws {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError("epoll_create1", errno: errno) }
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wake >= 0 else { throw SystemError("eventfd", errno: errno) }
        self.handler = handler
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake))
        epoll_ctl(epfd, EPOLL_CTL_ADD, wake, &ev)
        DetachedThread.start { [self] in run() }
    }

    /// A UDP socket bound to `address`:`port` (non-blocking, 1 MiB receive buffer when allowed).
    static func bind(_ address: IPAddress, port: Int) throws -> Int32 {
        let v6 = address.family == .v6
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        var rcvbuf: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length = address.socketAddress(port: UInt16(port), into: &storage)
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            throw SystemError("bind udp \(address):\(port)", errno: e)
        }
        return fd
    }

    func add(_ fd: Int32, listener: IPAddress) {
        lock.withLock { adds.append((fd, listener)) }
        signal()
    }

    /// Closes `fd` on the loop; returns once it is closed.
    func remove(_ fd: Int32) {
        let done = DispatchSemaphore(value: 0)
        lock.withLock { removes.append((fd, done)) }
        signal()
        done.wait()
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func send(later bytes: [UInt8], fd: Int32, to address: sockaddr_storage, length: socklen_t) {
        lock.withLock { late.append((fd, address, length, bytes)) }
        signal()
    }

    private func run() {
        let n = UDPLoop.batch
        let inBuf = UnsafeMutableRawPointer.allocate(byteCount: n * UDPLoop.bufferSize, alignment: 16)
        let outBuf = UnsafeMutableRawPointer.allocate(byteCount: n * UDPLoop.bufferSize, alignment: 16)
        let names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: n)
        let inIov = UnsafeMutablePointer<iovec>.allocate(capacity: n)
        let outIov = UnsafeMutablePointer<iovec>.allocate(capacity: n)
        let inMsgs = UnsafeMutablePointer<clinux_mmsghdr>.allocate(capacity: n)
        let outMsgs = UnsafeMutablePointer<clinux_mmsghdr>.allocate(capacity: n)
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let ready = epoll_wait(epfd, &events, Int32(events.count), -1)
            if ready < 0 { continue }  // EINTR
            for e in events.prefix(Int(ready)) {
                let fd = e.data.fd
                if fd == wake {
                    var v: UInt64 = 0
                    _ = read(wake, &v, 8)
                    control()
                    continue
                }
                guard let listener = sockets[fd] else { continue }
                while true {
                    for i in 0..<n {
                        inIov[i] = iovec(iov_base: inBuf + i * UDPLoop.bufferSize, iov_len: UDPLoop.bufferSize)
                        inMsgs[i] = clinux_mmsghdr()
                        inMsgs[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
                        inMsgs[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        inMsgs[i].msg_hdr.msg_iov = inIov + i
                        inMsgs[i].msg_hdr.msg_iovlen = 1
                    }
                    let got = clinux_recvmmsg(fd, inMsgs, UInt32(n), Int32(MSG_DONTWAIT))
                    if got <= 0 { break }
                    var out = 0
                    for i in 0..<Int(got) {
                        let len = Int(inMsgs[i].msg_len)
                        guard (inMsgs[i].msg_hdr.msg_flags & Int32(MSG_TRUNC)) == 0,
                            let source = IPAddress(socketAddress: names + i)
                        else { continue }
                        let message = [UInt8](UnsafeRawBufferPointer(start: inBuf + i * UDPLoop.bufferSize, count: len))
                        let nameLength = inMsgs[i].msg_hdr.msg_namelen
                        let answer = handler(message, source, listener, ReplyTo(loop: self, fd: fd, address: names[i], length: nameLength))
                        guard let answer, answer.count <= UDPLoop.bufferSize else { continue }
                        let slot = outBuf + out * UDPLoop.bufferSize
                        answer.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                        outIov[out] = iovec(iov_base: slot, iov_len: answer.count)
                        outMsgs[out] = clinux_mmsghdr()
                        outMsgs[out].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
                        outMsgs[out].msg_hdr.msg_namelen = nameLength
                        outMsgs[out].msg_hdr.msg_iov = outIov + out
                        outMsgs[out].msg_hdr.msg_iovlen = 1
                        out += 1
                    }
                    var sent = 0
                    while sent < out {
                        let r = clinux_sendmmsg(fd, outMsgs + sent, UInt32(out - sent), Int32(MSG_DONTWAIT))
                        if r <= 0 { break }  // a full send buffer: the rest is dropped, as UDP may
                        sent += Int(r)
                    }
                    if Int(got) < n { break }
                }
            }
        }
    }

    /// Loop thread: sockets added and removed, answers that came later sent.
    private func control() {
        let (a, r, l) = lock.withLock {
            () -> (
                [(fd: Int32, listener: IPAddress)], [(fd: Int32, done: DispatchSemaphore)],
                [(fd: Int32, address: sockaddr_storage, length: socklen_t, bytes: [UInt8])]
            ) in
            defer {
                adds = []
                removes = []
                late = []
            }
            return (adds, removes, late)
        }
        for (fd, listener) in a {
            sockets[fd] = listener
            var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: fd))
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
        }
        for (fd, done) in r {
            if sockets.removeValue(forKey: fd) != nil {
                epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
                close(fd)
            }
            done.signal()
        }
        for var m in l where sockets[m.fd] != nil {
            _ = m.bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &m.address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(m.fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT), $0, m.length) }
                }
            }
        }
    }
}

extension IPAddress {
    /// The address of a `sockaddr_in`/`sockaddr_in6` (an IPv4-mapped IPv6 address as IPv4).
    init?(socketAddress p: UnsafePointer<sockaddr_storage>) {
        switch Int32(p.pointee.ss_family) {
        case AF_INET:
            let a = p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            self = .v4(UInt32(bigEndian: a))
        case AF_INET6:
            var v: UInt128 = 0
            p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p6 in
                withUnsafeBytes(of: p6.pointee.sin6_addr) { for x in $0 { v = v << 8 | UInt128(x) } }
            }
            // An IPv4-mapped source (::ffff:a.b.c.d) is the IPv4 client.
            self = v >> 32 == 0xFFFF ? .v4(UInt32(truncatingIfNeeded: v)) : .v6(v)
        default:
            return nil
        }
    }

    /// Fills `storage` with this address and `port`; returns the length to pass to bind/sendto.
    func socketAddress(port: UInt16, into storage: inout sockaddr_storage) -> socklen_t {
        let bytes = networkBytes
        return withUnsafeMutablePointer(to: &storage) { p in
            if family == .v4 {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { s in
                    s.pointee.sin_family = sa_family_t(AF_INET)
                    s.pointee.sin_port = port.bigEndian
                    withUnsafeMutableBytes(of: &s.pointee.sin_addr) { $0.copyBytes(from: bytes) }
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
                s.pointee.sin6_family = sa_family_t(AF_INET6)
                s.pointee.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &s.pointee.sin6_addr) { $0.copyBytes(from: bytes) }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }
}
