#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CLinux

/// A failed system call: the operation and its object, and errno.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32
    /// The failure of `operation` with `errno`.
    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }
    public var description: String { "\(operation): \(reason)" }
}

/// Small wrappers over the C library, for the plugin binary (which does not link Foundation).
public enum System {
    /// The process environment.
    public static func environment() -> [String: String] {
        var env: [String: String] = [:]
        guard var p = clinux_environ() else { return env }
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                env[String(s[..<eq])] = String(s[s.index(after: eq)...])
            }
            p += 1
        }
        return env
    }

    /// Reads `fd` to its end, or until more than `limit` bytes arrived (then returns limit + 1
    /// bytes, so the caller can tell the input was too large without reading it all).
    public static func readAll(fd: Int32, limit: Int = Int.max) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count <= limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", errno: errno)
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        if out.count > limit { out.removeSubrange((limit + 1)...) }
        return out
    }

    /// Writes all of `bytes` to `fd`.
    public static func writeAll(fd: Int32, _ bytes: some Collection<UInt8>) throws(SystemError) {
        let data = Array(bytes)
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", errno: errno)
            }
            off += n
        }
    }

    /// The process's working directory ("." when it cannot be read).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(cString: buffer)
    }

    /// Writes a string to standard error, ignoring failures.
    public static func logError(_ text: String) {
        try? writeAll(fd: 2, Array(text.utf8))
    }

    /// Whether `path` names an executable regular file.
    public static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// Sleeps for `milliseconds`.
    public static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var rem = timespec()
        while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs, CR and LF.
    public func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
