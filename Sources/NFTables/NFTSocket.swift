import CLinux
import Base
import CNftnl

#if canImport(Glibc)
    import Glibc
#endif

/// A failed nftables operation: the message that failed (rendered as nft text), errno, and the
/// kernel's extended-ack text when it sent one.
public struct NFTError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    /// The failure of `operation` with `errno`.
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var reason: String { String(cString: strerror(errno)) }
    public var description: String { "\(operation): \(reason)" }
}

/// A NETLINK_NETFILTER socket (libmnl) that applies batches atomically and runs dumps.
public final class NFTSocket {
    private let socket: OpaquePointer
    /// The netlink port id the kernel bound this socket to (replies carry it).
    let portID: UInt32
    var sequence: UInt32

    /// Opens the socket in the calling thread's network namespace.
    public init() throws(NFTError) {
        guard let s = mnl_socket_open2(NETLINK_NETFILTER, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NFTError(operation: "socket(NETLINK_NETFILTER)", errno: errno)
        }
        if mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = errno
            mnl_socket_close(s)
            throw NFTError(operation: "bind(NETLINK_NETFILTER)", errno: e)
        }
        // Errors without a copy of the failed message: a batch of large messages that all fail
        // would otherwise overflow the receive buffer with its own echoes (ENOBUFS).
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        socket = s
        portID = mnl_socket_get_portid(s)
        sequence = UInt32(truncatingIfNeeded: time(nil)) &* 1000
    }

    deinit { mnl_socket_close(socket) }

    func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Applies `batch` as one transaction: every message or none. The first failing message is
    /// reported with its nft text.
    public func apply(_ batch: Batch) throws(NFTError) {
        if batch.messages.isEmpty { return }
        var bytes: [UInt8] = []
        var seqs: [UInt32: String] = [:]
        bytes += Batch.control(UInt16(NFNL_MSG_BATCH_BEGIN), seq: nextSequence())
        for m in batch.messages {
            let seq = nextSequence()
            seqs[seq] = m.text
            bytes += m.build(seq)
        }
        bytes += Batch.control(UInt16(NFNL_MSG_BATCH_END), seq: nextSequence())
        reserveBuffers(send: bytes.count, acknowledgements: seqs.count)
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        if sent < 0 { throw NFTError(operation: "send batch of \(batch.messages.count) messages (\(bytes.count) bytes)", errno: errno) }
        // The kernel handles the whole batch inside sendmsg: its replies are queued already, so
        // running out of them before every message was acknowledged is a failure, never success.
        var acked = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        let fd = mnl_socket_get_fd(socket)
        while acked < seqs.count {
            let n = NetlinkMessage.receive(fd, into: &buffer, flags: Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw NFTError(
                        operation: "batch of \(seqs.count) messages: only \(acked) acknowledged by the kernel", errno: EAGAIN)
                }
                throw NFTError(operation: "receive batch replies", errno: errno)
            }
            for m in NetlinkMessage.split(buffer, count: n) where seqs[m.sequence] != nil && m.answers(sequence: m.sequence, portID: portID) {
                guard m.type == UInt16(NLMSG_ERROR) else { continue }
                if m.code != 0 { throw NFTError(operation: seqs[m.sequence]!, errno: -m.code) }
                acked += 1
            }
        }
    }

    /// The kernel refuses a batch larger than the socket's send buffer (EMSGSIZE), and drops
    /// acknowledgements beyond its receive buffer (each is a small skb of about 1 KiB of
    /// accounting): both are raised to what the batch needs, past the sysctl limits (FORCE, as
    /// root; otherwise up to the limits, and a batch that still does not fit fails to send).
    private func reserveBuffers(send: Int, acknowledgements: Int) {
        let fd = mnl_socket_get_fd(socket)
        func ensure(_ option: Int32, _ force: Int32, _ wanted: Int) {
            var current: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            // The kernel reports the doubled value it accounts with.
            guard getsockopt(fd, SOL_SOCKET, option, &current, &len) == 0, Int(current) < wanted else { return }
            var value = Int32(clamping: wanted)
            if setsockopt(fd, SOL_SOCKET, force, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        ensure(SO_SNDBUF, SO_SNDBUFFORCE, send + 4096)
        ensure(SO_RCVBUF, SO_RCVBUFFORCE, acknowledgements * 2048 + 65536)
    }

    /// Applies the batch `make` builds from a fresh listing. A DEL, GC or ADD of another
    /// attachment may delete a listed element between the listing and the transaction: the
    /// transaction then fails with ENOENT as a whole, and is listed and built again (a few times).
    /// A batch that deletes a chain with its last element fails with EBUSY when an ADD gave the
    /// chain a new element meanwhile: `also` (EBUSY there) is retried the same way.
    public func applyListing(also: Set<Int32> = [], _ make: () throws(NFTError) -> Batch) throws(NFTError) {
        var attempt = 0
        while true {
            let b = try make()
            do {
                try apply(b)
                return
            } catch {
                attempt += 1
                if !(error.errno == ENOENT || also.contains(error.errno)) || attempt >= 8 { throw error }
            }
        }
    }

    /// Runs a dump request built by `build` (into a buffer, with the given sequence number) and
    /// returns each reply message's full bytes (header included), for libnftnl's parsers.
    ///
    /// A dump spans several reads; when the ruleset changes between them (another plugin's
    /// transaction) the kernel flags the messages NLM_F_DUMP_INTR and the listing may hold an
    /// element twice or miss one. Such a dump is run again (a few times, then EINTR).
    func dump(_ what: String, _ build: (UInt32) -> [UInt8]) throws(NFTError) -> [[UInt8]] {
        for _ in 0..<20 {
            let (messages, interrupted) = try dumpOnce(what, build)
            if !interrupted { return messages }
        }
        throw NFTError(operation: "\(what): the ruleset kept changing during the listing", errno: EINTR)
    }

    private func dumpOnce(_ what: String, _ build: (UInt32) -> [UInt8]) throws(NFTError) -> ([[UInt8]], Bool) {
        let seq = nextSequence()
        let req = build(seq)
        let sent = req.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        if sent < 0 { throw NFTError(operation: what, errno: errno) }
        var out: [[UInt8]] = []
        var interrupted = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = NetlinkMessage.receive(mnl_socket_get_fd(socket), into: &buffer)
            if n < 0 { throw NFTError(operation: what, errno: errno) }
            for m in NetlinkMessage.split(buffer, count: n) where m.answers(sequence: seq, portID: portID) {
                if m.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                if m.type == UInt16(NLMSG_DONE) { return (out, interrupted) }
                if m.type == UInt16(NLMSG_ERROR) {
                    if m.code == 0 { return (out, interrupted) }
                    throw NFTError(operation: what, errno: -m.code)
                }
                out.append(m.bytes)
            }
        }
    }

}
