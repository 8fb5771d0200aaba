import CLinux
import Foundation
@testable import Netlink
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Sends `count` forged NLMSG_ERROR (EPERM) replies, for the sequence numbers after `after`, to
/// netlink port `port` of `protocol` from another socket of the calling thread's namespace.
func forgeErrors(protocol proto: Int32, to port: UInt32, after: UInt32, count: UInt32 = 64) {
    let fd = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), proto)
    #expect(fd >= 0)
    defer { close(fd) }
    var to = sockaddr_nl()
    to.nl_family = sa_family_t(AF_NETLINK)
    to.nl_pid = port
    for seq in (after &+ 1)...(after &+ count) {
        var m = [UInt8](repeating: 0, count: 36)  // nlmsghdr, errno, the echoed header
        func put32(_ v: UInt32, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { m.replaceSubrange(at..<(at + 4), with: $0) } }
        put32(36, 0)
        m[4] = UInt8(NLMSG_ERROR)
        put32(seq, 8)
        put32(port, 12)  // even naming our port in the header
        put32(UInt32(bitPattern: -EPERM), 16)
        let sent = m.withUnsafeBytes { b in
            withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
            }
        }
        #expect(sent == 36, "sendto: \(String(cString: strerror(errno)))")
    }
}

/// Replies are taken only from the kernel: a message another process sends to our port id,
/// looking like the answer to our request, is dropped.
@Suite(.serialized, .enabled(if: Privileges.canCreateNetns, "needs root to create network namespaces"))
struct SpoofedReplyTests {
    @Test func aForgedErrorFromAnotherProcessIsNotTakenForTheKernelsAnswer() throws {
        let ns = try TestNetns("spoof")
        defer { ns.remove() }
        try ns.open().perform {
            let nl = try NetlinkSocket()
            forgeErrors(protocol: NETLINK_ROUTE, to: nl.portID, after: nl.sequence)
            #expect(try nl.link(named: "lo") != nil, "the forged EPERM would fail the lookup")
        }
    }
}
