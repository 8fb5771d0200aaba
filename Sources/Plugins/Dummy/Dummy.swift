import Base
import CNI
import Netlink
import PluginKit

/// The `dummy` plugin: the container gets a dummy interface (addresses that answer locally, no
/// wire), made in the container's namespace under a temporary name and renamed there.
public struct DummyPlugin: MainPlugin {
    public static let type = "dummy"
    public static let summary = "dummy plugin (swift-cni): a dummy interface with IPAM's addresses in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// The dummy plugin's configuration: `mtu`, the MAC the runtime asks for, IPAM (required).
    public struct Config: MainPluginConfig {
        var mtu: Int?
        /// CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac (the `mac` capability).
        var mac: [UInt8]?
        /// The IPAM plugin; the dummy needs one (its addresses are all it is for).
        public internal(set) var ipam: String?
        /// `dns`, which replaces IPAM's in the result.
        public internal(set) var dns: CNIResult.DNS?
    }

    /// ``Config``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> Config {
        let f = config.fields
        var c = Config(ipam: config.ipamPlugin, dns: config.dns)
        c.mtu = try f.linkMTU()
        c.mac = try config.requestedMAC(args, configured: try f.string("mac").map { m throws(CNIError) in try parseMACAddress(m, field: "mac") })
        guard forAdd else { return c }
        if c.ipam == nil { throw CNIError(.invalidNetworkConfig, "dummy needs ipam", details: "a dummy interface is there for its addresses") }
        try args.checkCNIArgs(known: ["MAC", "IP"])
        return c
    }

    /// What ADD found before any change: the container's namespace and its socket.
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
    }

    /// CNI_IFNAME free in the container.
    public func prepare(_ conf: Config, _ add: AddSteps) throws -> Prepared {
        let container = try NetworkNamespace.container(add.ctx.args.netns, environment: add.ctx.environment)
        let cnl = try container.netlink()
        try cnl.requireFree(add.ctx.args.ifName, in: add.ctx.args.netns)
        return Prepared(container: container, cnl: cnl)
    }

    /// The dummy interface in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The dummy, made in the container's namespace under a temporary name and renamed there.
    public func makeInterface(_ conf: Config, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "dmt", what: "dummy \"\(add.ctx.args.ifName)\"") { name in
            try p.cnl.createDummy(name: name, mtu: conf.mtu, mac: conf.mac)
        }
        return Made(prepared: p, link: link)
    }

    /// IPAM's addresses and routes on the dummy.
    public func configure(_ conf: Config, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        guard let ipam else { throw CNIError(.invalidNetworkConfig, "dummy needs ipam") }
        return try add.address(m.link.index, in: m.prepared.container, m.prepared.cnl, with: ipam)
    }

    /// Deletes the interface.
    public func teardown(_ conf: Config, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a dummy with prevResult's MAC, addresses and routes.
    public func verify(_ conf: Config, _ prev: CNIResult, _ ctx: PluginContext) throws {
        let (cnl, l) = try ContainerCheck.link(ctx, kind: ("dummy", "a dummy"))
        try ContainerCheck.result(prev, l, cnl, ifName: ctx.args.ifName)
    }
}
