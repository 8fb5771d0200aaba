import Base
import CNI
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `flannel` meta plugin, as flannel-io/cni-plugin behaves: the node's subnet file (written
/// by flanneld, or by cni-overlayd in its place) and the user's `delegate` keys make the
/// configuration of the plugin that does the work (bridge unless `delegate.type` says otherwise,
/// with host-local in this node's subnet and routes to the cluster's networks). That
/// configuration is kept under `dataDir` by container ID, so DEL and CHECK use what ADD used,
/// also after the subnet file changed or went.
public struct FlannelPlugin: CNIPlugin {
    public static let type = "flannel"
    public static let summary = "flannel plugin (swift-cni): the node's flannel subnet, delegated to bridge"
    /// flannel's `ipam` is a base: its type defaults to host-local.
    public static let ipamNeedsType = false

    /// The plugin; its state is the delegates' configurations under `dataDir`.
    public init() {}

    /// Decodes and validates the configuration with no file read.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try FlannelConfig(config) }

    /// Builds the delegate's configuration from the subnet file, keeps it, and delegates ADD; a
    /// failed ADD forgets it again (the delegate undid its own part).
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try FlannelConfig(ctx.config)
        let env = try SubnetEnv.read(conf.subnetFile)
        let delegate = Flannel.delegateConfig(ctx, conf, env)
        let path = try Flannel.store(delegate, conf, containerID: ctx.args.containerID)
        do {
            return try Flannel.delegateAdd(ctx, delegate)
        } catch {
            try? System.removeFile(path)
            throw error
        }
    }

    /// Delegates DEL with the configuration ADD kept, then forgets it. Without one (never added,
    /// already deleted, forgotten by GC) DEL is delegated with today's configuration when the
    /// subnet file is there (the delegate's DEL of what is not there is success), else there is
    /// nothing to do.
    public func del(_ ctx: PluginContext) throws {
        let conf = try FlannelConfig(ctx.config)
        let path = Flannel.path(conf, ctx.args.containerID)
        guard let kept = Flannel.kept(path) ?? (try? SubnetEnv.read(conf.subnetFile)).map({ Flannel.delegateConfig(ctx, conf, $0) })
        else { return }
        guard let type = kept["type"]?.stringValue else {
            ctx.log("flannel: \(path) names no delegate type; forgetting it")
            try? System.removeFile(path)
            return
        }
        _ = try Delegate.exec(type, .del, ctx, stdin: Flannel.bytes(kept))
        try? System.removeFile(path)
    }

    /// Delegates CHECK (with prevResult) with the configuration ADD kept; none kept fails.
    public func check(_ ctx: PluginContext) throws {
        let conf = try FlannelConfig(ctx.config)
        let prev = try ctx.checkedPrevResult(Self.type)
        let path = Flannel.path(conf, ctx.args.containerID)
        guard var kept = Flannel.kept(path), let type = kept["type"]?.stringValue else {
            throw CNIError(.checkFailed, "flannel keeps no delegate configuration for \(ctx.args.containerID) in \(conf.dataDir)")
        }
        kept["prevResult"] = try prev.json(version: CNIVersion(rawValue: kept["cniVersion"]?.stringValue ?? "") ?? ctx.config.cniVersion)
        _ = try Delegate.exec(type, .check, ctx, stdin: Flannel.bytes(kept))
    }

    /// Forgets the kept configurations of containers that are not among the valid attachments,
    /// then passes GC (with the valid attachments) to the delegate, which releases their
    /// addresses and rules.
    public func gc(_ ctx: PluginContext) throws {
        let conf = try FlannelConfig(ctx.config)
        let valid = ctx.config.validAttachments ?? []
        let ids = Set(valid.map(\.containerID))
        var failures = StepFailures()
        var sample: JSONObject?
        for name in (try? System.listDirectory(conf.dataDir)) ?? [] where !name.hasPrefix(".") {
            let path = conf.dataDir + "/" + name
            if sample == nil { sample = Flannel.kept(path) }
            if !ids.contains(name) { failures.run("forget \(path)", code: .ioFailure) { try System.removeFile(path) } }
        }
        // The delegate's GC: with today's configuration, else one that was kept.
        let delegate = (try? SubnetEnv.read(conf.subnetFile)).map { Flannel.delegateConfig(ctx, conf, $0) } ?? sample
        if var d = delegate, let type = d["type"]?.stringValue {
            d["cni.dev/valid-attachments"] = .array(valid.map { .object(["containerID": .string($0.containerID), "ifname": .string($0.ifName)]) })
            failures.run("\(type) GC", code: .delegateFailed) {
                _ = try Delegate.exec(type, .gc, ctx, stdin: Flannel.bytes(d))
            }
        }
        try failures.throwIfAny("flannel GC was incomplete")
    }

    /// 50 while the subnet file is missing or incomplete; then the delegate's STATUS.
    public func status(_ ctx: PluginContext) throws {
        let conf = try FlannelConfig(ctx.config)
        let env: SubnetEnv
        do { env = try SubnetEnv.read(conf.subnetFile) } catch {
            throw CNIError(.notAvailable, "flannel: \(error.msg)", details: error.details)
        }
        let delegate = Flannel.delegateConfig(ctx, conf, env)
        guard let type = delegate["type"]?.stringValue else { return }
        _ = try Delegate.exec(type, .status, ctx, stdin: Flannel.bytes(delegate))
    }
}

/// The steps of the flannel plugin.
enum Flannel {
    /// The delegate's configuration, as flannel makes it: the user's keys, then `name`, `type`
    /// (bridge), `ipMasq` (when the agent does not masquerade) with the cluster's networks
    /// excluded, `mtu`, `isGateway` (bridge), `cniVersion`, `runtimeConfig` and `args` passed on,
    /// and the IPAM.
    static func delegateConfig(_ ctx: PluginContext, _ conf: FlannelConfig, _ env: SubnetEnv) -> JSONObject {
        var d = conf.delegate
        if let rt = ctx.config.raw["runtimeConfig"] { d["runtimeConfig"] = rt }
        if d["args"] == nil, let a = ctx.config.raw["args"] { d["args"] = a }
        d["name"] = .string(ctx.config.name)
        if d["type"] == nil { d["type"] = .string("bridge") }
        if d["ipMasq"] == nil { d["ipMasq"] = .bool(!(env.ipMasq ?? false)) }
        if d["mtu"] == nil, let mtu = env.mtu { d["mtu"] = .int(mtu) }
        if d["type"]?.stringValue == "bridge" && d["isGateway"] == nil { d["isGateway"] = .bool(true) }
        // A bridge that masquerades leaves the cluster's networks alone: pods keep their own
        // source address between nodes, as with flanneld's masquerade (the reference bridge
        // would masquerade that too; it ignores the key).
        if d["type"]?.stringValue == "bridge", d["ipMasq"] == .bool(true), d["ipMasqExclude"] == nil {
            d["ipMasqExclude"] = .array((env.networks + env.ipv6Networks).map { .string($0.description) })
        }
        if let v = ctx.config.raw["cniVersion"] { d["cniVersion"] = v }
        d["ipam"] = .object(ipam(conf, env))
        return d
    }

    /// host-local (unless `ipam.type` says otherwise) in this node's subnets, with routes to the
    /// cluster's networks after the user's own.
    static func ipam(_ conf: FlannelConfig, _ env: SubnetEnv) -> JSONObject {
        var i = conf.ipam
        if i["type"] == nil { i["type"] = .string("host-local") }
        let subnets = [env.subnet, env.ipv6Subnet].compactMap { $0 }
        i["ranges"] = .array(subnets.map { .array([.object(["subnet": .string($0.description)])]) })
        var routes = i["routes"]?.arrayValue ?? []
        routes += (env.networks + env.ipv6Networks).map { .object(["dst": .string($0.description)]) }
        i["routes"] = .array(routes)
        return i
    }

    /// A delegate's configuration as its stdin (and as the kept file).
    static func bytes(_ delegate: JSONObject) -> [UInt8] { Array(JSONValue.object(delegate).serialized().utf8) }

    /// Where the delegate's configuration of `containerID` is kept (flannel's layout).
    static func path(_ conf: FlannelConfig, _ containerID: String) -> String { conf.dataDir + "/" + containerID }

    /// Keeps `delegate` for the container (0600 in a 0700 directory, atomically, synced).
    static func store(_ delegate: JSONObject, _ conf: FlannelConfig, containerID: String) throws(CNIError) -> String {
        let path = path(conf, containerID)
        do {
            try System.makeDirectories(conf.dataDir, mode: 0o700)
            try System.writeFileAtomically(path, Flannel.bytes(delegate), mode: 0o600, durable: true)
        } catch {
            throw CNIError(.ioFailure, "cannot keep the delegate's configuration in \(path)", details: error.description)
        }
        return path
    }

    /// The configuration kept at `path`; nil when there is none or it is not a JSON object.
    static func kept(_ path: String) -> JSONObject? {
        guard let bytes = try? System.readFile(path, limit: 1 << 20) else { return nil }
        return (try? JSONValue.parse(bytes))?.objectValue
    }

    /// Delegates ADD with `delegate` on stdin; the delegate's result.
    static func delegateAdd(_ ctx: PluginContext, _ delegate: JSONObject) throws -> CNIResult {
        let type = delegate["type"]?.stringValue ?? "bridge"
        let out = try Delegate.exec(type, .add, ctx, stdin: Flannel.bytes(delegate))
        do {
            return try CNIResult(json: JSONValue.parse(out), defaultVersion: ctx.config.cniVersion, path: "\(type) result")
        } catch {
            throw CNIError(.decodingFailure, "cannot read the \(type) plugin's result", details: "\(error)")
        }
    }
}
