import Base
import CNI
import Netlink
import PluginKit

/// The `loopback` plugin: brings up `lo` in the container. containerd's CRI (go-cni) runs it for
/// every pod, before the pod's network; the interface is always `lo`, whatever CNI_IFNAME says.
public struct LoopbackPlugin: CNIPlugin {
    public static let type = "loopback"
    public static let summary = "loopback plugin (swift-cni): lo up in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// No keys of its own; `prevResult` is passed through unchanged.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) {}

    /// `lo` up. The result: `prevResult` when chained, else `lo` with its loopback addresses.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        var addresses: [IPPrefix] = []
        do {
            let nl = try container.netlink()
            let lo = try nl.requireLink("lo")
            try nl.setUp(lo.index)
            for family in [IPFamily.v4, .v6] {
                let own = try nl.addresses(lo.index, family: family).map(\.prefix)
                if let bad = own.first(where: { !LoopbackPlugin.isLoopback($0.address) }) {
                    throw CNIError(
                        .invalidNetworkConfig, "lo in \(ctx.args.netns) has a non-loopback address \(bad)",
                        details: "the loopback plugin brings up lo as it is; remove that address")
                }
                if let first = own.first { addresses.append(first) }
            }
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to bring up lo in \(ctx.args.netns)", details: "\(error)")
        }
        if let prev = ctx.config.prevResult { return prev }
        return CNIResult(
            interfaces: [.init(name: "lo", mac: "00:00:00:00:00:00", sandbox: ctx.args.netns)],
            ips: addresses.map { CNIResult.IPConfig(address: $0, gateway: nil, interface: 0) })
    }

    /// `lo` down; no namespace, or one that is gone, is success.
    public func del(_ ctx: PluginContext) throws {
        guard !ctx.args.netns.isEmpty else { return }
        let container: NetworkNamespace
        do {
            container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        } catch {
            if error.code == .unknownContainer { return }
            throw error
        }
        do {
            let nl = try container.netlink()
            if let lo = try nl.link(named: "lo") { try nl.setUp(lo.index, false) }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to bring down lo in \(ctx.args.netns)", details: "\(error)")
        }
    }

    /// `lo` is up.
    public func check(_ ctx: PluginContext) throws {
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let lo: Link?
        do {
            lo = try container.netlink().link(named: "lo")
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to look at lo in \(ctx.args.netns)", details: "\(error)")
        }
        guard let lo, lo.isUp else { throw CNIError(.checkFailed, "lo is down in \(ctx.args.netns)") }
    }

    /// Nothing to collect: lo goes with its namespace.
    public func gc(_ ctx: PluginContext) throws {}
    /// Always ready.
    public func status(_ ctx: PluginContext) throws {}

    static func isLoopback(_ a: IPAddress) -> Bool {
        switch a {
        case .v4(let v): return v >> 24 == 127
        case .v6(let v): return v == 1
        }
    }
}
