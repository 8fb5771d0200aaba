import CLinux
import CMnl

#if canImport(Glibc)
    import Glibc
#endif

/// Link and address changes in this network namespace, as rtnetlink multicasts them: what the
/// overlay agent reacts to at once (its VTEP deleted or flapped, the underlay's address changed)
/// instead of waiting for its next periodic resync. Only tells *that* something changed; the
/// reader looks again.
public final class NetlinkMonitor: Sendable {
    /// Readable when changes are pending (poll it, then `drain`).
    public let fd: Int32

    /// Subscribes to RTMGRP_LINK, RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR.
    public init() throws(NetlinkError) {
        let s = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), NETLINK_ROUTE)
        guard s >= 0 else { throw NetlinkError(operation: "socket(NETLINK_ROUTE monitor)", errno: errno) }
        var addr = sockaddr_nl()
        addr.nl_family = sa_family_t(AF_NETLINK)
        addr.nl_groups = UInt32(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard r == 0 else {
            let e = errno
            close(s)
            throw NetlinkError(operation: "bind(rtnetlink groups)", errno: e)
        }
        fd = s
    }

    deinit { close(fd) }

    /// Reads every pending notification; true when there was at least one (or the kernel dropped
    /// some: ENOBUFS, which also means "look again").
    @discardableResult
    public func drain() -> Bool {
        var any = false
        var buf = [UInt8](repeating: 0, count: 32768)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                any = true
            } else if n < 0 && errno == ENOBUFS {
                any = true
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return any
            }
        }
    }

    /// Waits up to `milliseconds` (-1: for ever) for a change; true when one came.
    public func wait(milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&p, 1, milliseconds)
            if r < 0 && errno == EINTR { continue }
            return r > 0
        }
    }
}
