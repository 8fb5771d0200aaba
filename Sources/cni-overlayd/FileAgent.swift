import CLinux
import Base
import Netlink
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

/// The file store's loop: a pass (claim, program) at start, on every replacement of the lease
/// file (inotify on its directory), on every link or address change, and every `resync` seconds.
@MainActor struct FileAgent {
    let agent: Agent
    let store: FileLeaseStore
    let path: String

    init(_ agent: Agent, path: String) {
        self.agent = agent
        self.path = path
        store = FileLeaseStore(path: path)
    }

    var host: HostSide { agent.host }

    /// Claims (or keeps) this host's subnet with the underlay's address now; programs the host.
    func pass() throws {
        let under = try host.underlay()
        let lease = try store.claim(host.network, node: host.node, vtep: under.address)
        try host.program(lease, leases: try store.leases(), underlay: under)
    }

    func run() -> Never {
        if agent.once {
            do { try pass() } catch { Agent.fail("\(error)") }
            exit(0)
        }
        let (ifd, file) = watchStore()
        let monitor: NetlinkMonitor
        do { monitor = try NetlinkMonitor() } catch { Agent.fail("\(error)") }
        passLogged()
        while true {
            var p = [
                pollfd(fd: ifd, events: Int16(POLLIN), revents: 0), pollfd(fd: agent.stopFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: monitor.fd, events: Int16(POLLIN), revents: 0),
            ]
            let n = poll(&p, 3, agent.resync * 1000)
            if n > 0 && p[2].revents != 0 {
                // A link or address changed (the VTEP deleted or flapped, the underlay's address):
                // gather what comes within 100 ms, then one pass.
                while monitor.drain() && monitor.wait(milliseconds: 100) {}
            } else if n > 0 && p[1].revents != 0 {
                stop()
            } else if n > 0 && !Self.namesChanged(ifd, file) {
                continue  // only a change of the lease file matters (the lock file changes at every claim)
            }
            passLogged()
        }
    }

    func passLogged() {
        do { try pass() } catch { Agent.log("\(error)") }
    }

    /// An inotify descriptor on the store's directory (the store writes by rename), and the
    /// lease file's name in it.
    func watchStore() -> (fd: Int32, file: String) {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let file = path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
        try? System.makeDirectories(dir)
        let ifd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard ifd >= 0, inotify_add_watch(ifd, dir, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE)) >= 0 else {
            Agent.fail("inotify on \(dir)")
        }
        return (ifd, file)
    }

    /// Reads the pending inotify events; whether one names `file`.
    static func namesChanged(_ ifd: Int32, _ file: String) -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        var relevant = false
        while true {
            let r = buf.withUnsafeMutableBytes { read(ifd, $0.baseAddress, $0.count) }
            if r <= 0 { break }
            var off = 0
            while off + 16 <= r {  // struct inotify_event: wd, mask, cookie, len, name
                let len = Int(UInt32(buf[off + 12]) | UInt32(buf[off + 13]) << 8 | UInt32(buf[off + 14]) << 16 | UInt32(buf[off + 15]) << 24)
                let nameBytes = buf[(off + 16)..<min(r, off + 16 + len)].prefix { $0 != 0 }
                if String(decoding: nameBytes, as: UTF8.self) == file { relevant = true }
                off += 16 + len
            }
        }
        return relevant
    }

    /// SIGTERM/SIGINT: the lease released and the node file removed when asked to, then exit.
    func stop() -> Never {
        if agent.releaseOnExit {
            try? store.release(node: host.node)
            HostSide.removeFiles(node: host.nodeFilePath, subnet: host.subnetFilePath)
        }
        exit(0)
    }
}
