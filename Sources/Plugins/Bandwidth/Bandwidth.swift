import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `bandwidth` chained plugin: limits a container's traffic with token bucket filters, as
/// the reference plugin lays them out. Towards the container: a tbf as the root qdisc of the
/// host end of its veth. From the container: the host end's ingress redirected (u32 + mirred) to
/// an IFB device named `bwp<hash of network and container>`, whose root qdisc is a tbf. All of it
/// over rtnetlink; the IFB carries an alias naming its network and container, which GC reads.
public struct BandwidthPlugin: CNIPlugin {
    public static let type = "bandwidth"
    public static let summary = "bandwidth plugin (swift-cni): a container's traffic limited with tc token buckets"

    /// The plugin; its state is the qdiscs and the IFB device in the kernel.
    public init() {}

    /// Decodes and validates the limits with no kernel call.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try BandwidthConfig(config) }

    /// Shapes the container's host veth as configured and returns prevResult with the IFB added;
    /// nothing to shape returns prevResult as it is. A failure undoes what it did.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try BandwidthConfig(ctx.config)
        var result = try ctx.chainedPrevResult(Self.type)
        if conf.isEmpty { return result }
        let host = try NetlinkSocket()
        let veth = try Shaping.hostVeth(ctx, result, host: host)
        let rollback = Rollback()
        defer {
            rollback.runIfArmed()
            if !rollback.failures.isEmpty { ctx.log("bandwidth: rollback: \(rollback.failures.joined(separator: "; "))") }
        }
        if let ingress = conf.ingress {
            try Shaping.kernel("shape traffic to the container on \(veth.name)") { () throws(NetlinkError) in
                try host.setRootTokenBucket(veth.index, ingress)
            }
            rollback.add("delete the tbf of \(veth.name)") { try host.deleteQdisc(veth.index, root: true) }
        }
        if let egress = conf.egress {
            let ifb = try Shaping.shapeEgress(ctx, egress, veth: veth, host: host, rollback: rollback)
            result.interfaces.append(.init(name: ifb.name, mac: ifb.mac.description))
        }
        _ = try result.json(version: ctx.config.cniVersion)
        rollback.disarm()
        return result
    }

    /// Deletes the IFB and, when the container's namespace is still there, the qdiscs of its host
    /// veth; what is not there is success (also with CNI_NETNS empty).
    public func del(_ ctx: PluginContext) throws {
        _ = try BandwidthConfig(ctx.config, forAdd: false)
        let host = try NetlinkSocket()
        let name = Shaping.ifbName(network: ctx.config.name, containerID: ctx.args.containerID)
        var failures = StepFailures()
        let ifb = try? host.link(named: name)
        if !ctx.args.netns.isEmpty,
            let veth = try? Shaping.hostVeth(ctx, ctx.config.prevResult ?? CNIResult(), host: host, requireInResult: false)
        {
            failures.run("remove the qdiscs of \(veth.name)", code: .kernelOperationFailed) {
                if try host.qdiscs(veth.index).contains(where: { $0.isRoot && $0.kind == "tbf" }) {
                    try host.deleteQdisc(veth.index, root: true)
                }
                if let ifb, try host.ingressRedirects(veth.index).contains(where: { $0.target == ifb.index }) {
                    try host.deleteQdisc(veth.index, root: false)
                }
            }
        }
        if let ifb {
            failures.run("delete \(name)", code: .kernelOperationFailed) {
                try Shaping.deleteLink(host, ifb.index)
            }
        }
        try failures.throwIfAny("bandwidth DEL was incomplete")
    }

    /// The host veth and the IFB carry the configured buckets and the redirect between them.
    public func check(_ ctx: PluginContext) throws {
        let conf = try BandwidthConfig(ctx.config)
        let prev = try ctx.checkedPrevResult(Self.type)
        if conf.isEmpty { return }
        let host = try NetlinkSocket()
        let veth = try Shaping.hostVeth(ctx, prev, host: host)
        if let ingress = conf.ingress { try Shaping.verify(host, veth, ingress, "traffic to the container") }
        if let egress = conf.egress {
            let name = Shaping.ifbName(network: ctx.config.name, containerID: ctx.args.containerID)
            guard let ifb = try host.link(named: name), ifb.kind == "ifb" else {
                throw CNIError(.checkFailed, "the IFB \(name) of the container's egress is missing")
            }
            if !ifb.isUp { throw CNIError(.checkFailed, "the IFB \(name) is down") }
            try Shaping.verify(host, ifb, egress, "traffic from the container")
            guard try host.ingressRedirects(veth.index).contains(where: { $0.target == ifb.index }) else {
                throw CNIError(.checkFailed, "\(veth.name)'s ingress is not redirected to \(name)")
            }
        }
    }

    /// Deletes this network's IFBs (by their alias) whose container is not among the valid
    /// attachments (absent: none is valid).
    public func gc(_ ctx: PluginContext) throws {
        let host = try NetlinkSocket()
        let valid = Set((ctx.config.validAttachments ?? []).map(\.containerID))
        let prefix = Shaping.aliasPrefix(network: ctx.config.name)
        var failures = StepFailures()
        for l in try host.links() where l.kind == "ifb" {
            guard let alias = l.alias, alias.hasPrefix(prefix) else { continue }
            let container = String(alias.dropFirst(prefix.count))
            if valid.contains(container) { continue }
            failures.run("delete \(l.name) of container \(container)", code: .kernelOperationFailed) {
                try Shaping.deleteLink(host, l.index)
            }
        }
        try failures.throwIfAny("bandwidth GC was incomplete")
    }

    /// Ready when rtnetlink answers.
    public func status(_ ctx: PluginContext) throws {
        do { _ = try NetlinkSocket().link(index: 1) } catch {
            throw CNIError(.notAvailable, "bandwidth: rtnetlink does not answer", details: error.description)
        }
    }
}

/// The steps of the bandwidth plugin.
enum Shaping {
    /// The IFB of an attachment, as the reference names it: `bwp` + the first 12 hexadecimal
    /// digits of SHA-512(network + container ID).
    static func ifbName(network: String, containerID: String) -> String {
        let digest = SHA512.hash(Array((network + containerID).utf8))
        let hex = digest.map { b in String(b >> 4, radix: 16) + String(b & 15, radix: 16) }.joined()
        return "bwp" + hex.prefix(12)
    }

    /// The alias of this network's IFBs, followed by the container ID.
    static func aliasPrefix(network: String) -> String { "swift-cni bandwidth network=\(network) container=" }

    /// The host end of CNI_IFNAME's veth, as the reference finds it: the peer of the container's
    /// interface, which must be a host interface of prevResult (unless `requireInResult` is false).
    static func hostVeth(_ ctx: PluginContext, _ prev: CNIResult, host: NetlinkSocket, requireInResult: Bool = true) throws -> Link {
        let ifName = ctx.args.ifName
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let inside = try container.netlink()
        guard let l = try inside.link(named: ifName) else {
            throw CNIError(.invalidNetworkConfig, "container interface \"\(ifName)\" not found in \(ctx.args.netns)")
        }
        guard l.kind == "veth", let peer = l.parentIndex, peer > 0, let hostEnd = try host.link(index: peer) else {
            throw CNIError(
                .invalidNetworkConfig, "container interface \"\(ifName)\" has no veth peer on the host",
                details: "it is a \(l.kind ?? "plain link"); bandwidth shapes the host end of a veth (bridge, ptp)")
        }
        if requireInResult && !prev.interfaces.contains(where: { ($0.sandbox ?? "").isEmpty && $0.name == hostEnd.name }) {
            throw CNIError(
                .invalidNetworkConfig, "the veth peer \(hostEnd.name) of \"\(ifName)\" is not a host interface of prevResult",
                details: "prevResult lists \(prev.interfaces.map(\.name).joined(separator: ", "))")
        }
        return hostEnd
    }

    /// From the container: the veth's ingress qdisc (one already there is another tool's: 107),
    /// an IFB (alias, MTU of the veth, up) with the bucket as its root qdisc, the veth's ingress
    /// redirected to it; each step's undo with `rollback`.
    static func shapeEgress(_ ctx: PluginContext, _ bucket: TokenBucket, veth: Link, host: NetlinkSocket, rollback: Rollback) throws -> Link {
        let name = ifbName(network: ctx.config.name, containerID: ctx.args.containerID)
        do {
            try host.addIngressQdisc(veth.index)
        } catch  where error.errno == EEXIST {
            throw CNIError(
                .conflict, "\(veth.name) already has an ingress qdisc",
                details: "another tool shapes or filters the container's traffic; remove it (tc qdisc del dev \(veth.name) ingress)")
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to add the ingress qdisc of \(veth.name)", details: error.description)
        }
        rollback.add("delete the ingress qdisc of \(veth.name)") { try host.deleteQdisc(veth.index, root: false) }
        return try kernel("shape traffic from the container through \(name)") { () throws(NetlinkError) -> Link in
            let alias = aliasPrefix(network: ctx.config.name) + ctx.args.containerID
            let ifb: Link
            do throws(NetlinkError) {
                ifb = try host.createIFB(name: name, mtu: veth.mtu, alias: alias)
            } catch {
                if error.errno != EEXIST, let made = try? host.link(named: name) { try? host.deleteLink(made.index) }
                throw error
            }
            rollback.add("delete \(name)") { try host.deleteLink(ifb.index) }
            try host.setRootTokenBucket(ifb.index, bucket)
            try host.redirectIngress(veth.index, to: ifb.index)
            return ifb
        }
    }

    /// Code 108 (a CHECK failure) unless `link`'s root qdisc is a tbf with `bucket`.
    static func verify(_ host: NetlinkSocket, _ link: Link, _ bucket: TokenBucket, _ what: String) throws {
        guard let q = try host.qdiscs(link.index).first(where: \.isRoot), q.kind == "tbf", let have = q.tokenBucket else {
            throw CNIError(.checkFailed, "\(link.name) has no token bucket for \(what)")
        }
        if !have.sameAs(bucket) {
            throw CNIError(.checkFailed, "\(link.name) shapes \(what) at \(have), the configuration says \(bucket)")
        }
    }

    /// Deletes link `index`; one that is gone already is success.
    static func deleteLink(_ host: NetlinkSocket, _ index: Int32) throws(NetlinkError) {
        do { try host.deleteLink(index) } catch  where error.errno == ENODEV {}
    }

    /// `body`, its netlink failure as code 103 saying what it was for.
    static func kernel<T>(_ what: String, _ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw CNIError(.kernelOperationFailed, "failed to \(what)", details: error.description) }
    }
}
