import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `tap` plugin: the container gets a persistent tap device (a virtual machine's NIC:
/// KubeVirt, Kata, a VMM in the pod opens it), made in the container's namespace through
/// /dev/net/tun under a temporary name and renamed there; optionally a port of a bridge in the
/// container (`bridge`), optionally with IPAM's addresses.
public struct TapPlugin: MainPlugin {
    public static let type = "tap"
    public static let summary = "tap plugin (swift-cni): a tap device for a virtual machine in the container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// The tap plugin's configuration (the reference's keys).
    public struct Config: MainPluginConfig {
        var mtu: Int?
        /// CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac (the `mac` capability).
        var mac: [UInt8]?
        /// IFF_MULTI_QUEUE: the VMM opens one queue per vCPU (it must ask for it too).
        var multiQueue = false
        /// The user and group that may open the device without CAP_NET_ADMIN.
        var owner: UInt32?
        var group: UInt32?
        /// The SELinux context the device is made in (its label: what the VMM's may open).
        var selinuxContext: String?
        /// A bridge in the container's namespace the tap becomes a port of.
        var bridge: String?
        /// The IPAM plugin; nil for a layer-2 tap (the VM addresses itself).
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
        c.multiQueue = try f.bool("multiQueue") ?? false
        // (uid_t)-1 is "nobody may": no owner at all, which is what leaving the key out says.
        c.owner = try f.int("owner", in: 0...Int(UInt32.max - 1)).map(UInt32.init)
        c.group = try f.int("group", in: 0...Int(UInt32.max - 1)).map(UInt32.init)
        c.bridge = try f.interfaceName("bridge")
        c.selinuxContext = try f.string("selinuxContext").flatMap { $0.isEmpty ? nil : $0 }
        guard forAdd else { return c }
        if let label = c.selinuxContext { try SELinuxLabel.validate(label) }
        try args.checkCNIArgs(known: ["MAC", "IP"])
        return c
    }

    /// What ADD found before any change.
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        /// The bridge in the container the tap joins.
        let bridge: Link?
    }

    /// CNI_IFNAME free in the container, the bridge there and a bridge, /dev/net/tun usable.
    public func prepare(_ conf: Config, _ add: AddSteps) throws -> Prepared {
        let container = try NetworkNamespace.container(add.ctx.args.netns, environment: add.ctx.environment)
        let cnl = try container.netlink()
        try cnl.requireFree(add.ctx.args.ifName, in: add.ctx.args.netns)
        var bridge: Link?
        if let name = conf.bridge {
            guard let b = try cnl.link(named: name) else {
                throw CNIError(
                    .invalidNetworkConfig, "tap: no bridge \"\(name)\" in \(add.ctx.args.netns)", details: "bridge names a bridge in the container's namespace")
            }
            guard b.kind == "bridge" else {
                throw CNIError(
                    .invalidNetworkConfig, "tap: \"\(name)\" in \(add.ctx.args.netns) is a \(b.kind ?? "plain link"), not a bridge", details: "bridge")
            }
            bridge = b
        }
        return Prepared(container: container, cnl: cnl, bridge: bridge)
    }

    /// The tap in the container.
    public struct Made {
        let prepared: Prepared
        let link: Link
    }

    /// The tap, made in the container's namespace under a temporary name and renamed there (its
    /// deletion the undo step), then its MTU, MAC and bridge, still down.
    public func makeInterface(_ conf: Config, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let link = try add.makeInContainer(p.cnl, prefix: "tapt", what: "tap \"\(add.ctx.args.ifName)\"") { name in
            try Self.makeTap(name, conf, p)
        }
        do {
            if let mtu = conf.mtu { try p.cnl.setMTU(link.index, mtu) }
            if let mac = conf.mac { try p.cnl.setMAC(link.index, mac) }
            if let bridge = p.bridge { try p.cnl.setMaster(link.index, bridge.index) }
        } catch {
            throw CNIError(
                .kernelOperationFailed, "tap: cannot set up \(add.ctx.args.ifName) (MTU, MAC, bridge \(p.bridge?.name ?? "none"))", details: "\(error)")
        }
        return Made(prepared: p, link: link)
    }

    /// The tap `name` in the container (made by a helper in `selinuxContext` when set).
    static func makeTap(_ name: String, _ conf: Config, _ p: Prepared) throws {
        if let label = conf.selinuxContext {
            try SELinuxLabel.createTap(name: name, conf: conf, in: p.container, label: label)
        } else {
            try p.container.perform { try TapDevice.create(name: name, multiQueue: conf.multiQueue, owner: conf.owner, group: conf.group) }
        }
    }

    /// IPAM's addresses and routes on the tap, or, without IPAM, the tap up.
    public func configure(_ conf: Config, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        try add.address(m.link.index, in: m.prepared.container, m.prepared.cnl, with: ipam)
    }

    /// Deletes the interface.
    public func teardown(_ conf: Config, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.deleteContainerInterface(ctx)
    }

    /// The interface is a tap with the configured queues, owner, group, MTU and
    /// bridge, prevResult's MAC, addresses and routes.
    public func verify(_ conf: Config, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let ifName = ctx.args.ifName
        let (cnl, l) = try ContainerCheck.link(ctx, kind: ("tun", "a tap"))
        guard let tun = l.tun, tun.isTap else { throw fail("interface \"\(ifName)\" is a tun, not a tap") }
        if tun.multiQueue != conf.multiQueue {
            throw fail("interface \"\(ifName)\" multi_queue is \(tun.multiQueue), the configuration says \(conf.multiQueue)")
        }
        if tun.owner != conf.owner {
            throw fail(
                "interface \"\(ifName)\" has owner \(tun.owner.map(String.init) ?? "none"), the configuration says \(conf.owner.map(String.init) ?? "none")")
        }
        if tun.group != conf.group {
            throw fail(
                "interface \"\(ifName)\" has group \(tun.group.map(String.init) ?? "none"), the configuration says \(conf.group.map(String.init) ?? "none")")
        }
        if let mtu = conf.mtu, l.mtu != mtu { throw fail("interface \"\(ifName)\" has MTU \(l.mtu), the configuration says \(mtu)") }
        if let name = conf.bridge {
            let master = try l.master.flatMap { try cnl.link(index: $0) }
            if master?.name != name { throw fail("interface \"\(ifName)\" is a port of \(master.map { "\"\($0.name)\"" } ?? "no bridge"), not of \"\(name)\"") }
        }
        try ContainerCheck.result(prev, l, cnl, ifName: ifName)
    }
}
