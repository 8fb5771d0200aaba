import Base

#if canImport(Glibc)
    import Glibc
#endif

/// host-local's on-disk store, file for file the reference plugin's, so a host can switch between
/// the two in place:
///
/// | file | content |
/// |---|---|
/// | `<dir>/<ip>` | `<containerID>\r\n<ifname>`, mode 0600, created exclusively: the reservation |
/// | `<dir>/last_reserved_ip.<set>` | the last address handed out from range set `<set>` |
/// | `<dir>/lock` | `flock` target, held for a whole operation |
///
/// On top of that, an index `<dir>/.swift-cni/<containerID>%<ifname>` lists the addresses of an
/// attachment, so the duplicate check on ADD and the release on DEL do not read every file. The
/// index is a hint: every address it names is verified against its reservation file before use,
/// and an attachment it does not know (made by the reference plugin, or by a crash between
/// reservation and index) is found by reading the directory, as the reference does. The index's
/// content has no `\r\n`, so the reference plugin's release-by-content never matches it.
public final class AllocationStore {
    public let directory: String
    private var lockFD: Int32 = -1

    static let indexDirectoryName = ".swift-cni"
    public var indexDirectory: String { directory + "/" + AllocationStore.indexDirectoryName }

    /// Opens `<dataDir>/<network>` and takes the lock; nil when the directory does not exist and
    /// `create` is false (DEL, CHECK and GC of a network that never had an address leave the disk
    /// as it was). `network` must already be a validated network name. Code 105 when the
    /// directory or lock cannot be had.
    public convenience init?(existing dataDir: String, network: String) throws(IPAMError) {
        var st = stat()
        guard stat(dataDir + "/" + network, &st) == 0 else { return nil }
        try self.init(dataDir: dataDir, network: network)
    }

    /// Opens (creating if needed) `<dataDir>/<network>` and takes the lock. `network` must already
    /// be a validated network name. Code 105 when the directory or lock cannot be had.
    public init(dataDir: String, network: String) throws(IPAMError) {
        directory = dataDir + "/" + network
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            do {
                try System.makeDirectories(directory, mode: 0o755)
            } catch {
                throw IPAMError(.storeFailure, "cannot create the IPAM data directory", details: error.description)
            }
        }
        lockFD = open(directory + "/lock", O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        if lockFD < 0 {
            throw IPAMError(
                .storeFailure, "cannot open the IPAM lock", details: SystemError("open \(directory)/lock", errno: errno).description)
        }
        while flock(lockFD, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let e = SystemError("flock \(directory)/lock", errno: errno)
            Glibc.close(lockFD)
            throw IPAMError(.storeFailure, "cannot lock the IPAM data directory", details: e.description)
        }
    }

    deinit { close() }

    /// Releases the lock (also done when the store is released).
    public func close() {
        if lockFD >= 0 {
            Glibc.close(lockFD)  // closing the descriptor drops the flock
            lockFD = -1
        }
    }

    /// The reservation file's content for an attachment.
    public static func owner(_ a: Attachment) -> [UInt8] { Array("\(a.containerID)\r\n\(a.ifName)".utf8) }

    /// Whether `content` (a reservation file) belongs to `a`: the two-line form, or the legacy
    /// id-only form; surrounding white space ignored, as the reference does.
    public static func matches(_ content: [UInt8], _ a: Attachment) -> Bool {
        let text = trimmed(content)
        return text == "\(a.containerID)\r\n\(a.ifName)" || text == a.containerID
    }

    /// The attachment a reservation names (`<containerID>\r\n<ifname>`); nil for the legacy
    /// id-only form, which names no interface.
    public static func owner(_ content: [UInt8]) -> Attachment? {
        let parts = trimmed(content).split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count == 2 ? Attachment(containerID: String(parts[0]), ifName: String(parts[1])) : nil
    }

    /// A reservation file's content without the surrounding whitespace.
    public static func trimmed(_ bytes: [UInt8]) -> Substring {
        String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
    }

    // MARK: Reservations

    /// Reserves `ip` for `a`: false when it is taken. The reservation file appears with its
    /// content or not at all (`System.createExclusively`): the reference creates it exclusively
    /// and then writes, and a kill in between leaves an empty file no DEL matches, a leaked address.
    public func reserve(_ ip: IPAddress, for a: Attachment, rangeSet: Int) throws(IPAMError) -> Bool {
        do {
            guard try System.createExclusively(directory + "/" + ip.description, AllocationStore.owner(a)) else { return false }
        } catch {
            throw IPAMError(.storeFailure, "cannot reserve \(ip)", details: error.description)
        }
        setLastReserved(ip, rangeSet: rangeSet)
        return true
    }

    /// The owner text of `ip`'s reservation, nil when it is free.
    public func reservation(_ ip: IPAddress) -> [UInt8]? {
        try? System.readFile(directory + "/" + ip.description, limit: 4096)
    }

    /// Removes `ip`'s reservation if it belongs to `a`; true when removed.
    @discardableResult
    public func release(_ ip: IPAddress, ifOwnedBy a: Attachment) -> Bool {
        guard let content = reservation(ip), AllocationStore.matches(content, a) else { return false }
        return unlink(directory + "/" + ip.description) == 0
    }

    /// The address last handed out from range set `rangeSet`, where the next search starts.
    public func lastReserved(rangeSet: Int) -> IPAddress? {
        guard let bytes = try? System.readFile(directory + "/last_reserved_ip.\(rangeSet)", limit: 256) else { return nil }
        return IPAddress(AllocationStore.trimmed(bytes))
    }

    /// Written in place, as the reference does; an unreadable cursor only loses round-robin once.
    func setLastReserved(_ ip: IPAddress, rangeSet: Int) {
        let path = directory + "/last_reserved_ip.\(rangeSet)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        try? System.writeAll(fd: fd, Array(ip.description.utf8))
        Glibc.close(fd)
    }

    /// Every reservation in the directory: address and owner text. Reads every file (GC, STATUS,
    /// and attachments the index does not know).
    public func scan() -> [(ip: IPAddress, content: [UInt8])] {
        guard let names = try? System.listDirectory(directory) else { return [] }
        var out: [(IPAddress, [UInt8])] = []
        for n in names {
            guard let ip = IPAddress(n), let c = try? System.readFile(directory + "/" + n, limit: 4096)
            else { continue }
            out.append((ip, c))
        }
        return out
    }

    // MARK: Index

    func indexPath(_ a: Attachment) -> String {
        let key = "\(a.containerID)%\(a.ifName)"
        if key.utf8.count <= 200 { return indexDirectory + "/" + key }
        return indexDirectory + "/h-" + SHA512.hex(SHA512.hash(Array(key.utf8)).prefix(20))
    }

    /// The addresses the index lists for `a`; nil when it has no entry.
    public func indexed(_ a: Attachment) -> [IPAddress]? {
        guard let bytes = try? System.readFile(indexPath(a), limit: 65536) else { return nil }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        guard lines.count >= 2, lines[0] == a.containerID, lines[1] == a.ifName else { return nil }
        return lines.dropFirst(2).compactMap { IPAddress($0) }
    }

    /// Records that `a` holds `ips` (the index DEL reads instead of scanning every reservation).
    public func setIndex(_ a: Attachment, _ ips: [IPAddress]) throws(IPAMError) {
        let text = ([a.containerID, a.ifName] + ips.map(\.description)).joined(separator: "\n") + "\n"
        do {
            if mkdir(indexDirectory, 0o700) != 0 && errno != EEXIST {
                throw SystemError("mkdir \(indexDirectory)", errno: errno)
            }
            try System.writeFileAtomically(indexPath(a), Array(text.utf8), temporary: indexPath(a) + AllocationStore.temporarySuffix)
        } catch {
            throw IPAMError(.storeFailure, "cannot write the IPAM index", details: "\(error)")
        }
    }

    /// Removes `a`'s entry (true when there was one), and the index directory once it is empty,
    /// so a store whose attachments are all gone looks exactly as the reference plugin leaves it.
    @discardableResult
    public func removeIndex(_ a: Attachment) -> Bool {
        let p = indexPath(a)
        let removed = unlink(p) == 0
        if unlink(p + AllocationStore.temporarySuffix) == 0 || removed { rmdir(indexDirectory) }
        return removed
    }

    /// An index entry is written through `<entry>.tmp` (under the lock, so one writer at a time):
    /// a writer killed before its rename leaves one, which the next write, DEL or GC removes.
    static let temporarySuffix = ".tmp"

    // MARK: Completeness

    /// The index is complete (lists every reservation of the directory) when nothing but this
    /// store's own operations changed the directory since the last one: each of them ends by
    /// setting the directory's mtime to a value it records in `.swift-cni/complete` (with the
    /// number of index entries), a second in the past with random nanoseconds, which the kernel
    /// never sets by itself, and the index directory's mtime to the same. Any other writer (the
    /// reference plugin after a switch in place, a removed index or entry, an operation killed
    /// between its reservation and its index entry) creates or removes a file, the kernel sets the mtime to the present, and the stamp no longer matches:
    /// the directory is then read in full and the index rebuilt from it (``rebuildIndex()``).
    public struct Stamp: Sendable, Equatable {
        var seconds: Int
        var nanoseconds: Int
        public var entries: Int
    }

    var stampPath: String { indexDirectory + "/complete" }

    /// The stamp when it matches the directory: the index is complete. Nil otherwise.
    public func completeIndex() -> Stamp? {
        guard let bytes = try? System.readFile(stampPath, limit: 256) else { return nil }
        let f = String(decoding: bytes, as: UTF8.self).split(separator: " ").compactMap { Int(String($0).trimmingWhitespace()) }
        guard f.count == 3 else { return nil }
        for dir in [directory, indexDirectory] {
            var st = stat()
            guard stat(dir, &st) == 0, st.st_mtim.tv_sec == f[0], st.st_mtim.tv_nsec == f[1] else { return nil }
        }
        return Stamp(seconds: f[0], nanoseconds: f[1], entries: f[2])
    }

    /// Records that the index is complete with `entries` entries (call last, under the lock).
    /// With none, the stamp and the index directory go (the store looks as the reference leaves it).
    /// `keeping`: the stamp found at the start; when the entries are the same (a refused ADD),
    /// its file is kept as it was and only the directories' times are set back to it.
    public func stampComplete(entries: Int, keeping previous: Stamp? = nil) {
        if entries <= 0 {
            unlink(stampPath)
            rmdir(indexDirectory)
            return
        }
        if mkdir(indexDirectory, 0o700) != 0 && errno != EEXIST { return }
        let stamp: Stamp
        if let previous, previous.entries == entries {
            stamp = previous
        } else {
            stamp = Stamp(seconds: time(nil) - 1, nanoseconds: Int.random(in: 1..<1_000_000_000), entries: entries)
            let text = "\(stamp.seconds) \(stamp.nanoseconds) \(stamp.entries)\n"
            guard (try? System.writeFileAtomically(stampPath, Array(text.utf8), temporary: stampPath + AllocationStore.temporarySuffix)) != nil
            else { return }
        }
        var times = [timespec(tv_sec: 0, tv_nsec: Int(AllocationStore.utimeOmit)), timespec(tv_sec: stamp.seconds, tv_nsec: stamp.nanoseconds)]
        // Both directories: a reservation or an index entry changed behind our back is seen.
        if utimensat(AT_FDCWD, indexDirectory, &times, 0) != 0 || utimensat(AT_FDCWD, directory, &times, 0) != 0 {
            unlink(stampPath)
        }
    }

    /// UTIME_OMIT: leave the access time alone.
    static let utimeOmit = (1 << 30) - 2

    /// Reads every reservation and makes the index list exactly them: an entry per attachment,
    /// none for an attachment without a reservation. Returns the number of entries, or nil when
    /// the index cannot be complete (a legacy id-only reservation names no interface).
    @discardableResult
    public func rebuildIndex() -> Int? {
        var held: [Attachment: [IPAddress]] = [:]
        var legacy = false
        for (ip, content) in scan() {
            guard let a = AllocationStore.owner(content) else {
                legacy = true
                continue
            }
            held[a, default: []].append(ip)
        }
        for a in indexedAttachments() where held[a] == nil { removeIndex(a) }
        for (a, ips) in held where Set(indexed(a) ?? []) != Set(ips) {
            do { try setIndex(a, ips.sorted()) } catch { return nil }
        }
        return legacy ? nil : held.count
    }

    /// The addresses reserved for `a`: from the index when it knows the attachment (each address
    /// verified against its reservation file), otherwise by reading the directory.
    public func addresses(of a: Attachment) -> [IPAddress] {
        if let ips = indexed(a) {
            let live = ips.filter { ip in reservation(ip).map { AllocationStore.matches($0, a) } ?? false }
            if !live.isEmpty { return live }
        }
        return scan().filter { AllocationStore.matches($0.content, a) }.map(\.ip)
    }

    /// Releases everything of `a`; returns the released addresses. Idempotent. Each reservation is
    /// read once: verified, then removed.
    @discardableResult
    public func releaseAll(of a: Attachment) -> [IPAddress] {
        let complete = completeIndex()
        var released = (indexed(a) ?? []).filter { release($0, ifOwnedBy: a) }
        if released.isEmpty && complete == nil {
            // Perhaps not indexed (made by the reference plugin, or before a crash wrote the index).
            for (ip, content) in scan() where AllocationStore.matches(content, a) {
                if unlink(directory + "/" + ip.description) == 0 { released.append(ip) }
            }
        }
        if complete == nil { unlink(stampPath) }  // stale: lets the emptied index directory go
        let hadEntry = removeIndex(a)
        if let complete { stampComplete(entries: complete.entries - (hadEntry ? 1 : 0)) }
        return released
    }

    /// Removes every index temporary (GC): under the lock none is being written.
    public func removeIndexTemporaries() {
        guard let names = try? System.listDirectory(indexDirectory) else { return }
        for n in names where n.hasSuffix(AllocationStore.temporarySuffix) { unlink(indexDirectory + "/" + n) }
        rmdir(indexDirectory)
    }

    /// The index's attachments (for GC).
    public func indexedAttachments() -> [Attachment] {
        guard let names = try? System.listDirectory(indexDirectory) else { return [] }
        var out: [Attachment] = []
        for n in names {
            if n.hasSuffix(AllocationStore.temporarySuffix) { continue }
            guard let bytes = try? System.readFile(indexDirectory + "/" + n, limit: 65536) else { continue }
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            if lines.count >= 2 { out.append(Attachment(containerID: String(lines[0]), ifName: String(lines[1]))) }
        }
        return out
    }
}
