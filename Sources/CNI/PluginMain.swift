import Base
/// One invocation of a plugin, as its command functions see it.
public struct PluginContext: Sendable {
    public let args: CommandArgs
    public let config: NetConf
    /// The configuration bytes exactly as received (passed unchanged to delegates).
    public let stdin: [UInt8]
    /// The whole environment (passed to delegates with CNI_COMMAND replaced).
    public let environment: [String: String]
    /// Writes a line of diagnostics to the plugin's standard error.
    public let log: @Sendable (String) -> Void
    /// The plugins of this very binary, by type: a delegate that is this binary runs in-process.
    public let inProcess: [String: any CNIPlugin]

    /// The context of one invocation: the environment as read, the configuration, stdin, the log and the plugins of this binary.
    public init(
        args: CommandArgs, config: NetConf, stdin: [UInt8], environment: [String: String],
        log: @escaping @Sendable (String) -> Void, inProcess: [String: any CNIPlugin] = [:]
    ) {
        self.args = args
        self.config = config
        self.stdin = stdin
        self.environment = environment
        self.log = log
        self.inProcess = inProcess
    }
}

/// A CNI plugin: one function per command. ``PluginMain`` validates the environment and the
/// configuration, negotiates the version and gates the commands before any of these run.
public protocol CNIPlugin: Sendable {
    /// The CNI `type` (the binary's name).
    static var type: String { get }
    /// One line about the plugin, printed on stderr when it is run without CNI_COMMAND.
    static var summary: String { get }
    /// The spec versions the plugin accepts (all seven unless it says otherwise).
    static var supportedVersions: [CNIVersion] { get }
    /// Whether an `ipam` section must name its plugin (`type`): true unless the plugin completes
    /// `ipam` itself (flannel's is a base whose type defaults to host-local).
    static var ipamNeedsType: Bool { get }

    /// ADD: create or adjust the attachment; return the result (with prevResult merged).
    func add(_ ctx: PluginContext) throws -> CNIResult
    /// DEL: undo ADD; missing state is success.
    func del(_ ctx: PluginContext) throws
    /// CHECK: verify the attachment still matches prevResult.
    func check(_ ctx: PluginContext) throws
    /// GC: release what belongs to attachments not in ``NetConf/validAttachments``.
    func gc(_ ctx: PluginContext) throws
    /// STATUS: throw code 50/51 when ADD cannot be served.
    func status(_ ctx: PluginContext) throws

    /// Decodes and validates a configuration as ADD does, changing nothing on the system (the
    /// config fuzz target runs every plugin's through this).
    static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError)
}

extension CNIPlugin {
    public static var supportedVersions: [CNIVersion] { CNIVersion.allSupported }
    public static var ipamNeedsType: Bool { true }
}

/// What a plugin run prints on stdout and the exit status it ends with.
public struct PluginOutcome: Sendable, Equatable {
    public var exitCode: Int32
    public var stdout: String
    /// The context of one invocation: the environment as read, the configuration, stdin, the log and the plugins of this binary.
    public init(exitCode: Int32, stdout: String) {
        self.exitCode = exitCode
        self.stdout = stdout
    }
}

/// The dispatcher: environment + stdin in, stdout + exit code out. The whole path runs without
/// exec in tests, with an injected environment, stdin and stderr.
public enum PluginMain {
    /// Runs one command of `plugin`. `readStdin` is called at most once, and not for VERSION
    /// when `stdinIsTerminal` (a person typing `CNI_COMMAND=VERSION bridge`).
    /// `inProcess`: the plugins of the running binary, for delegates that are this binary.
    public static func run(
        _ plugin: some CNIPlugin, environment: [String: String], stdinIsTerminal: Bool = false,
        readStdin: () throws -> [UInt8], log: @escaping @Sendable (String) -> Void,
        inProcess: [String: any CNIPlugin] = [:]
    ) -> PluginOutcome {
        let type = type(of: plugin)
        let supported = type.supportedVersions

        // Without CNI_COMMAND a person is probably looking at the binary: say what it is.
        if (environment["CNI_COMMAND"] ?? "").isEmpty {
            log("\(type.summary)\nCNI protocol versions supported: \(supported.map(\.rawValue).joined(separator: ", "))\n")
        }
        let args: CommandArgs
        do {
            args = try CommandArgs.parse(environment)
        } catch {
            return failure(error, version: nil)
        }

        var stdin: [UInt8] = []
        if !(args.command == .version && stdinIsTerminal) {
            do {
                stdin = try readStdin()
            } catch {
                return failure(CNIError(.ioFailure, "failed to read the network configuration from stdin", details: "\(error)"), version: nil)
            }
        }

        if args.command == .version {
            return version(supported: supported, stdin: stdin)
        }

        let config: NetConf
        do {
            config = try NetConf(decoding: stdin, supported: supported, ipamNeedsType: type.ipamNeedsType)
        } catch {
            return failure(error, version: peekVersion(stdin, supported: supported))
        }
        let v = config.cniVersion
        if v < args.command.minimumVersion {
            return failure(
                CNIError(
                    .incompatibleVersion, "config version does not allow \(args.command.rawValue)",
                    details: "\(args.command.rawValue) needs cniVersion \(args.command.minimumVersion) or later, config has \(v)"),
                version: v)
        }
        let ctx = PluginContext(
            args: args, config: config, stdin: stdin, environment: environment, log: log, inProcess: inProcess)
        do {
            switch args.command {
            case .add:
                let result = try plugin.add(ctx)
                return PluginOutcome(exitCode: 0, stdout: try result.json(version: v).serialized() + "\n")
            case .del: try plugin.del(ctx)
            case .check: try plugin.check(ctx)
            case .gc: try plugin.gc(ctx)
            case .status: try plugin.status(ctx)
            case .version: break
            }
            return PluginOutcome(exitCode: 0, stdout: "")
        } catch {
            return failure(error, version: v)
        }
    }

    /// `{"cniVersion","supportedVersions"}`. Echoes the requested version when it is supported
    /// (the spec), else the newest; stdin that does not parse is ignored, as the Go library does.
    static func version(supported: [CNIVersion], stdin: [UInt8]) -> PluginOutcome {
        var o = JSONObject()
        o["cniVersion"] = .string((peekVersion(stdin, supported: supported) ?? supported.last ?? .latest).rawValue)
        o["supportedVersions"] = .array(supported.map { .string($0.rawValue) })
        return PluginOutcome(exitCode: 0, stdout: JSONValue.object(o).serialized() + "\n")
    }

    /// The config's version if stdin is a small JSON object naming a supported one.
    static func peekVersion(_ stdin: [UInt8], supported: [CNIVersion]) -> CNIVersion? {
        guard !stdin.isEmpty, stdin.count <= NetConf.maximumSize,
            case .object(let o)? = try? JSONValue.parse(stdin),
            let v = CNIVersion(rawValue: o["cniVersion"]?.stringValue ?? "0.1.0"), supported.contains(v)
        else { return nil }
        return v
    }

    /// The error object on stdout and exit status 1.
    public static func failure(_ error: any Error, version: CNIVersion?) -> PluginOutcome {
        let e = CNIError.from(error)
        return PluginOutcome(exitCode: 1, stdout: e.json(version: version ?? .latest).serialized() + "\n")
    }
}
