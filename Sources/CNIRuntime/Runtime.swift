import Base
import CNI

/// A network configuration list (a `.conflist`, or a single-plugin `.conf` wrapped into one), as a
/// runtime loads it.
public struct NetworkConfigList: Sendable {
    /// The file's bytes exactly (cached with each attachment, as libcni does).
    public let bytes: [UInt8]
    public let name: String
    /// The version the runtime uses: the highest of `cniVersion` and `cniVersions` it supports.
    public let cniVersion: CNIVersion
    public let disableCheck: Bool
    public let disableGC: Bool
    /// The plugin objects, in order.
    public let plugins: [JSONObject]

    /// Reads a `.conflist` (an object with `plugins`) or a single plugin configuration.
    public init(bytes: [UInt8], source: String = "configuration") throws(CNIError) {
        self.bytes = bytes
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw CNIError(.decodingFailure, "failed to decode \(source)", details: error.description)
        }
        let top = Fields(try value.object(at: source), path: source)
        name = try top.string("name") ?? ""
        try NetConf.validateName(name)
        var candidates: [String] = []
        if let v = try top.string("cniVersion") { candidates.append(v) }
        candidates += try top.stringArray("cniVersions") ?? []
        if candidates.isEmpty { candidates = ["0.1.0"] }
        let known = candidates.compactMap(CNIVersion.init(rawValue:))
        guard let best = known.max() else {
            throw CNIError(
                .incompatibleVersion, "incompatible CNI versions in \(source)",
                details: "\(candidates) names no version this runtime supports (\(CNIVersion.allSupported.map(\.rawValue)))")
        }
        cniVersion = best
        disableCheck = try top.looseBool("disableCheck") ?? false
        disableGC = try top.looseBool("disableGC") ?? false
        if let list = try top.array("plugins") {
            var ps: [JSONObject] = []
            for (i, p) in list.enumerated() {
                let o = try p.object(at: "\(source).plugins[\(i)]")
                guard (try Fields(o, path: "\(source).plugins[\(i)]").string("type")).map({ !$0.isEmpty }) == true else {
                    throw CNIError(.invalidNetworkConfig, "missing \"type\" in \(source).plugins[\(i)]")
                }
                ps.append(o)
            }
            if ps.isEmpty { throw CNIError(.invalidNetworkConfig, "no plugins in \(source)") }
            plugins = ps
        } else {
            guard (try top.string("type")).map({ !$0.isEmpty }) == true else {
                throw CNIError(.invalidNetworkConfig, "missing \"type\" in \(source)")
            }
            plugins = [top.object]
        }
    }

    /// The list named `name` in `directory`: files ending in `.conflist`, `.conf` or `.json`, in
    /// lexical order, the first whose `name` matches. Files that do not parse are skipped.
    public static func find(_ name: String, in directory: String) throws(CNIError) -> NetworkConfigList {
        let files: [String]
        do {
            files = try System.listDirectory(directory).filter {
                $0.hasSuffix(".conflist") || $0.hasSuffix(".conf") || $0.hasSuffix(".json")
            }.sorted()
        } catch {
            throw CNIError(.invalidNetworkConfig, "cannot read network configuration directory", details: error.description)
        }
        var skipped: [String] = []
        for f in files {
            let path = directory + "/" + f
            guard let bytes = try? System.readFile(path) else { continue }
            do {
                let list = try NetworkConfigList(bytes: bytes, source: path)
                if list.name == name { return list }
            } catch {
                skipped.append("\(f): \(error.msg)")
            }
        }
        throw CNIError(
            .invalidNetworkConfig, "no network \"\(name)\" in \(directory)",
            details: files.isEmpty
                ? "the directory has no .conflist, .conf or .json file"
                : "files: \(files.joined(separator: ", "))" + (skipped.isEmpty ? "" : "; unreadable: \(skipped.joined(separator: "; "))"))
    }

    /// The configuration sent to plugin `index`: the plugin object with `name` and `cniVersion`
    /// injected, `prevResult` when given, and `runtimeConfig` = the capabilities the plugin
    /// enables intersected with `capabilityArgs` (only when that is not empty), as libcni does.
    public func pluginConfig(
        _ index: Int, prevResult: JSONValue? = nil, capabilityArgs: JSONObject = JSONObject(),
        extra: JSONObject = JSONObject()
    ) -> JSONObject {
        var o = plugins[index]
        o["cniVersion"] = .string(cniVersion.rawValue)
        o["name"] = .string(name)
        if let prevResult { o["prevResult"] = prevResult }
        var rc = JSONObject()
        if case .object(let caps)? = o["capabilities"] {
            for (cap, enabled) in caps where enabled == .bool(true) {
                if let v = capabilityArgs[cap] { rc[cap] = v }
            }
        }
        if !rc.isEmpty { o["runtimeConfig"] = .object(rc) }
        for (k, v) in extra { o[k] = v }
        return o
    }

    /// The `type` of plugin `index`.
    public func type(_ index: Int) -> String { plugins[index]["type"]?.stringValue ?? "" }
}

/// One attachment as a runtime drives it.
public struct RuntimeAttachment: Sendable {
    public var containerID: String
    public var netns: String
    public var ifName: String
    public var cniArgs: [(key: String, value: String)]
    /// Capability arguments (`portMappings`, `ips`, `mac`, ...), the runtime's side of runtimeConfig.
    public var capabilityArgs: JSONObject

    /// The attachment of `containerID` in `netns` on `ifName`, with CNI_ARGS and capability arguments.
    public init(
        containerID: String, netns: String, ifName: String = "eth0", cniArgs: [(key: String, value: String)] = [],
        capabilityArgs: JSONObject = JSONObject()
    ) {
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.cniArgs = cniArgs
        self.capabilityArgs = capabilityArgs
    }
}

/// A CNI runtime, as libcni: runs a configuration list's plugins in order for ADD (passing each
/// result on as `prevResult`), in reverse for DEL, caches results, and drives CHECK, GC and STATUS.
public struct Runtime: Sendable {
    /// Directories searched for plugin binaries (CNI_PATH).
    public var pluginPath: [String]
    /// Root of the result cache (`<cacheDir>/results`), `/var/lib/cni` by default.
    public var cacheDir: String
    /// Environment passed to plugins in addition to the CNI_* variables.
    public var baseEnvironment: [String: String]
    /// Where plugins' standard error and runtime notes go.
    public var log: @Sendable (String) -> Void

    /// A runtime finding plugins on `pluginPath`, caching results under `cacheDir`.
    public init(
        pluginPath: [String], cacheDir: String = "/var/lib/cni", baseEnvironment: [String: String] = [:],
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.pluginPath = pluginPath
        self.cacheDir = cacheDir
        self.baseEnvironment = baseEnvironment.filter { !$0.key.hasPrefix("CNI_") }
        self.log = log
    }

    /// A failure of one plugin of a list, with the plugin and the verb.
    public struct PluginFailure: Error, Sendable, CustomStringConvertible {
        public let plugin: String
        public let command: CNICommand
        public let error: CNIError
        public var description: String { "plugin \(plugin) \(command.rawValue): \(error)" }
    }

    // MARK: Commands

    /// ADD: every plugin in order. The final result (in the list's version) is cached and returned.
    /// When a plugin fails, DEL runs over the list (no prevResult) so nothing is left half-made,
    /// and the ADD failure is thrown.
    public func add(_ list: NetworkConfigList, _ a: RuntimeAttachment) throws -> JSONValue {
        var prev: JSONValue? = nil
        for i in list.plugins.indices {
            do {
                let conf = list.pluginConfig(i, prevResult: prev, capabilityArgs: a.capabilityArgs)
                let out = try invoke(list.type(i), .add, conf, a)
                let value: JSONValue
                do {
                    value = try JSONValue.parse(out)
                } catch {
                    throw PluginFailure(
                        plugin: list.type(i), command: .add,
                        error: CNIError(.decodingFailure, "failed to decode the result", details: error.description))
                }
                do {
                    prev = try CNIResult.convert(value, to: list.cniVersion)
                } catch {
                    throw PluginFailure(plugin: list.type(i), command: .add, error: error)
                }
            } catch {
                rollback(list, a)
                throw error
            }
        }
        let result = prev ?? .object(["cniVersion": .string(list.cniVersion.rawValue)])
        try ResultCache(root: cacheDir).store(list, a, result: result)
        return result
    }

    private func rollback(_ list: NetworkConfigList, _ a: RuntimeAttachment) {
        for i in list.plugins.indices.reversed() {
            _ = try? invoke(list.type(i), .del, list.pluginConfig(i, capabilityArgs: a.capabilityArgs), a)
        }
    }

    /// DEL: every plugin in reverse with the cached result as prevResult (0.4.0 and later); stops at
    /// the first failure (the cache is kept then) and removes the cache entry on success.
    public func del(_ list: NetworkConfigList, _ a: RuntimeAttachment) throws {
        let cache = ResultCache(root: cacheDir)
        var prev: JSONValue? = nil
        if list.cniVersion >= .v0_4_0 {
            if let entry = try? cache.load(network: list.name, a.containerID, a.ifName) {
                prev = try? CNIResult.convert(entry.result, to: list.cniVersion)
            }
        }
        for i in list.plugins.indices.reversed() {
            _ = try invoke(list.type(i), .del, list.pluginConfig(i, prevResult: prev, capabilityArgs: a.capabilityArgs), a)
        }
        try? cache.remove(network: list.name, a.containerID, a.ifName)
    }

    /// CHECK: needs 0.4.0 and a cached result; every plugin in order with it as prevResult.
    public func check(_ list: NetworkConfigList, _ a: RuntimeAttachment) throws {
        if list.cniVersion < .v0_4_0 {
            throw CNIError(
                .incompatibleVersion, "configuration version \"\(list.cniVersion)\" does not support the CHECK command")
        }
        if list.disableCheck { return }
        guard let entry = try? ResultCache(root: cacheDir).load(network: list.name, a.containerID, a.ifName) else {
            throw CNIError(
                .unknownContainer, "no cached result for \(a.containerID)/\(a.ifName) on network \"\(list.name)\"",
                details: "CHECK needs the result of an earlier ADD")
        }
        let prev = try CNIResult.convert(entry.result, to: list.cniVersion)
        for i in list.plugins.indices {
            _ = try invoke(list.type(i), .check, list.pluginConfig(i, prevResult: prev, capabilityArgs: a.capabilityArgs), a)
        }
    }

    /// GC: DEL every cached attachment of the network not in `valid` (or, when `valid` is nil,
    /// whose network namespace is gone), then (1.1.0) send GC to every plugin with the
    /// attachments that remain valid. Errors are collected, not fatal; all are thrown at the end.
    public func gc(_ list: NetworkConfigList, valid: [Attachment]?) throws {
        if list.disableGC { return }
        let cache = ResultCache(root: cacheDir)
        var failures: [any Error] = []
        var keep: [Attachment] = []
        for entry in cache.entries(network: list.name) {
            let att = Attachment(containerID: entry.containerID, ifName: entry.ifName)
            let stale = valid.map { !$0.contains(att) } ?? (!entry.netns.isEmpty && !System.exists(entry.netns))
            if !stale {
                keep.append(att)
                continue
            }
            let ra = RuntimeAttachment(
                containerID: entry.containerID, netns: System.exists(entry.netns) ? entry.netns : "",
                ifName: entry.ifName, cniArgs: entry.cniArgs, capabilityArgs: entry.capabilityArgs)
            do { try del(list, ra) } catch { failures.append(error) }
        }
        cache.removeAbandonedTemporaries(network: list.name)
        if list.cniVersion >= .v1_1_0 {
            let attachments = JSONValue.array(
                (valid ?? keep).map { .object(["containerID": .string($0.containerID), "ifname": .string($0.ifName)]) })
            for i in list.plugins.indices {
                let conf = list.pluginConfig(
                    i, extra: ["cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments])
                do {
                    _ = try invoke(list.type(i), .gc, conf, RuntimeAttachment(containerID: "", netns: "", ifName: ""))
                } catch { failures.append(error) }
            }
        }
        if let first = failures.first {
            if failures.count == 1 { throw first }
            // Not a bug of ours: the first failure's own code (a plugin's CNI error, a cache error).
            throw CNIError(
                ((first as? PluginFailure)?.error ?? CNIError.from(first)).code, "GC of network \"\(list.name)\" failed in \(failures.count) places",
                details: failures.map { "\($0)" }.joined(separator: "; "))
        }
    }

    /// STATUS (1.1.0): every plugin in order; the first failure is thrown. Nothing for older lists.
    public func status(_ list: NetworkConfigList) throws {
        guard list.cniVersion >= .v1_1_0 else { return }
        for i in list.plugins.indices {
            _ = try invoke(list.type(i), .status, list.pluginConfig(i), RuntimeAttachment(containerID: "", netns: "", ifName: ""))
        }
    }

    /// VERSION of a plugin binary: its `supportedVersions`.
    public func versions(of type: String) throws -> [String] {
        let out = try invoke(type, .version, ["cniVersion": .string(CNIVersion.latest.rawValue)], RuntimeAttachment(containerID: "", netns: "", ifName: ""))
        let v = try JSONValue.parse(out)
        return (v.objectValue?["supportedVersions"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    // MARK: Exec

    /// Runs one plugin as a runtime does; returns its stdout or throws ``PluginFailure``.
    public func invoke(_ type: String, _ command: CNICommand, _ config: JSONObject, _ a: RuntimeAttachment) throws
        -> [UInt8]
    {
        let path: String
        do {
            path = try Delegate.find(type, in: pluginPath)
        } catch {
            throw PluginFailure(plugin: type, command: command, error: error)
        }
        var env = baseEnvironment
        env["CNI_COMMAND"] = command.rawValue
        env["CNI_PATH"] = pluginPath.joined(separator: ":")
        switch command {
        case .add, .del, .check:
            env["CNI_CONTAINERID"] = a.containerID
            env["CNI_NETNS"] = a.netns
            env["CNI_IFNAME"] = a.ifName
            if !a.cniArgs.isEmpty { env["CNI_ARGS"] = a.cniArgs.map { "\($0.key)=\($0.value)" }.joined(separator: ";") }
        case .gc, .status, .version:
            break
        }
        let out: ProcessOutput
        do {
            out = try Subprocess.run(path, environment: env, stdin: Array(JSONValue.object(config).serialized().utf8))
        } catch {
            throw PluginFailure(
                plugin: type, command: command, error: CNIError(.delegateFailed, "failed to run \(path)", details: error.description))
        }
        if !out.stderr.isEmpty { log(String(decoding: out.stderr, as: UTF8.self)) }
        if out.succeeded { return out.stdout }
        if let v = try? JSONValue.parse(out.stdout), let e = CNIError(json: v) {
            throw PluginFailure(plugin: type, command: command, error: e)
        }
        throw PluginFailure(
            plugin: type, command: command,
            error: CNIError(
                .delegateFailed, "plugin failed with \(out.termination)",
                details: String(decoding: (out.stderr.isEmpty ? out.stdout : out.stderr).suffix(512), as: UTF8.self)))
    }
}
