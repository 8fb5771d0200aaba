import CLinux
import CMnl
import Base

#if canImport(Glibc)
    import Glibc
#endif

/// A failed netlink request: what was asked (`RTM_NEWLINK veth0`), errno, and the kernel's
/// extended-ack text when it sent one.
public struct NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    public let extendedAck: String

    /// The failure of `operation` with `errno` and the kernel's extended ACK message.
    public init(operation: String, errno: Int32, extendedAck: String = "") {
        self.operation = operation
        self.errno = errno
        self.extendedAck = extendedAck
    }

    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        extendedAck.isEmpty ? "\(operation): \(reason)" : "\(operation): \(reason) (\(extendedAck))"
    }
}

/// An rtnetlink socket (libmnl transport) with one `execute` for every request: it stamps the
/// sequence number, checks sequence and port id of every reply, turns NLMSG_ERROR into
/// ``NetlinkError`` (with the kernel's extended-ack message), collects dumps to NLMSG_DONE and
/// retries a dump the kernel marks interrupted.
///
/// A socket stays bound to the network namespace it was created in (see ``NetworkNamespace``).
/// Not thread-safe: one socket per thread of use.
public final class NetlinkSocket {
    private let socket: OpaquePointer
    public let portID: UInt32
    var sequence: UInt32

    /// Opens a NETLINK_ROUTE socket (or another netlink `family`, e.g. NETLINK_NETFILTER for
    /// conntrack) in the calling thread's network namespace.
    public init(family: Int32 = NETLINK_ROUTE) throws(NetlinkError) {
        let name = family == NETLINK_ROUTE ? "NETLINK_ROUTE" : "netlink family \(family)"
        guard let s = mnl_socket_open2(family, Int32(SOCK_CLOEXEC.rawValue)) else {
            throw NetlinkError(operation: "socket(\(name))", errno: errno)
        }
        if mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = errno
            mnl_socket_close(s)
            throw NetlinkError(operation: "bind(\(name))", errno: e)
        }
        var one: Int32 = 1
        // Extended ACKs carry the kernel's reason text; CAP_ACK keeps error replies short.
        _ = mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        socket = s
        portID = mnl_socket_get_portid(s)
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { mnl_socket_close(socket) }

    /// Sends `request` and returns the data messages of the reply (none for a plain ACK).
    /// `operation` names the request in errors ("RTM_NEWLINK veth0").
    @discardableResult
    public func execute(_ request: NetlinkRequest, _ operation: String) throws(NetlinkError) -> [NetlinkReply] {
        var attempts = 0
        while true {
            do {
                return try executeOnce(request, operation)
            } catch let e where e.errno == EINTR && request.isDump && attempts < 10 {
                attempts += 1  // the dump was interrupted by a concurrent change: run it again
            }
        }
    }

    private func executeOnce(_ request: NetlinkRequest, _ operation: String) throws(NetlinkError) -> [NetlinkReply] {
        sequence &+= 1
        let seq = sequence
        let bytes = request.stamped(sequence: seq, portID: portID)
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        if sent < 0 { throw NetlinkError(operation: operation, errno: errno) }

        var replies: [NetlinkReply] = []
        var interrupted = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = NetlinkMessage.receive(mnl_socket_get_fd(socket), into: &buffer)
            if n < 0 { throw NetlinkError(operation: operation, errno: errno) }
            // Replies to someone else (or to an earlier request of ours) are not ours to read.
            for m in NetlinkMessage.split(buffer, count: n) where m.answers(sequence: seq, portID: portID) {
                let (type, flags, payload) = (m.type, m.flags, Array(m.payload))
                if flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(type) {
                case NLMSG_ERROR:
                    if m.code == 0 { return replies }  // ACK
                    throw NetlinkError(operation: operation, errno: -m.code, extendedAck: Self.extendedAck(payload, flags: flags))
                case NLMSG_DONE:
                    if payload.count >= 4, m.code < 0 {
                        throw NetlinkError(
                            operation: operation, errno: -m.code, extendedAck: Self.extendedAck(payload, flags: flags, doneMessage: true))
                    }
                    if interrupted { throw NetlinkError(operation: operation, errno: EINTR) }
                    return replies
                case NLMSG_NOOP:
                    continue
                default:
                    replies.append(NetlinkReply(type: type, payload: payload))
                    // A non-dump request without NLM_F_ACK ends with its single reply.
                    if !request.isDump && request.flags & UInt16(NLM_F_ACK) == 0 { return replies }
                }
            }
        }
    }

    /// NLMSGERR_ATTR_MSG from an error message: after the error code and the echoed request
    /// header (only the header, as NETLINK_CAP_ACK asks), when NLM_F_ACK_TLVS is set.
    static func extendedAck(_ payload: [UInt8], flags: UInt16, doneMessage: Bool = false) -> String {
        guard flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return "" }
        var start = 4
        if !doneMessage {
            guard payload.count >= 20 else { return "" }
            // With NLM_F_CAPPED only the original nlmsghdr is echoed; otherwise the whole request.
            let echoed = flags & UInt16(NLM_F_CAPPED) != 0 ? 16 : Int(le32(payload, 4))
            start = 4 + ((echoed + 3) & ~3)
        }
        guard start <= payload.count else { return "" }
        return NetlinkAttributes(Array(payload[start...])).string(Int(NLMSGERR_ATTR_MSG.rawValue)) ?? ""
    }
}
