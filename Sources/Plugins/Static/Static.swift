import Base
import CNI
import PluginKit

/// The `static` IPAM plugin, as the reference's: the addresses (with their gateways), routes and
/// DNS of the configuration, handed out as they are; no state. Addresses come from
/// `ipam.addresses`, then CNI_ARGS `IP` (appended; `GATEWAY` sets the gateway of the addresses
/// whose subnet holds it), then `args.cni.ips` (replacing them), then `runtimeConfig.ips` (the
/// `ips` capability, replacing them).
public struct StaticPlugin: CNIPlugin {
    public static let type = "static"
    public static let summary = "static IPAM plugin (swift-cni): the configuration's addresses, routes and DNS"

    /// The plugin; it keeps no state.
    public init() {}

    /// Decodes and validates the `ipam` section and the address arguments.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try StaticConfig(config, args: args) }

    /// The configured addresses, routes and DNS as the result.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try StaticConfig(ctx.config, args: ctx.args)
        var result = CNIResult(routes: conf.routes, dns: conf.dns)
        result.ips = conf.addresses.map { CNIResult.IPConfig(address: $0.address, gateway: $0.gateway) }
        return result
    }

    /// Nothing to release.
    public func del(_ ctx: PluginContext) throws {}

    /// Each configured address is in prevResult, with its gateway when one is configured.
    public func check(_ ctx: PluginContext) throws {
        let conf = try StaticConfig(ctx.config, args: ctx.args)
        let prev = try ctx.checkedPrevResult(Self.type)
        for a in conf.addresses {
            guard let ip = prev.ips.first(where: { $0.address.address == a.address.address }) else {
                throw CNIError(.checkFailed, "static: address \(a.address) is not in the result on \(ctx.args.ifName)")
            }
            if let gw = a.gateway, ip.gateway != gw {
                throw CNIError(
                    .checkFailed,
                    "static: address \(a.address) has gateway \(ip.gateway.map(\.description) ?? "none") in the result, the configuration says \(gw)")
            }
        }
    }

    /// Nothing to collect: the plugin keeps no state.
    public func gc(_ ctx: PluginContext) throws {}

    /// Always ready.
    public func status(_ ctx: PluginContext) throws {}
}

/// The static plugin's configuration, decoded and validated with no I/O.
struct StaticConfig {
    struct Address {
        var address: IPPrefix
        var gateway: IPAddress?
    }
    var addresses: [Address] = []
    var routes: [CNIResult.Route] = []
    var dns = CNIResult.DNS()

    init(_ conf: NetConf, args: CommandArgs) throws(CNIError) {
        guard let ipam = conf.ipam else {
            throw CNIError(.invalidNetworkConfig, "static: no ipam section", details: "the addresses are ipam.addresses")
        }
        for (i, a) in (try ipam.array("addresses") ?? []).enumerated() {
            let path = "\(ipam.pathOf("addresses"))[\(i)]"
            let f = Fields(try a.object(at: path), path: path)
            let text = try f.string("address") ?? ""
            guard let p = IPPrefix(text) else { throw Fields.invalid("\(path).address", .string(text), "must be an address in CIDR notation") }
            var address = Address(address: p)
            if let g = try f.string("gateway") {
                guard let gw = IPAddress(g) else { throw Fields.invalid("\(path).gateway", .string(g), "must be an IP address") }
                address.gateway = gw
            }
            addresses.append(address)
        }
        try applyArguments(conf, args)
        try validateAddresses()
        for (i, r) in (try ipam.array("routes") ?? []).enumerated() {
            routes.append(try CNIResult.Route(json: r, path: "\(ipam.pathOf("routes"))[\(i)]"))
        }
        if let d = try ipam.object("dns") { dns = try CNIResult.DNS(fields: d) }
        let v4 = addresses.filter { $0.address.address.family == .v4 }.count
        if max(v4, addresses.count - v4) > 1 && conf.cniVersion < .v0_3_0 {
            throw CNIError(
                .invalidNetworkConfig, "static: cniVersion \(conf.cniVersion) allows one address per family",
                details: "\(addresses.count) are configured; use cniVersion 0.3.0 or later")
        }
        try args.checkCNIArgs(known: ["IP", "GATEWAY"])
    }

    /// A gateway outside its address's subnet, or an address given twice, is refused (7).
    private func validateAddresses() throws(CNIError) {
        var seen: Set<IPAddress> = []
        for (i, a) in addresses.enumerated() {
            if let gw = a.gateway, !a.address.network.contains(gw) {
                throw CNIError(
                    .invalidNetworkConfig, "static: gateway \(gw) is outside \(a.address)",
                    details: "address \(i): the gateway must be in the address's subnet")
            }
            if !seen.insert(a.address.address).inserted {
                throw CNIError(.invalidNetworkConfig, "static: address \(a.address.address) is given twice", details: "address \(i)")
            }
        }
    }

    /// CNI_ARGS `IP` and `GATEWAY`, `args.cni.ips`, `runtimeConfig.ips`, in the reference's order.
    private mutating func applyArguments(_ conf: NetConf, _ args: CommandArgs) throws(CNIError) {
        if let ips = args.cniArg("IP") {
            for item in ips.split(separator: ",") {
                let s = String(String(item).trimmingWhitespace())
                guard let p = IPPrefix(s) else { throw Fields.invalid("CNI_ARGS IP", .string(s), "must be an address in CIDR notation") }
                addresses.append(Address(address: p))
            }
        }
        if let gws = args.cniArg("GATEWAY") {
            for item in gws.split(separator: ",") {
                let s = String(String(item).trimmingWhitespace())
                guard let gw = IPAddress(s) else { throw Fields.invalid("CNI_ARGS GATEWAY", .string(s), "must be an IP address") }
                for i in addresses.indices where addresses[i].address.network.contains(gw) { addresses[i].gateway = gw }
            }
        }
        if let ips = try conf.args.object("cni")?.stringArray("ips"), !ips.isEmpty {
            addresses = try ips.map { s throws(CNIError) in
                guard let p = IPPrefix(s) else { throw Fields.invalid("args.cni.ips", .string(s), "must be addresses in CIDR notation") }
                return Address(address: p)
            }
        }
        if let ips = try conf.runtimeConfig.stringArray("ips"), !ips.isEmpty {
            addresses = try ips.map { s throws(CNIError) in
                guard let p = IPPrefix(s) else { throw Fields.invalid("runtimeConfig.ips", .string(s), "must be addresses in CIDR notation") }
                return Address(address: p)
            }
        }
    }
}
