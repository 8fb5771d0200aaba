import ArgumentParser
import Base
import CNI
import DNS
import NIOCore
import NIOPosix
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// cni-dnsd: answers the names of containers on the networks whose records the dnsname plugin
/// writes into `--dir`, on each network's gateway addresses (UDP and TCP), and forwards the rest.
/// One process for all networks; the dnsname plugin starts it and tells it to reload over the
/// control socket `<dir>/dnsd.sock`; it exits when no network is left.
@main
struct CNIDNSD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cni-dnsd", abstract: "The DNS responder of swift-cni's dnsname plugin.")

    @Option(help: "The records directory (one <network>.net file per network).")
    var dir = "/run/cni/dns"

    @Option(help: "The port to listen on.")
    var port = 53

    @Option(help: "Where the host's upstream servers are read from (first 3 nameservers).")
    var resolvConf = "/etc/resolv.conf"

    @Option(help: "A file descriptor to write \"ok\" (or the error) on once serving: the plugin waits for it.")
    var readyFD: Int32?

    @Option(help: "UDP queries a second per source address, bursts of twice that; over it queries are dropped (0: no limit).")
    var rateLimit = 2000

    @Option(help: "ADDRESS:PORT to serve Prometheus metrics on (GET /metrics), e.g. 127.0.0.1:9153. Off unless given.")
    var metrics: String?

    @Flag(help: "Keep running when no network is left (as a service).")
    var persist = false

    func validate() throws {
        guard rateLimit >= 0 else { throw ValidationError("--rate-limit must be 0 or more") }
        if let m = metrics, MetricsServer.parse(m) == nil {
            throw ValidationError("--metrics must be ADDRESS:PORT, e.g. 127.0.0.1:9153 or [::1]:9153")
        }
    }

    func run() throws {
        let ready = readyFD
        func say(_ text: String) {
            guard let fd = ready else { return }
            let line = text + "\n"
            _ = line.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        func log(_ text: String) { System.logError("cni-dnsd: \(text)\n") }
        do {
            try System.makeDirectories(dir)
        } catch {
            say("error: cannot create \(dir): \(error)")
            throw ExitCode(1)
        }
        // One daemon per directory: the pid file's lock. A daemon that is just exiting holds it a
        // moment longer, so wait a little before giving up.
        let pidPath = "\(dir)/dnsd.pid"
        let pidFD = open(pidPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        var locked = false
        for _ in 0..<100 where pidFD >= 0 {
            if flock(pidFD, LOCK_EX | LOCK_NB) == 0 {
                locked = true
                break
            }
            usleep(50_000)
        }
        guard locked else {
            say("error: another cni-dnsd holds \(pidPath)")
            throw ExitCode(1)
        }
        ftruncate(pidFD, 0)
        let pidText = "\(getpid())\n"
        _ = pidText.withCString { write(pidFD, $0, strlen($0)) }

        let server = Server(dir: dir, port: port, rateLimit: rateLimit, log: log)
        server.forwarder.resolvConf = resolvConf
        let first: (generation: UInt64, networks: Int)
        do {
            try server.start()
            first = try server.reload()
        } catch {
            say("error: \(error)")
            throw ExitCode(1)
        }
        let socketPath = "\(dir)/dnsd.sock"
        let queue = DispatchQueue(label: "cni-dnsd.reload")
        let control: Channel
        do {
            control = try ServerBootstrap(group: server.group)
                .childChannelInitializer { ch in
                    ch.pipeline.addHandler(
                        ControlHandler(server: server, queue: queue, socketPath: socketPath, pidPath: pidPath, persist: persist))
                }
                .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).wait()
            chmod(socketPath, 0o600)
        } catch {
            say("error: control socket \(socketPath): \(error)")
            throw ExitCode(1)
        }
        if let m = metrics, let (host, port) = MetricsServer.parse(m) {
            do {
                _ = try MetricsServer.start(host: host, port: port, group: server.group, stats: server.stats)
            } catch {
                say("error: metrics on \(m): \(error)")
                throw ExitCode(1)
            }
        }
        let addresses = server.zones.listenAddresses.map(\.description).joined(separator: " ")
        log("serving \(first.networks) network(s)\(addresses.isEmpty ? "" : " on " + addresses), generation \(first.generation)")
        say("ok \(first.generation)")
        // SIGHUP reloads too (for use as a service).
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        hup.setEventHandler { _ = try? server.reload() }
        hup.resume()
        try control.closeFuture.wait()
    }
}

/// The control protocol, a line each way: `reload` -> `ok <generation> <networks>` once the new
/// records are served (or `error <reason>`); `ping` -> `ok <generation>`; `stats` -> the counters
/// as one line of JSON. After a reload that leaves no network the daemon exits (unless --persist).
final class ControlHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let server: Server
    let queue: DispatchQueue
    let socketPath: String
    let pidPath: String
    let persist: Bool
    var pending: [UInt8] = []

    init(server: Server, queue: DispatchQueue, socketPath: String, pidPath: String, persist: Bool) {
        self.server = server
        self.queue = queue
        self.socketPath = socketPath
        self.pidPath = pidPath
        self.persist = persist
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += unwrapInboundIn(data).readableBytesView
        guard let nl = pending.firstIndex(of: 10) else {
            if pending.count > 256 { context.close(promise: nil) }
            return
        }
        let command = String(decoding: pending[..<nl], as: UTF8.self)
        pending = []
        let channel = context.channel
        queue.async { [server, socketPath, pidPath, persist] in
            var reply: String
            var exiting = false
            switch command {
            case "reload":
                do {
                    let r = try server.reload()
                    reply = "ok \(r.generation) \(r.networks)"
                    exiting = r.networks == 0 && !persist
                } catch {
                    reply = "error \(error)"
                }
            case "ping":
                reply = "ok \(server.zones.generation)"
            case "stats":
                reply = server.stats.json(generation: server.zones.generation)
            default:
                reply = "error unknown command"
            }
            if exiting {
                // Stop taking connections before answering, so the next plugin starts a new daemon.
                unlink(socketPath)
                server.closeAll()
            }
            let buf = channel.allocator.buffer(string: reply + "\n")
            try? channel.writeAndFlush(buf).wait()
            if exiting {
                unlink(pidPath)
                exit(0)
            }
        }
    }
}
