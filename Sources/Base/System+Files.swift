import CLinux

#if canImport(Glibc)
    import Glibc
#endif

extension System {
    /// The names in directory `path` (without `.` and `..`), unsorted.
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let d = opendir(path) else { throw SystemError("opendir \(path)", errno: errno) }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: &e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole content of a file.
    public static func readFile(_ path: String, limit: Int = 64 << 20) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        do {
            return try readAll(fd: fd, limit: limit)
        } catch {
            throw SystemError("read \(path)", errno: error.errno)
        }
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync'd
    /// when `durable`, renamed over the target. Readers see the old or the new content, never a part.
    ///
    /// The temporary is `temporary` when given (a writer that holds a lock over `path` passes
    /// `path + ".tmp"`: a crash's leftover is overwritten by the next write), else
    /// `<path>.tmp.<pid>` (see `removeAbandonedTemporaries`).
    public static func writeFileAtomically(
        _ path: String, _ bytes: some Collection<UInt8>, mode: mode_t = 0o600, durable: Bool = false,
        temporary: String? = nil
    ) throws(SystemError) {
        let tmp = temporary ?? "\(path).tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw SystemError("create \(tmp)", errno: errno) }
        do throws(SystemError) {
            // An existing temporary (a crashed writer's) keeps its old mode: set ours.
            if fchmod(fd, mode) != 0 { throw SystemError("chmod \(tmp)", errno: errno) }
            try writeAll(fd: fd, bytes)
            if durable && fsync(fd) != 0 { throw SystemError("fsync \(tmp)", errno: errno) }
        } catch {
            close(fd)
            unlink(tmp)
            throw SystemError("write \(tmp)", errno: error.errno)
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw SystemError("rename \(tmp) to \(path)", errno: e)
        }
    }

    /// Creates `path` with `bytes` only if it does not exist: false when it does. The file appears
    /// whole or not at all (written unnamed, then linked in), so a writer killed half-way never
    /// leaves an empty or partial file. Where the filesystem has no O_TMPFILE: exclusive create,
    /// then write (a kill between the two can leave an empty file there).
    public static func createExclusively(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(SystemError) -> Bool {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let fd = clinux_open_tmpfile(dir.isEmpty ? "/" : dir, mode)
        if fd < 0 {
            guard errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL else {
                throw SystemError("create a file in \(dir)", errno: errno)
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd < 0 {
                if errno == EEXIST { return false }
                throw SystemError("create \(path)", errno: errno)
            }
            defer { close(fd) }
            do { try writeAll(fd: fd, bytes) } catch {
                unlink(path)
                throw error
            }
            return true
        }
        defer { close(fd) }
        try writeAll(fd: fd, bytes)
        if clinux_link_fd(fd, path) != 0 {
            if errno == EEXIST { return false }
            throw SystemError("link \(path)", errno: errno)
        }
        return true
    }

    /// Removes the `<path>.tmp.<pid>` files of writers that are gone (killed between creating the
    /// temporary and renaming it). A live writer's temporary stays.
    public static func removeAbandonedTemporaries(of path: String) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        removeAbandonedTemporaries(in: dir.isEmpty ? "/" : dir, namePrefix: base + ".tmp.")
    }

    /// Removes every abandoned `<name>.tmp.<pid>` in `dir` whose name starts with `namePrefix`.
    public static func removeAbandonedTemporaries(in dir: String, namePrefix: String = "") {
        guard let names = try? listDirectory(dir) else { return }
        for name in names where name.hasPrefix(namePrefix) {
            guard let pid = temporaryWriter(name) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + name) }
        }
    }

    /// The writer's pid when `name` is a temporary of `writeFileAtomically` (`<x>.tmp.<pid>`).
    public static func temporaryWriter(_ name: String) -> pid_t? {
        guard let dot = name.lastIndex(of: "."), name[..<dot].hasSuffix(".tmp"),
            let pid = pid_t(name[name.index(after: dot)...]), pid > 0
        else { return nil }
        return pid
    }

    /// Removes a file; a file that does not exist is success.
    public static func removeFile(_ path: String) throws(SystemError) {
        if unlink(path) != 0 && errno != ENOENT { throw SystemError("remove \(path)", errno: errno) }
    }

    /// Creates `path` and its missing parents with `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw SystemError("mkdir \(current)", errno: errno)
            }
        }
    }

    /// Whether `path` is a directory this process can create files in.
    public static func isWritableDirectory(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return false }
        return access(path, W_OK | X_OK) == 0
    }

    /// Whether anything exists at `path` (following symlinks).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }
}

/// Base64 (RFC 4648, with padding), for the runtime cache's `config` field as libcni writes it.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// `bytes` in Base64 with padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil when `text` is not valid base64.
    public static func decode(_ text: String) -> [UInt8]? {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        let chars = Array(text.utf8).filter { $0 != UInt8(ascii: "=") }
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for c in chars {
            let v = table[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
