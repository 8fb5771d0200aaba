import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// A network namespace opened from a path (`/run/netns/x`, `/proc/<pid>/ns/net`).
///
/// `setns` moves only the calling thread, so work inside the namespace runs on a dedicated
/// pthread that enters it and ends afterwards (``perform(_:)``); never on a shared executor thread.
/// Sockets made there (``netlink()``) stay bound to the namespace wherever they are used.
public final class NetworkNamespace: @unchecked Sendable {
    public let path: String
    /// The open namespace file; owned, closed with the object.
    public let descriptor: Int32

    static let nsfsMagic: UInt = 0x6e73_6673
    static let procMagic: UInt = 0x9fa0

    /// Opens `path` and checks that it is a namespace file (nsfs, or procfs for /proc/<pid>/ns/net).
    /// ENOENT when it does not exist, EINVAL when it is some other file.
    public init(path: String) throws(NetlinkError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw NetlinkError(operation: "open netns \(path)", errno: errno) }
        let fsType = clinux_fs_magic(fd)
        if fsType < 0 {
            let e = errno
            close(fd)
            throw NetlinkError(operation: "statfs \(path)", errno: e)
        }
        let magic = UInt(bitPattern: fsType)
        if magic != NetworkNamespace.nsfsMagic && magic != NetworkNamespace.procMagic {
            close(fd)
            throw NetlinkError(operation: "open netns \(path)", errno: EINVAL, extendedAck: "not a network namespace file")
        }
        // Another kind of namespace (/proc/<pid>/ns/mnt): setns would fail later, with EINVAL.
        let type = clinux_ns_type(fd)
        if type >= 0 && type != CLINUX_CLONE_NEWNET {
            close(fd)
            throw NetlinkError(operation: "open netns \(path)", errno: EINVAL, extendedAck: "a namespace, but not a network namespace")
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// The namespace of the calling thread.
    public static func current() throws(NetlinkError) -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/thread-self/ns/net")
    }

    /// Whether this namespace is the calling thread's own (same nsfs inode).
    public var isCurrent: Bool {
        var a = stat()
        var b = stat()
        guard fstat(descriptor, &a) == 0, stat("/proc/thread-self/ns/net", &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// Runs `body` on a new thread inside this namespace and returns its result.
    public func perform<T>(_ body: () throws -> T) throws -> T {
        let box = ResultBox<T>()
        try withoutActuallyEscaping(body) { escapable in
            let job = ThreadJob(fd: descriptor) { box.value = Result { try escapable() } }
            var thread = pthread_t()
            let ctx = Unmanaged.passRetained(job).toOpaque()
            let rc = pthread_create(
                &thread, nil,
                { raw in
                    Unmanaged<ThreadJob>.fromOpaque(raw!).takeRetainedValue().run()
                    return nil
                }, ctx)
            if rc != 0 {
                Unmanaged<ThreadJob>.fromOpaque(ctx).release()
                throw NetlinkError(operation: "pthread_create", errno: rc)
            }
            pthread_join(thread, nil)
            if job.setnsErrno != 0 { throw NetlinkError(operation: "setns \(path)", errno: job.setnsErrno) }
        }
        return try box.value!.get()
    }

    /// A netlink socket bound to this namespace.
    public func netlink() throws -> NetlinkSocket {
        try perform { try NetlinkSocket() }
    }
}

private final class ResultBox<T> {
    var value: Result<T, any Error>?
}

/// The work of one namespace thread: enter the namespace, run, end.
private final class ThreadJob {
    let fd: Int32
    let work: () -> Void
    var setnsErrno: Int32 = 0
    init(fd: Int32, work: @escaping () -> Void) {
        self.fd = fd
        self.work = work
    }
    func run() {
        if clinux_setns(fd, CLINUX_CLONE_NEWNET) != 0 {
            setnsErrno = errno
            return
        }
        work()
    }
}

/// Kernel parameters under /proc/sys, of the calling thread's network namespace (use
/// ``NetworkNamespace/perform(_:)`` for another). Keys are path components, since interface names
/// may contain dots: `["net", "ipv4", "conf", "br.100", "route_localnet"]`.
public enum Sysctl {
    /// The file under /proc/sys of `key`.
    public static func path(_ key: [String]) -> String { "/proc/sys/" + key.joined(separator: "/") }

    /// Equivalent to `sysctl -n net.ipv4.ip_forward`.
    public static func get(_ key: [String]) throws(NetlinkError) -> String {
        let p = path(key)
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw NetlinkError(operation: "read \(p)", errno: errno) }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw NetlinkError(operation: "read \(p)", errno: errno) }
        return String(String(decoding: buf[0..<n], as: UTF8.self).trimmingWhitespace())
    }

    /// Equivalent to `sysctl -w net.ipv4.ip_forward=1`.
    public static func set(_ key: [String], _ value: String) throws(NetlinkError) {
        let p = path(key)
        let fd = open(p, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw NetlinkError(operation: "write \(p)", errno: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw NetlinkError(operation: "write \(p) = \(value)", errno: errno) }
    }
}
