import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// One message of a netlink datagram (rtnetlink and nftables alike): its header fields and its
/// bytes. The wire layer both sockets share: framing, the checks that a reply answers our
/// request, and receiving only what the kernel sent.
public struct NetlinkMessage {
    public let type: UInt16
    public let flags: UInt16
    public let sequence: UInt32
    public let portID: UInt32
    /// The whole message, its 16-byte header included.
    public let bytes: [UInt8]
    /// What follows the header.
    public var payload: ArraySlice<UInt8> { bytes[16...] }

    /// The messages in the first `count` bytes of `buffer`; a truncated tail is dropped.
    public static func split(_ buffer: [UInt8], count: Int) -> [NetlinkMessage] {
        var out: [NetlinkMessage] = []
        var off = 0
        while off + 16 <= count {
            let len = Int(le32(buffer, off))
            guard len >= 16, off + len <= count else { break }
            out.append(
                NetlinkMessage(
                    type: UInt16(buffer[off + 4]) | UInt16(buffer[off + 5]) << 8, flags: UInt16(buffer[off + 6]) | UInt16(buffer[off + 7]) << 8,
                    sequence: le32(buffer, off + 8), portID: le32(buffer, off + 12), bytes: Array(buffer[off..<(off + len)])))
            off += (len + 3) & ~3
        }
        return out
    }

    /// The message answers request `sequence` of the socket bound to `portID` (the kernel writes
    /// our port id, or 0, into its replies); replies to another request or socket are not ours.
    public func answers(sequence: UInt32, portID: UInt32) -> Bool {
        self.sequence == sequence && (self.portID == portID || self.portID == 0)
    }

    /// NLMSG_ERROR's (and NLMSG_DONE's) code: 0 for an acknowledgement, else a negative errno.
    public var code: Int32 { bytes.count >= 20 ? Int32(bitPattern: le32(bytes, 16)) : -EPROTO }

    /// Reads the next datagram the kernel sent on `fd` into `buffer` (datagrams of other senders
    /// are dropped: ``clinux_netlink_recv_from_kernel``), retrying on EINTR. Its length, or -1
    /// with errno.
    public static func receive(_ fd: Int32, into buffer: inout [UInt8], flags: Int32 = 0) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { clinux_netlink_recv_from_kernel(fd, $0.baseAddress, $0.count, flags) }
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }
}

/// The little-endian 32-bit value at `i` of `b` (netlink's byte order on every Linux target).
@inline(__always)
public func le32(_ b: some RandomAccessCollection<UInt8>, _ i: Int) -> UInt32 {
    let s = b.index(b.startIndex, offsetBy: i)
    return UInt32(b[s]) | UInt32(b[b.index(s, offsetBy: 1)]) << 8 | UInt32(b[b.index(s, offsetBy: 2)]) << 16 | UInt32(b[b.index(s, offsetBy: 3)]) << 24
}
