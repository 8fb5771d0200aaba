import CLinux
import Foundation
@testable import NFTables
import Netlink
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replies are taken only from the kernel: a message another process sends to our socket's port
/// id, looking like an acknowledgement of our batch, is ignored (as NetlinkSocket ignores them).
@Suite(.serialized, .enabled(if: canCreateNetns, "needs root and nft to create namespaces and tables"))
struct SpoofedReplyTests {
    @Test func aForgedErrorFromAnotherPortIsNotTakenForTheKernelsAnswer() throws {
        let ns = MasqueradeKernelTests.NS()
        let s = try ns.socket()
        // Another netlink socket in the namespace sends NLMSG_ERROR (EPERM) for the next 64
        // sequence numbers to our port id; they are queued before the batch's real answers.
        try NetworkNamespace(path: "/run/netns/\(ns.name)").perform {
            let fd = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), NETLINK_NETFILTER)
            #expect(fd >= 0)
            defer { close(fd) }
            var to = sockaddr_nl()
            to.nl_family = sa_family_t(AF_NETLINK)
            to.nl_pid = s.portID
            for seq in (s.sequence &+ 1)...(s.sequence &+ 64) {
                var m = [UInt8](repeating: 0, count: 36)  // nlmsghdr + errno + the echoed header
                func put32(_ v: UInt32, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { m.replaceSubrange(at..<(at + 4), with: $0) } }
                put32(36, 0)
                m[4] = UInt8(NLMSG_ERROR)
                put32(seq, 8)
                put32(s.portID, 12)  // even naming our port in the header
                put32(UInt32(bitPattern: -EPERM), 16)
                let sent = m.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                        }
                    }
                }
                #expect(sent == 36, "sendto: \(String(cString: strerror(errno)))")
            }
        }
        var b = Batch()
        b.addTable(TableRef(.inet, "swcni_spoof"))
        try s.apply(b)  // the forged EPERM would fail it
        #expect(ns.nft("list", "tables").contains("swcni_spoof"))
        _ = ns.nft("delete", "table", "inet", "swcni_spoof")
    }
}
