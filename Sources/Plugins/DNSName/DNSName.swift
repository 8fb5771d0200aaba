import CLinux
import Base
import CNI
import DNS
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `dnsname` chained plugin: registers the container's names (K8S_POD_NAME, the network's
/// aliases, the 12-character short ID) in the network's records file and has `cni-dnsd` serve
/// them on the network's gateways. ADD returns once the responder has loaded them.
public struct DNSNamePlugin: CNIPlugin {
    public static let type = "dnsname"
    public static let summary = "dnsname plugin (swift-cni): container names served by cni-dnsd on the gateways"

    /// The plugin; its state is the network's records file.
    public init() {}

    /// Decodes and validates the configuration with nothing written.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try DNSNameConfig(config, args: args) }

    /// Writes the attachment's names into the network's records file, starts cni-dnsd or makes it reload, and returns prevResult with the responder as DNS server.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try DNSNameConfig(ctx.config, args: ctx.args)
        var result = try ctx.chainedPrevResult("dnsname")
        let mine = DNSNameConfig.containerIPs(result, ifName: ctx.args.ifName)
        let gateways = DNSNameConfig.gateways(result, ifName: ctx.args.ifName)
        guard !mine.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "prevResult has no address for \(ctx.args.ifName) to name")
        }
        guard !gateways.isEmpty else {
            throw CNIError(
                .invalidNetworkConfig, "prevResult has no gateway for \(ctx.args.ifName)",
                details: "the responder listens on the network's gateway addresses; set isGateway on the bridge")
        }
        let names = try conf.names(ctx)
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let entry = NetworkRecords.Entry(
            owner: DNSNameConfig.owner(network: ctx.config.name, ctx.args), v4: mine.filter { $0.family == .v4 },
            v6: mine.filter { $0.family == .v6 }, names: names, container: attachment.containerTag, ifName: ctx.args.ifName)
        try Records.update(conf, network: ctx.config.name, ctx: ctx, startIfNeeded: true) { r in
            r.domain = conf.domain
            r.ttl = conf.ttl
            r.isInternal = conf.isInternal
            r.upstreams = conf.upstreams
            for g in gateways where !r.listen.contains(g) { r.listen.append(g) }
            r.entries.removeAll { $0.owner == entry.owner }
            // A name another container of the network holds stays theirs too: both answer (as
            // Docker does for a shared alias).
            r.entries.append(entry)
        }
        // The domains of the container's other networks (cni-dnsd answers their names on
        // every one of its nameservers), each once, this network's first.
        var dns = result.dns
        for g in gateways where !dns.nameservers.contains(g.description) { dns.nameservers.append(g.description) }
        for d in [conf.domain] + Records.domains(conf, of: attachment.containerTag, except: ctx.config.name)
        where !dns.search.contains(d) {
            dns.search.append(d)
        }
        result.dns = dns
        return result
    }

    /// Removes the container's names. Missing records, file or responder are success.
    public func del(_ ctx: PluginContext) throws {
        let conf = try DNSNameConfig(ctx.config, args: ctx.args, forAdd: false)
        let owner = DNSNameConfig.owner(network: ctx.config.name, ctx.args)
        try Records.update(conf, network: ctx.config.name, ctx: ctx, startIfNeeded: false) { r in
            r.entries.removeAll { $0.owner == owner }
        }
    }

    /// The names are in the records and the responder is up.
    public func check(_ ctx: PluginContext) throws {
        let conf = try DNSNameConfig(ctx.config, args: ctx.args, forAdd: false)
        _ = try ctx.checkedPrevResult("dnsname")
        let owner = DNSNameConfig.owner(network: ctx.config.name, ctx.args)
        let r = try Records.read(conf, network: ctx.config.name)
        guard let e = r?.entries.first(where: { $0.owner == owner }) else {
            throw CNIError(.checkFailed, "no names of \(ctx.args.containerID)/\(ctx.args.ifName) in \(Records.path(conf, ctx.config.name))")
        }
        let names = try conf.names(ctx)
        if Set(e.names) != Set(names) {
            throw CNIError(.checkFailed, "names differ", details: "records have \(e.names), the configuration gives \(names)")
        }
        guard let reply = Control.send("ping", dir: conf.runDir), reply.hasPrefix("ok") else {
            throw CNIError(.checkFailed, "cni-dnsd does not answer on \(conf.runDir)/dnsd.sock")
        }
    }

    /// GC: the network's entries whose attachment is not in the valid list go.
    public func gc(_ ctx: PluginContext) throws {
        let conf = try DNSNameConfig(ctx.config, args: ctx.args, forAdd: false)
        let valid = Set(
            (ctx.config.validAttachments ?? []).map {
                DNSNameConfig.owner(network: ctx.config.name, containerID: $0.containerID, ifName: $0.ifName)
            })
        try Records.update(conf, network: ctx.config.name, ctx: ctx, startIfNeeded: false) { r in
            r.entries.removeAll { !valid.contains($0.owner) }
        }
    }

    /// STATUS: the records directory must be usable and cni-dnsd findable.
    public func status(_ ctx: PluginContext) throws {
        let conf = try DNSNameConfig(ctx.config, args: ctx.args, forAdd: false)
        guard Daemon.find(ctx) != nil else {
            throw CNIError(.notAvailable, "dnsname: cni-dnsd not found on CNI_PATH or PATH")
        }
        do { try System.makeDirectories(conf.runDir) } catch {
            throw CNIError(.notAvailable, "dnsname: \(conf.runDir) is not usable", details: "\(error)")
        }
    }
}

/// The records files: `<runDir>/<network>.net`, changed under `<runDir>/lock`.
enum Records {
    static func path(_ conf: DNSNameConfig, _ network: String) -> String { "\(conf.runDir)/\(network).net" }

    /// The domains of the networks (other than `except`) that container `tag` has names on,
    /// in the order of its interfaces; unreadable files are skipped.
    static func domains(_ conf: DNSNameConfig, of tag: String, except: String) -> [String] {
        var found: [(UInt32, String, String)] = []
        for file in (try? System.listDirectory(conf.runDir)) ?? [] where file.hasSuffix(".net") {
            let network = String(file.dropLast(4))
            guard network != except, let r = try? read(conf, network: network),
                let e = r.entries.first(where: { $0.container == tag })
            else { continue }
            found.append((InterfaceName.ordinal(e.ifName ?? ""), network, r.domain))
        }
        return found.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2)
    }

    static func read(_ conf: DNSNameConfig, network: String) throws -> NetworkRecords? {
        let p = path(conf, network)
        guard System.exists(p) else { return nil }
        var problems: [String] = []
        let text = String(decoding: try System.readFile(p, limit: 64 << 20), as: UTF8.self)
        return NetworkRecords(network: network, text: text, problems: &problems)
    }

    /// Applies `change` to the network's records under the lock, writes them (or removes the file
    /// when no entry is left) and has cni-dnsd reload; with `startIfNeeded` it starts cni-dnsd.
    /// If the responder cannot take the change, the file goes back to what it was.
    static func update(
        _ conf: DNSNameConfig, network: String, ctx: PluginContext, startIfNeeded: Bool,
        _ change: (inout NetworkRecords) -> Void
    ) throws {
        do { try System.makeDirectories(conf.runDir) } catch {
            throw CNIError(.stateStoreFailure, "cannot create \(conf.runDir)", details: "\(error)")
        }
        let lockPath = "\(conf.runDir)/lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw CNIError(.stateStoreFailure, "cannot open \(lockPath)", details: String(cString: strerror(errno))) }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            if errno != EINTR { throw CNIError(.stateStoreFailure, "cannot lock \(lockPath)", details: String(cString: strerror(errno))) }
        }
        let p = path(conf, network)
        let before = try read(conf, network: network)
        if before == nil && !startIfNeeded {  // nothing of this network: nothing to remove
            try? System.removeFile(p + ".tmp")  // but what a killed first write left
            return
        }
        var r = before ?? NetworkRecords(network: network)
        change(&r)
        if r == before { return }
        func write(_ records: NetworkRecords?) throws {
            do {
                // Under the lock: one fixed temporary, so a writer killed before its rename leaves
                // nothing the next write or the last DEL does not remove.
                if let records, !records.entries.isEmpty {
                    try System.writeFileAtomically(p, Array(records.text.utf8), mode: 0o644, temporary: p + ".tmp")
                } else {
                    try System.removeFile(p)
                    try System.removeFile(p + ".tmp")
                }
            } catch {
                throw CNIError(.stateStoreFailure, "cannot write \(p)", details: "\(error)")
            }
        }
        try write(r)
        // The responder takes the new records before the command returns.
        if let reply = Control.send("reload", dir: conf.runDir) {
            guard reply.hasPrefix("ok") else {
                try? write(before)
                _ = Control.send("reload", dir: conf.runDir)
                throw CNIError(.tryAgainLater, "cni-dnsd could not serve network \"\(network)\"", details: reply)
            }
            return
        }
        guard startIfNeeded && !r.entries.isEmpty else { return }
        do {
            try Daemon.start(ctx, dir: conf.runDir, options: conf.daemonOptions)
        } catch {
            try? write(before)
            throw error
        }
    }
}

/// The control socket client: one command, one line back.
enum Control {
    static let timeoutMs: Int32 = 10_000

    /// The reply line, or nil when no responder listens on the socket.
    static func send(_ command: String, dir: String) -> String? {
        System.requestLine(command, unixSocket: "\(dir)/dnsd.sock")
    }
}

/// Starting cni-dnsd: found on CNI_PATH, then PATH; its own session, stdio to `<dir>/dnsd.log`; the
/// plugin waits for "ok" on a readiness pipe (the daemon has then loaded every records file).
enum Daemon {
    static func find(_ ctx: PluginContext) -> String? {
        let path = (ctx.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":")
        for d in ctx.args.path + path.map(String.init) where System.isExecutableFile("\(d)/cni-dnsd") { return "\(d)/cni-dnsd" }
        return nil
    }

    static func start(_ ctx: PluginContext, dir: String, options: [String] = []) throws {
        guard let exe = find(ctx) else {
            throw CNIError(.delegateFailed, "cni-dnsd not found", details: "looked in CNI_PATH and PATH for the responder the dnsname plugin starts")
        }
        var fds: [Int32] = [0, 0]
        guard clinux_pipe2(&fds, O_CLOEXEC) == 0 else { throw CNIError(.ioFailure, "pipe", details: String(cString: strerror(errno))) }
        defer { close(fds[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "\(dir)/dnsd.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(0x80))  // POSIX_SPAWN_SETSID: not in the runtime's session
        let argv = [exe, "--dir", dir, "--ready-fd", "3"] + options
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        let env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for e in cenv { free(e) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, &cargs, &cenv)
        close(fds[1])
        guard rc == 0 else { throw CNIError(.delegateFailed, "cannot start \(exe)", details: String(cString: strerror(rc))) }
        // Readiness: one line on the pipe ("ok <generation>" or "error ..."), or EOF if it died.
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while !got.contains(10) {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Control.timeoutMs) > 0 else {
                throw CNIError(.tryAgainLater, "cni-dnsd did not become ready within \(Control.timeoutMs / 1000) s", details: "see \(dir)/dnsd.log")
            }
            let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += buf.prefix(n)
        }
        // The daemon is not our child to wait for once it runs; reap it if it already died.
        var status: Int32 = 0
        let line = String(decoding: got.prefix { $0 != 10 }, as: UTF8.self)
        guard line.hasPrefix("ok") else {
            _ = waitpid(pid, &status, WNOHANG)
            throw CNIError(.tryAgainLater, "cni-dnsd failed to start", details: line.isEmpty ? "it exited; see \(dir)/dnsd.log" : line)
        }
    }
}
