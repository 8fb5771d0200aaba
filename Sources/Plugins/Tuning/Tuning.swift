import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `tuning` chained plugin: network sysctls of the container's namespace and attributes of
/// its interface (MAC, MTU, promiscuous, all-multicast, transmit queue length). What it changes on
/// the interface is saved first (`<dataDir>/<containerID>-<ifname>.json`, the reference's file)
/// and put back by DEL; sysctls live and die with the namespace.
public struct TuningPlugin: CNIPlugin {
    public static let type = "tuning"
    public static let summary = "tuning plugin (swift-cni): container sysctls and interface attributes"

    /// The plugin; it saves what it changed beside the attachment to restore it at DEL.
    public init() {}

    /// Decodes and validates the configuration (sysctl names, MAC, MTU) with nothing changed.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try TuningConfig(config, args: args) }

    /// Applies the sysctls and link settings in the container, saving the old values; returns prevResult.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try TuningConfig(ctx.config, args: ctx.args)
        var result = try ctx.chainedPrevResult("tuning")
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let nl: NetlinkSocket
        let link: Link
        do {
            nl = try container.netlink()
            guard let l = try nl.link(named: ctx.args.ifName) else {
                throw CNIError(.invalidNetworkConfig, "no interface \"\(ctx.args.ifName)\" in \(ctx.args.netns) to tune")
            }
            link = l
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "cannot look at \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        let rollback = Rollback()
        defer { rollback.runIfArmed() }

        // Sysctls, in the container's namespace (a /proc/sys/net file is the namespace's of the
        // thread that opens it).
        do {
            try container.perform {
                for s in conf.sysctls {
                    do { try Sysctl.set(s.path, s.value) } catch {
                        throw CNIError(.invalidNetworkConfig, "cannot set sysctl \(s.key) = \(s.value)", details: "\(error)")
                    }
                }
            }
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "cannot enter \(ctx.args.netns)", details: "\(error)")
        }

        if conf.changesLink {
            let saved = LinkAttributes(link, conf)
            let path = LinkAttributes.path(conf, ctx.args)
            do {
                try System.makeDirectories(conf.dataDir, mode: 0o700)
                try System.writeFileAtomically(path, Array(saved.json(ctx.args, network: ctx.config.name).serialized().utf8))
            } catch {
                throw CNIError(.stateStoreFailure, "cannot save the attributes of \(ctx.args.ifName)", details: "\(error)")
            }
            rollback.add("put \(ctx.args.ifName) back") {
                try? saved.apply(nl, link.index)
                try? System.removeFile(path)
            }
            do {
                try LinkAttributes(
                    mac: conf.mac.map { MACAddress(bytes: $0).description }, mtu: conf.mtu, promisc: conf.promisc, allmulti: conf.allmulti, txQLen: conf.txQLen
                )
                .apply(nl, link.index)
            } catch {
                throw CNIError(.kernelOperationFailed, "cannot tune \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
            }
        }
        if let m = conf.mac {
            for i in result.interfaces.indices where result.interfaces[i].name == ctx.args.ifName && result.interfaces[i].sandbox != nil {
                result.interfaces[i].mac = MACAddress(bytes: m).description
            }
        }
        rollback.disarm()
        return result
    }

    /// Puts back what ADD changed on the interface (if the namespace and the interface are still
    /// there) and forgets it. Nothing saved is success.
    public func del(_ ctx: PluginContext) throws {
        let conf = try TuningConfig(ctx.config, args: ctx.args, forAdd: false)
        let path = LinkAttributes.path(conf, ctx.args)
        guard System.exists(path) else { return }
        if !ctx.args.netns.isEmpty, let bytes = try? System.readFile(path, limit: 65536), let v = try? JSONValue.parse(bytes),
            let saved = LinkAttributes(json: v), let ns = try? NetworkNamespace(path: ctx.args.netns)
        {
            do {
                let nl = try ns.netlink()
                if let link = try nl.link(named: ctx.args.ifName) { try saved.apply(nl, link.index) }
            } catch {
                throw CNIError(.kernelOperationFailed, "cannot put back \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
            }
        }
        do { try System.removeFile(path) } catch {
            throw CNIError(.stateStoreFailure, "cannot remove \(path)", details: "\(error)")
        }
    }

    /// The sysctls have their values and the interface its attributes.
    public func check(_ ctx: PluginContext) throws {
        let conf = try TuningConfig(ctx.config, args: ctx.args, forAdd: false)
        _ = try ctx.checkedPrevResult("tuning")
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let wrong: String? = try container.perform {
            for s in conf.sysctls {
                let got = (try? Sysctl.get(s.path)) ?? "(unreadable)"
                if got != s.value { return "sysctl \(s.key) is \(got), the configuration says \(s.value)" }
            }
            guard let l = try NetlinkSocket().link(named: ctx.args.ifName) else { return "no interface \(ctx.args.ifName)" }
            if let m = conf.mtu, l.mtu != m { return "\(ctx.args.ifName) has MTU \(l.mtu), the configuration says \(m)" }
            if let m = conf.mac, l.mac.bytes != m { return "\(ctx.args.ifName) has MAC \(l.mac), the configuration says \(MACAddress(bytes: m))" }
            if let p = conf.promisc, l.isPromiscuous != p { return "\(ctx.args.ifName) promiscuous is \(l.isPromiscuous)" }
            if let a = conf.allmulti, l.isAllMulticast != a { return "\(ctx.args.ifName) all-multicast is \(l.isAllMulticast)" }
            if let q = conf.txQLen, l.txQueueLength != q { return "\(ctx.args.ifName) has txqueuelen \(l.txQueueLength), the configuration says \(q)" }
            return nil
        }
        if let wrong { throw CNIError(.checkFailed, wrong) }
    }

    /// Forgets what was saved for attachments that are not in the valid list.
    public func gc(_ ctx: PluginContext) throws {
        let conf = try TuningConfig(ctx.config, args: ctx.args, forAdd: false)
        let valid = Set((ctx.config.validAttachments ?? []).map { "\($0.containerID)-\($0.ifName).json" })
        guard let names = try? System.listDirectory(conf.dataDir) else { return }
        for n in names where n.hasSuffix(".json") && !valid.contains(n) {
            // Only files that say whose they are (ours); the network must match too.
            guard let bytes = try? System.readFile(conf.dataDir + "/" + n, limit: 65536), let v = try? JSONValue.parse(bytes),
                case .object(let o) = v, o["network"]?.stringValue == ctx.config.name
            else { continue }
            unlink(conf.dataDir + "/" + n)
        }
    }

    /// Always ready.
    public func status(_ ctx: PluginContext) throws {}
}

/// Link attributes to set (each only when given): what ADD sets, and what it saved to put back.
struct LinkAttributes {
    var mac: String?
    var mtu: Int?
    var promisc: Bool?
    var allmulti: Bool?
    var txQLen: Int?

    init(mac: String?, mtu: Int?, promisc: Bool?, allmulti: Bool?, txQLen: Int?) {
        (self.mac, self.mtu, self.promisc, self.allmulti, self.txQLen) = (mac, mtu, promisc, allmulti, txQLen)
    }

    static func path(_ conf: TuningConfig, _ args: CommandArgs) -> String { "\(conf.dataDir)/\(args.containerID)-\(args.ifName).json" }

    init(_ link: Link, _ conf: TuningConfig) {
        if conf.mac != nil { mac = link.mac.description }
        if conf.mtu != nil { mtu = link.mtu }
        if conf.promisc != nil { promisc = link.isPromiscuous }
        if conf.allmulti != nil { allmulti = link.isAllMulticast }
        if conf.txQLen != nil { txQLen = link.txQueueLength }
    }

    init?(json: JSONValue) {
        guard case .object(let o) = json else { return nil }
        mac = o["mac"]?.stringValue
        if case .number(let n)? = o["mtu"] { mtu = n.intValue }
        if case .bool(let b)? = o["promisc"] { promisc = b }
        if case .bool(let b)? = o["allmulti"] { allmulti = b }
        if case .number(let n)? = o["txQLen"] { txQLen = n.intValue }
    }

    func json(_ args: CommandArgs, network: String) -> JSONValue {
        var o = JSONObject()
        if let mac { o["mac"] = .string(mac) }
        if let mtu { o["mtu"] = .int(mtu) }
        if let promisc { o["promisc"] = .bool(promisc) }
        if let allmulti { o["allmulti"] = .bool(allmulti) }
        if let txQLen { o["txQLen"] = .int(txQLen) }
        o["containerID"] = .string(args.containerID)
        o["ifName"] = .string(args.ifName)
        o["network"] = .string(network)
        return .object(o)
    }

    func apply(_ nl: NetlinkSocket, _ index: Int32) throws {
        if let mtu { try nl.setMTU(index, mtu) }
        if let mac, let m = MACAddress(mac)?.bytes { try nl.setMACKeepingConfiguration(index, m) }
        if let promisc { try nl.setPromiscuous(index, promisc) }
        if let allmulti { try nl.setAllMulticast(index, allmulti) }
        if let txQLen { try nl.setTxQueueLength(index, txQLen) }
    }
}
