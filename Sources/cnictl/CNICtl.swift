import ArgumentParser
import Base
import CNI
import CNIRuntime

// cnictl: a cnitool-compatible CNI client. Same environment (NETCONFPATH, CNI_PATH, CNI_IFNAME,
// CNI_ARGS, CAP_ARGS), same container IDs, same result cache (libcni's format), plus GC, STATUS
// and a listing of cached attachments.

struct Environment {
    static let env = System.environment()
    static var confDir: String { env["NETCONFPATH"].flatMap { $0.isEmpty ? nil : $0 } ?? "/etc/cni/net.d" }
    static var pluginPath: [String] {
        (env["CNI_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/cni/bin").split(separator: ":").map(String.init)
    }
}

struct Common: ParsableArguments {
    @Option(name: .customLong("cache-dir"), help: "Result cache root (env CNI_CACHE_DIR; default /var/lib/cni).")
    var cacheDir: String?

    var resolvedCacheDir: String { cacheDir ?? Environment.env["CNI_CACHE_DIR"] ?? "/var/lib/cni" }

    func runtime() -> Runtime {
        Runtime(
            pluginPath: Environment.pluginPath, cacheDir: resolvedCacheDir, baseEnvironment: Environment.env,
            log: { System.logError($0) })
    }

    func load(_ network: String) throws -> NetworkConfigList {
        try NetworkConfigList.find(network, in: Environment.confDir)
    }
}

struct AttachmentOptions: ParsableArguments {
    @Argument(help: "Network name (the \"name\" of a conflist in NETCONFPATH).")
    var network: String
    @Argument(help: "Path of the container's network namespace, e.g. /run/netns/ctr1.")
    var netns: String
    @Option(name: [.short, .customLong("ifname")], help: "Interface name in the container (env CNI_IFNAME; default eth0).")
    var ifName: String?
    @Option(name: .customLong("container-id"), help: "Container ID (env CNI_CONTAINERID; default derived from the netns path as cnitool does).")
    var containerID: String?

    /// The absolute netns path, as cnitool makes it.
    var absoluteNetns: String {
        if netns.hasPrefix("/") { return netns }
        return System.currentDirectory() + "/" + netns
    }

    func attachment() throws -> RuntimeAttachment {
        let cid =
            containerID ?? Environment.env["CNI_CONTAINERID"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ContainerID.cnitool(netnsPath: absoluteNetns)
        let args = try CommandArgs.parseCNIArgs(Environment.env["CNI_ARGS"] ?? "")
        var caps = JSONObject()
        if let text = Environment.env["CAP_ARGS"], !text.isEmpty {
            do {
                guard case .object(let o) = try JSONValue.parse(text) else {
                    throw CNIError(.decodingFailure, "CAP_ARGS must be a JSON object")
                }
                caps = o
            } catch let e as JSONSyntaxError {
                throw CNIError(.decodingFailure, "invalid CAP_ARGS", details: e.description)
            }
        }
        let ifn = ifName ?? Environment.env["CNI_IFNAME"].flatMap { $0.isEmpty ? nil : $0 } ?? "eth0"
        return RuntimeAttachment(containerID: cid, netns: absoluteNetns, ifName: ifn, cniArgs: args, capabilityArgs: caps)
    }
}

enum ContainerID {
    /// `cnitool-` + hex of the first 10 bytes of SHA-512 of the netns path: stable per netns.
    static func cnitool(netnsPath: String) -> String {
        "cnitool-" + SHA512.hex(SHA512.hash(Array(netnsPath.utf8)).prefix(10))
    }
}

/// Prints a failure the way a person wants to read it, and exits 1.
func fail(_ error: any Error, _ what: String) -> ExitCode {
    var text: String
    switch error {
    case let f as Runtime.PluginFailure:
        text = "\(what): plugin \"\(f.plugin)\" \(f.command.rawValue) failed: \(f.error.msg)"
        if !f.error.details.isEmpty { text += ": \(f.error.details)" }
        text += " (code \(f.error.code))"
    case let e as CNIError:
        text = "\(what): \(e.msg)" + (e.details.isEmpty ? "" : ": \(e.details)") + " (code \(e.code))"
    default:
        text = "\(what): \(error)"
    }
    System.logError("cnictl: " + text + "\n")
    return ExitCode(1)
}

struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Attach a network namespace to a network (ADD every plugin in order).")
    @OptionGroup var target: AttachmentOptions
    @OptionGroup var common: Common
    func run() throws {
        do {
            let list = try common.load(target.network)
            let result = try common.runtime().add(list, try target.attachment())
            print(result.serialized(pretty: true))
        } catch { throw fail(error, "add \(target.network)") }
    }
}

struct Del: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Detach (DEL every plugin in reverse, with the cached result).")
    @OptionGroup var target: AttachmentOptions
    @OptionGroup var common: Common
    func run() throws {
        do {
            try common.runtime().del(try common.load(target.network), try target.attachment())
        } catch { throw fail(error, "del \(target.network)") }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Verify an attachment against its cached result (CHECK).")
    @OptionGroup var target: AttachmentOptions
    @OptionGroup var common: Common
    func run() throws {
        do {
            try common.runtime().check(try common.load(target.network), try target.attachment())
        } catch { throw fail(error, "check \(target.network)") }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Garbage-collect a network.",
        discussion: """
            Cached attachments whose network namespace is gone are deleted (DEL); then, for cniVersion 1.1.0, \
            every plugin gets GC with the remaining cached attachments as cni.dev/valid-attachments and \
            releases everything else. --valid gives the valid list explicitly instead.
            """)
    @Argument(help: "Network name.") var network: String
    @Option(name: .customLong("valid"), help: "A valid attachment as CONTAINERID:IFNAME (repeatable).")
    var valid: [String] = []
    @OptionGroup var common: Common
    func run() throws {
        do {
            var list: [Attachment]? = nil
            if !valid.isEmpty {
                list = try valid.map { v in
                    guard let colon = v.lastIndex(of: ":") else {
                        throw ValidationError("--valid takes CONTAINERID:IFNAME, got \"\(v)\"")
                    }
                    return Attachment(containerID: String(v[..<colon]), ifName: String(v[v.index(after: colon)...]))
                }
            }
            try common.runtime().gc(try common.load(network), valid: list)
        } catch let e as ValidationError { throw e } catch { throw fail(error, "gc \(network)") }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask every plugin of a network whether it can serve ADD (STATUS, 1.1.0).")
    @Argument(help: "Network name.") var network: String
    @OptionGroup var common: Common
    func run() throws {
        do {
            let list = try common.load(network)
            if list.cniVersion < .v1_1_0 {
                System.logError("cnictl: network \"\(network)\" is cniVersion \(list.cniVersion); STATUS needs 1.1.0\n")
                return
            }
            try common.runtime().status(list)
            print("network \(network): ready")
        } catch { throw fail(error, "status \(network)") }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the spec versions of cnictl, or of each plugin of a network.")
    @Argument(help: "Network name (optional).") var network: String?
    @OptionGroup var common: Common
    func run() throws {
        guard let network else {
            print("cnictl \(CNICtl.version); CNI spec versions: \(CNIVersion.allSupported.map(\.rawValue).joined(separator: ", "))")
            return
        }
        do {
            let list = try common.load(network)
            for i in list.plugins.indices {
                let v = try common.runtime().versions(of: list.type(i))
                print("\(list.type(i)): \(v.joined(separator: ", "))")
            }
        } catch { throw fail(error, "version \(network)") }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List cached attachments as a table.")
    @Argument(help: "Only this network (optional).") var network: String?
    @OptionGroup var common: Common
    func run() throws {
        let entries = ResultCache(root: common.resolvedCacheDir).entries(network: network)
        var rows = [["NETWORK", "CONTAINER", "IFNAME", "NETNS", "IPS"]]
        for e in entries {
            let ips = (try? CNIResult(json: e.result))?.ips.map(\.address.description).joined(separator: ",") ?? "?"
            rows.append([e.network, e.containerID, e.ifName, e.netns, ips])
        }
        let widths = (0..<5).map { c in rows.map { $0[c].count }.max()! }
        for r in rows {
            print(
                r.enumerated().map { $0.offset == 4 ? $0.element : padded($0.element, widths[$0.offset]) }.joined(
                    separator: "  "))
        }
    }
}

struct DNS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns", abstract: "Ask the dnsname responder (cni-dnsd).", subcommands: [DNSStats.self])
}

struct DNSStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Per-network counters of cni-dnsd: queries, answers by RCODE, forwards, upstream failures, rate-limited, dropped.")
    @Option(help: "The dnsname plugin's runDir (where dnsd.sock is).") var dir = "/run/cni/dns"
    @Flag(help: "Print the responder's JSON as it is.") var json = false

    func run() throws {
        guard let reply = System.requestLine("stats", unixSocket: dir + "/dnsd.sock") else {
            System.logError("cnictl: dns stats: no cni-dnsd answers on \(dir)/dnsd.sock\n")
            throw ExitCode(1)
        }
        guard reply.hasPrefix("{"), case .object(let o)? = try? JSONValue.parse(Array(reply.utf8)) else {
            System.logError("cnictl: dns stats: \(reply)\n")
            throw ExitCode(1)
        }
        if json {
            print(reply)
            return
        }
        func int(_ v: JSONValue?) -> Int {
            if case .number(let x)? = v { return x.intValue ?? 0 }
            return 0
        }
        func n(_ v: JSONValue?) -> String { String(int(v)) }
        var rows = [["NETWORK", "QUERIES", "NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", "OTHER", "FORWARDED", "UPSTREAM-FAILED", "RATE-LIMITED", "DROPPED"]]
        if case .object(let nets)? = o["networks"] {
            for (name, v) in nets.sorted(by: { $0.key < $1.key }) {
                guard case .object(let c) = v else { continue }
                let rc: JSONObject
                if case .object(let r)? = c["rcodes"] { rc = r } else { rc = JSONObject() }
                let named = ["NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL"]
                let other = rc.filter { !named.contains($0.key) }.reduce(0) { $0 + int($1.value) }
                rows.append(
                    [name, n(c["queries"])] + named.map { n(rc[$0]) } + [
                        String(other), n(c["forwarded"]), n(c["upstreamFailures"]), n(c["rateLimited"]), n(c["dropped"]),
                    ])
            }
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        for r in rows {
            print(r.enumerated().map { padded($0.element, widths[$0.offset]) }.joined(separator: "  "))
        }
    }
}

@main
struct CNICtl: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "cnictl",
        abstract: "Run CNI network configurations against network namespaces (cnitool-compatible).",
        discussion: """
            Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH (default /opt/cni/bin), CNI_IFNAME \
            (default eth0), CNI_ARGS (K=V;K=V), CAP_ARGS (JSON capability arguments, e.g. \
            {"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}), CNI_CONTAINERID, CNI_CACHE_DIR.
            """,
        version: version,
        subcommands: [Add.self, Check.self, Del.self, GC.self, Status.self, Version.self, List.self, DNS.self])
}

/// `text` with spaces after it up to `width` characters (a table column).
func padded(_ text: String, _ width: Int) -> String {
    text + String(repeating: " ", count: max(0, width - text.count))
}
