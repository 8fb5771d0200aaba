import Base
import CNI
import NFTables
import PluginKit

/// The `firewall` chained plugin, on nftables: the forwarded traffic of the container's addresses
/// accepted (from them, and replies to them), an administrator's chain evaluated first, and with
/// `ingressPolicy: same-bridge` the network's bridge isolated from the other isolated bridges.
/// The keys are those of the reference plugin, which podman's generated conflists use.
public struct FirewallPlugin: CNIPlugin {
    public static let type = "firewall"
    public static let summary = "firewall plugin (swift-cni): forwarded container traffic accepted, bridges isolated, in nftables"

    /// The plugin; its state is the elements of its nftables table.
    public init() {}

    /// Decodes and validates the configuration with no nftables call.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try FirewallConfig(config, args: args) }

    /// Adds the attachment's addresses to the forward-accept and isolation elements; returns prevResult.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try FirewallConfig(ctx.config, args: ctx.args)
        let result = try ctx.chainedPrevResult("firewall")
        let addresses = result.sandboxIPs(ctx.args.ifName).map(\.address.address)
        guard !addresses.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "prevResult has no address for \(ctx.args.ifName)")
        }
        var bridge: String?
        if conf.isolate {
            guard let b = result.interfaces.first(where: { ($0.sandbox ?? "").isEmpty }) else {
                throw CNIError(
                    .invalidNetworkConfig, "ingressPolicy \"same-bridge\" needs the bridge in prevResult",
                    details: "prevResult lists no host interface (the bridge plugin puts its bridge first)")
            }
            bridge = b.name
        }
        let nft = try NFTSocket.open()
        do {
            try Firewall.add(
                nft, network: ctx.config.name, Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName),
                addresses: addresses, adminChain: conf.adminChain, isolate: bridge)
        } catch {
            throw CNIError(.firewallFailed, "failed to set up the firewall for \(ctx.args.containerID)/\(ctx.args.ifName)", details: error.description)
        }
        return result
    }

    /// Removes the attachment's elements by its tag (also without prevResult).
    public func del(_ ctx: PluginContext) throws {
        _ = try FirewallConfig(ctx.config, args: ctx.args, forAdd: false)
        let nft = try NFTSocket.open()
        do {
            try Firewall.remove(nft, network: ctx.config.name, Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName))
        } catch {
            throw CNIError(.firewallFailed, "failed to remove the firewall elements of \(ctx.args.containerID)/\(ctx.args.ifName)", details: error.description)
        }
    }

    /// Checks that the attachment's elements are there for prevResult's addresses.
    public func check(_ ctx: PluginContext) throws {
        let conf = try FirewallConfig(ctx.config, args: ctx.args, forAdd: false)
        let result = try ctx.checkedPrevResult("firewall")
        let nft = try NFTSocket.open()
        if let missing = try Firewall.missingLayout(nft, adminChain: conf.adminChain) {
            throw CNIError(.checkFailed, "the firewall's forward rules are damaged: \(missing)", details: "an ADD puts them back")
        }
        let held: Set<IPAddress>
        do {
            held = Set(try Firewall.addresses(nft, network: ctx.config.name, Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)))
        } catch {
            throw CNIError(.firewallFailed, "cannot list the firewall elements", details: error.description)
        }
        for ip in result.sandboxIPs(ctx.args.ifName).map(\.address.address) where !held.contains(ip) {
            throw CNIError(.checkFailed, "forwarded traffic of \(ip) is not accepted by the firewall")
        }
    }

    /// Removes the elements of attachments not in the valid list.
    public func gc(_ ctx: PluginContext) throws {
        _ = try FirewallConfig(ctx.config, args: ctx.args, forAdd: false)
        let nft = try NFTSocket.open()
        do {
            try Firewall.collect(nft, network: ctx.config.name, valid: ctx.config.validAttachments ?? [])
        } catch {
            throw CNIError(.firewallFailed, "firewall GC failed", details: error.description)
        }
    }

    /// Ready when nftables answers.
    public func status(_ ctx: PluginContext) throws {
        _ = try FirewallConfig(ctx.config, args: ctx.args, forAdd: false)
        do {
            _ = try NFTSocket().tableExists(Firewall.table)
        } catch {
            throw CNIError(.notAvailable, "firewall: nftables is not usable", details: error.description)
        }
    }
}

/// The reference plugin's keys: `backend` ("" or "iptables": ours is nftables either way;
/// "firewalld" is not supported, code 2), `iptablesAdminChainName` (the chain jumped to first,
/// default CNI-ADMIN), `firewalldZone` (only with firewalld), `ingressPolicy` ("open" or
/// "same-bridge").
struct FirewallConfig {
    var adminChain = "CNI-ADMIN"
    var isolate = false

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        switch try f.string("backend") ?? "" {
        case "", "iptables", "nftables": break
        case "firewalld":
            throw CNIError(
                .unsupportedField, "unsupported backend \"firewalld\"",
                details: "swift-cni's firewall plugin programs nftables; leave backend empty or set it to iptables")
        case let b:
            throw Fields.invalid("backend", .string(b), "must be \"\", \"iptables\" or \"firewalld\"")
        }
        if let c = try f.string("iptablesAdminChainName"), !c.isEmpty {
            guard c.utf8.count <= 64, c.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw Fields.invalid("iptablesAdminChainName", .string(c), "a chain name: up to 64 letters, digits, '-' and '_'")
            }
            adminChain = c
        }
        _ = try f.string("firewalldZone")
        switch try f.string("ingressPolicy") ?? "" {
        case "", "open": isolate = false
        case "same-bridge": isolate = true
        case let p: throw Fields.invalid("ingressPolicy", .string(p), "must be \"open\" or \"same-bridge\"")
        }
        if forAdd { try args.checkCNIArgs(known: []) }
    }
}
