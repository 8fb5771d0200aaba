import Base
import CNI
import NFTables
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `ptp` plugin: a veth pair per container and routes, no bridge, laid out as the reference
/// lays it out. In the container: IPAM's addresses on CNI_IFNAME, the gateway a /32 (/128) on the
/// link, the subnet and IPAM's routes via the gateway. On the host: the gateway's address as a
/// /32 (/128) on the host end, a route to each container address through it; forwarding on;
/// ipMasq in nftables (the bridge plugin's layout).
public struct PtpPlugin: MainPlugin {
    public static let type = "ptp"
    public static let summary = "ptp plugin (swift-cni): a veth pair and routes, no bridge"

    /// The plugin; it keeps no state (IPAM's and the nftables elements aside).
    public init() {}

    /// ``PtpConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> PtpConfig {
        try PtpConfig(config, args: args, forAdd: forAdd)
    }

    /// What ADD found before any change: the host, the container.
    public struct Prepared {
        let host: NetlinkSocket
        let container: NetworkNamespace
        let cnl: NetlinkSocket
    }

    /// CNI_IFNAME must be free in the container.
    public func prepare(_ conf: PtpConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        try cnl.requireFree(ctx.args.ifName, in: ctx.args.netns)
        return Prepared(host: try NetlinkSocket(), container: container, cnl: cnl)
    }

    /// The veth pair: CNI_IFNAME in the container, `veth%08x` on the host.
    public struct Made {
        let prepared: Prepared
        let hostEnd: Link
        let containerEnd: Link
    }

    /// The veth pair, made inside the container with its peer on the host, the host end up.
    public func makeInterface(_ conf: PtpConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let ifName = add.ctx.args.ifName
        do throws(NetlinkError) {
            let peer = try p.cnl.createContainerVeth(ifName, mtu: conf.mtu, mac: conf.mac)
            let ctr = try p.cnl.requireLink(ifName)
            let cnl = p.cnl
            add.undo("delete \(ifName) in the container") { try? cnl.deleteLink(ctr.index) }
            let hostEnd = try p.host.requireLink(peer)
            try p.host.setUp(hostEnd.index)
            return Made(prepared: p, hostEnd: hostEnd, containerEnd: ctr)
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to create the veth pair for \(ifName)", details: "\(error)")
        }
    }

    /// IPAM's addresses in the container with the gateway on the link, the host end's addresses
    /// and routes, forwarding, ipMasq; the result's interfaces (host end, container end).
    public func configure(_ conf: PtpConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        guard let ipam else { throw CNIError(.invalidNetworkConfig, "ptp needs ipam", details: "the addresses and the gateway come from it") }
        var result = CNIResult(addressesOf: ipam, onInterface: 1)
        for ipc in result.ips where ipc.gateway == nil {
            throw CNIError(.invalidNetworkConfig, "IPAM gave \(ipc.address) no gateway", details: "ptp routes the container through the gateway")
        }
        do {
            try m.prepared.container.configure(
                &result, index: m.containerEnd.index, ifName: ctx.args.ifName, nl: m.prepared.cnl, routeMetric: conf.routeMetric)
            try Ptp.containerRoutes(result, m)
            try Ptp.hostSide(result, m)
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure the ptp link of \(ctx.args.ifName)", details: "\(error)")
        }
        if conf.ipMasq {
            let nft = try NFTSocket.open()
            let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
            do {
                try Masquerade.add(nft, network: ctx.config.name, attachment, addresses: result.ips.map(\.address), exclude: [])
            } catch {
                throw CNIError(.firewallFailed, "failed to set up ipMasq for \(attachment)", details: error.description)
            }
            add.undo("remove ipMasq") { try Masquerade.remove(nft, network: ctx.config.name, attachment) }
        }
        let hostNow = try m.prepared.host.link(index: m.hostEnd.index) ?? m.hostEnd
        let ctrNow = try m.prepared.cnl.link(index: m.containerEnd.index) ?? m.containerEnd
        result.interfaces = [
            .init(name: hostNow.name, mac: hostNow.mac.description, mtu: hostNow.mtu),
            .init(name: ctrNow.name, mac: ctrNow.mac.description, mtu: ctrNow.mtu, sandbox: ctx.args.netns),
        ]
        return result
    }

    /// Deletes the container's interface (the host end and its routes go with it) and, by the
    /// attachment's tag, its ipMasq elements (also with CNI_NETNS empty).
    public func teardown(_ conf: PtpConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        let network = ctx.config.name
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let masq = BackgroundTask { try Masquerade.remove(try NFTSocket(), network: network, attachment) }
        failures.deleteContainerInterface(ctx)
        failures.run("remove ipMasq", code: .firewallFailed) { try masq.value() }
    }

    /// The container's veth with prevResult's addresses and routes; its host end with the gateways.
    public func verify(_ conf: PtpConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        guard let ctr = try cnl.link(named: ctx.args.ifName) else { throw fail("interface \"\(ctx.args.ifName)\" is missing in \(ctx.args.netns)") }
        guard ctr.kind == "veth", let peer = ctr.parentIndex else { throw fail("interface \"\(ctx.args.ifName)\" is not a veth") }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: ctr.index, ifName: ctx.args.ifName) { throw fail(missing) }
        if let missing = try Ptp.missingRoutes(prev, cnl, index: ctr.index, ifName: ctx.args.ifName) { throw fail(missing) }
        let host = try NetlinkSocket()
        guard let hostEnd = try host.link(index: peer) else { throw fail("the host end of \"\(ctx.args.ifName)\" is missing") }
        let have = Set(try host.addresses(hostEnd.index).map(\.prefix.address))
        for ipc in prev.ips {
            if let gw = ipc.gateway, !have.contains(gw) { throw fail("the host end \(hostEnd.name) lacks the gateway \(gw)") }
        }
        if conf.ipMasq,
            let missing = try Masquerade.missing(
                try NFTSocket.open(), network: ctx.config.name, Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName),
                addresses: prev.ips.map(\.address.address))
        {
            throw fail(missing)
        }
    }

    /// Removes the ipMasq elements of attachments not in the valid list.
    public func collect(_ conf: PtpConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.run("collect ipMasq", code: .firewallFailed) {
            try Masquerade.collect(try NFTSocket(), network: ctx.config.name, valid: ctx.config.validAttachments ?? [])
        }
    }

    /// nftables must be usable when ipMasq is set.
    public func ready(_ conf: PtpConfig, _ ctx: PluginContext) throws {
        guard conf.ipMasq else { return }
        do { _ = try Masquerade.elements(try NFTSocket(), .v4) } catch {
            throw CNIError(.notAvailable, "ptp: nftables is not usable for ipMasq", details: error.description)
        }
    }
}

/// The steps of the ptp plugin.
enum Ptp {
    /// In the container, for each address: the kernel's prefix route goes, the gateway becomes a
    /// /32 (/128) on the link and the subnet is routed via it, both with the address as source.
    static func containerRoutes(_ result: CNIResult, _ m: PtpPlugin.Made) throws {
        let nl = m.prepared.cnl, index = m.containerEnd.index
        for ipc in result.ips {
            guard let gw = ipc.gateway else { continue }
            let subnet = ipc.address.network
            var prefix = KernelRoute(destination: subnet, outputIndex: index, scope: 253)
            if ipc.address.family == .v6 { prefix.priority = 256 }
            do throws(NetlinkError) { try nl.deleteRoute(prefix) } catch {
                if error.errno != ESRCH && error.errno != ENOENT { throw error }
            }
            let width = gw.family.bitWidth
            try nl.addRoute(
                KernelRoute(destination: IPPrefix(address: gw, length: width)!, outputIndex: index, scope: 253, source: ipc.address.address))
            if subnet.length < width {
                try nl.addRoute(KernelRoute(destination: subnet, gateway: gw, outputIndex: index, source: ipc.address.address))
            }
        }
    }

    /// What CHECK misses of ``containerRoutes(_:_:)``: each gateway on the link, each subnet via
    /// its gateway.
    static func missingRoutes(_ prev: CNIResult, _ nl: NetlinkSocket, index: Int32, ifName: String) throws -> String? {
        for ipc in prev.ips {
            guard let gw = ipc.gateway else { continue }
            let routes = try nl.routes(family: gw.family).filter { $0.outputIndex == index }
            let width = gw.family.bitWidth
            if !routes.contains(where: { $0.destination == IPPrefix(address: gw, length: width) && $0.gateway == nil }) {
                return "the route to the gateway \(gw) is missing on \(ifName)"
            }
            let subnet = ipc.address.network
            if subnet.length < width && !routes.contains(where: { $0.destination == subnet && $0.gateway == gw }) {
                return "the route to \(subnet) via \(gw) is missing on \(ifName)"
            }
        }
        return nil
    }

    /// On the host: forwarding on, each gateway as a /32 (/128) on the host end, a route to each
    /// container address through it (scope host, as the reference adds it).
    static func hostSide(_ result: CNIResult, _ m: PtpPlugin.Made) throws {
        let nl = m.prepared.host, index = m.hostEnd.index
        for ipc in result.ips {
            guard let gw = ipc.gateway else { continue }
            let width = gw.family.bitWidth
            let forwarding = gw.family == .v4 ? ["net", "ipv4", "ip_forward"] : ["net", "ipv6", "conf", "all", "forwarding"]
            if (try? Sysctl.get(forwarding)) != "1" { try Sysctl.set(forwarding, "1") }
            do throws(NetlinkError) { try nl.addAddress(index, IPPrefix(address: gw, length: width)!, noDAD: true) } catch {
                if error.errno != EEXIST { throw error }
            }
            let host = IPPrefix(address: ipc.address.address, length: width)!
            do throws(NetlinkError) { try nl.addRoute(KernelRoute(destination: host, outputIndex: index, scope: 254)) } catch {
                if error.errno != EEXIST { throw error }
            }
        }
    }
}
