import Base
import CNI
import NFTables
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `bridge` plugin: a Linux bridge on the host, a veth pair per container with one end on the
/// bridge, addresses from the delegated IPAM plugin.
///
/// The host is the network namespace of the thread that runs the plugin (the process's, when
/// exec'ed by a runtime); the container is CNI_NETNS.
public struct BridgePlugin: MainPlugin {
    public static let type = "bridge"
    public static let summary = "bridge plugin (swift-cni): a Linux bridge and a veth pair per container"

    /// The plugin; it keeps no state between invocations.
    public init() {}

    /// ``BridgeConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> BridgeConfig {
        try BridgeConfig(config, args: args, forAdd: forAdd)
    }

    /// What ADD found before IPAM ran: the host and the container, the bridge if it exists (or
    /// made already, with VLANs).
    public struct Prepared {
        let host: NetlinkSocket
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        let existing: Link?
        var early: Link?
    }

    /// A bridge name taken by another kind of link and an interface name in use in the container
    /// are refused. Whether the kernel can filter VLANs is known only by trying: with vlan or
    /// vlanTrunk the bridge is set up here, before IPAM runs, so a kernel without it refuses the
    /// ADD with nothing left.
    public func prepare(_ conf: BridgeConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let host = try NetlinkSocket()
        let cnl = try container.netlink()
        let existing = try Bridge.refuseBeforeIPAM(conf, ctx, host: host, cnl: cnl, container: container)
        var prepared = Prepared(host: host, container: container, cnl: cnl, existing: existing)
        if conf.usesVLANs { prepared.early = try Bridge.bridge(conf, prepared, add) }
        return prepared
    }

    /// The bridge and the veth pair, the host end a port of it.
    public struct Made {
        let prepared: Prepared
        let bridge: Link
        let veth: Bridge.VethPair
    }

    /// The bridge (made when missing), the veth pair on it, macspoofchk.
    public func makeInterface(_ conf: BridgeConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        let ctx = add.ctx
        let br = try Bridge.bridge(conf, p, add)
        let veth = try Bridge.createVeth(conf, ifName: ctx.args.ifName, host: p.host, container: p.container, cnl: p.cnl, bridge: br)
        let cnl = p.cnl
        add.undo("delete \(ctx.args.ifName) in the container") { try? cnl.deleteLink(veth.container.index) }
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        if conf.macSpoofCheck { try Bridge.addMacSpoofCheck(ctx, attachment, veth: veth, add) }
        return Made(prepared: p, bridge: br, veth: veth)
    }

    /// IPAM's addresses (the gateway on the bridge, the container's interface, ipMasq), or a pure
    /// layer-2 port up without IPAM; the result's interfaces.
    public func configure(_ conf: BridgeConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        var result = CNIResult()
        if let ipam {
            result = try Bridge.configureAddresses(conf, ipam: ipam, m, add)
        } else if !conf.disableContainerInterface {
            // A pure layer-2 port: no address, but the interface is up (as the reference does).
            do { try m.prepared.cnl.setUp(m.veth.container.index, arpNotify: true) } catch {
                throw Bridge.kernel("failed to bring \(ctx.args.ifName) up in \(m.prepared.container.path)", error)
            }
        }
        result.interfaces = try Bridge.interfaces(
            bridge: m.bridge, veth: m.veth, host: m.prepared.host, cnl: m.prepared.cnl, netns: ctx.args.netns)
        return result
    }

    /// Deletes the container's interface and, by the attachment's tag, its ipMasq and macspoofchk
    /// elements: also when CNI_NETNS is empty or the config at DEL lacks ipMasq (the reference
    /// plugin leaks its NAT rules then). The firewall transaction and the veth deletion (each a
    /// kernel grace period) run side by side, beside IPAM DEL.
    public func teardown(_ conf: BridgeConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        let network = ctx.config.name
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let masq = BackgroundTask {
            let nft = try NFTSocket()
            try Masquerade.remove(nft, network: network, attachment)
            try MacSpoofCheck.remove(nft, network: network, attachment)
        }
        failures.deleteContainerInterface(ctx)
        failures.run("remove ipMasq/macspoofchk", code: .firewallFailed) { try masq.value() }
    }

    /// Verifies the bridge, the container interface (kind, MAC, addresses, routes) and the host
    /// end (enslaved to the bridge, peer of the container end) against prevResult.
    public func verify(_ conf: BridgeConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        try Bridge.check(conf, prev, ctx)
    }

    /// Removes the ipMasq and macspoofchk elements of attachments not in the valid list (absent:
    /// none is valid, as host-local reads it).
    public func collect(_ conf: BridgeConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        failures.run("collect ipMasq/macspoofchk", code: .firewallFailed) {
            let nft = try NFTSocket()
            try Masquerade.collect(nft, network: ctx.config.name, valid: ctx.config.validAttachments ?? [])
            try MacSpoofCheck.collect(nft, network: ctx.config.name, valid: ctx.config.validAttachments ?? [])
        }
    }

    /// nftables must be usable when ipMasq is set.
    public func ready(_ conf: BridgeConfig, _ ctx: PluginContext) throws {
        guard conf.ipMasq else { return }
        do {
            _ = try Masquerade.elements(try NFTSocket(), .v4)
        } catch {
            throw CNIError(.notAvailable, "bridge: nftables is not usable for ipMasq", details: error.description)
        }
    }
}

/// The steps of the bridge plugin.
public enum Bridge {
    /// What can be refused is refused before IPAM runs, so such an ADD changes nothing: a bridge
    /// name taken by another kind of link, an interface name in use in the container. Returns the
    /// bridge if it exists.
    static func refuseBeforeIPAM(
        _ conf: BridgeConfig, _ ctx: PluginContext, host: NetlinkSocket, cnl: NetlinkSocket, container: NetworkNamespace
    ) throws -> Link? {
        let existing: Link?
        do {
            existing = try host.link(named: conf.bridge)
            if let l = existing, l.kind != "bridge" { throw notABridge(conf, l) }
            if try cnl.link(named: ctx.args.ifName) != nil { throw interfaceExists(ctx.args.ifName, container) }
        } catch {
            throw kernel("failed to look up \"\(conf.bridge)\" and \"\(ctx.args.ifName)\"", error)
        }
        return existing
    }

    /// The bridge set up before IPAM ran, else the bridge made (with its undo: a bridge this ADD
    /// made goes with it, unless another container got a port meanwhile) or found now.
    static func bridge(_ conf: BridgeConfig, _ p: BridgePlugin.Prepared, _ add: AddSteps) throws -> Link {
        if let early = p.early { return early }
        let (br, made) = try ensureBridge(conf, p.host, existing: p.existing)
        if made {
            let host = p.host
            add.undo("delete bridge \(conf.bridge)") {
                if try !host.links().contains(where: { $0.master == br.index }) { try host.deleteLink(br.index) }
            }
        }
        return br
    }

    /// macspoofchk: frames from the container's port must carry its MAC (with its undo).
    static func addMacSpoofCheck(_ ctx: PluginContext, _ attachment: Attachment, veth: VethPair, _ add: AddSteps) throws {
        let mac = veth.container.mac.bytes
        guard mac.count == 6 else { return }
        let nft = try NFTSocket.open()
        do {
            try MacSpoofCheck.add(nft, network: ctx.config.name, attachment, hostInterface: veth.host.name, mac: mac)
        } catch {
            throw CNIError(.firewallFailed, "failed to set up macspoofchk for \(attachment)", details: error.description)
        }
        add.undo("remove macspoofchk") { try MacSpoofCheck.remove(nft, network: ctx.config.name, attachment) }
    }

    /// IPAM's addresses: the gateway on the bridge (isGateway), the container interface
    /// configured, ipMasq (with its undo); the result so far.
    static func configureAddresses(_ conf: BridgeConfig, ipam: CNIResult, _ m: BridgePlugin.Made, _ add: AddSteps) throws
        -> CNIResult
    {
        let ctx = add.ctx
        var result = CNIResult(addressesOf: ipam, onInterface: 2)
        if conf.isGateway {
            let gateway = conf.vlan != 0 ? try ensureVLANGateway(conf, bridge: m.bridge, host: m.prepared.host) : m.bridge
            try configureGateway(conf, &result, bridge: gateway, host: m.prepared.host)
        }
        try configureContainer(
            conf, &result, ifName: ctx.args.ifName, index: m.veth.container.index, container: m.prepared.container, cnl: m.prepared.cnl)
        if conf.ipMasq {
            let nft = try NFTSocket.open()
            let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
            do {
                try Masquerade.add(nft, network: ctx.config.name, attachment, addresses: result.ips.map(\.address), exclude: conf.ipMasqExclude)
            } catch {
                throw CNIError(.firewallFailed, "failed to set up ipMasq for \(attachment)", details: error.description)
            }
            add.undo("remove ipMasq") { try Masquerade.remove(nft, network: ctx.config.name, attachment) }
        }
        return result
    }

    /// The result's interfaces as the kernel has them now: the bridge, the host end, the
    /// container end (its sandbox).
    static func interfaces(bridge br: Link, veth: VethPair, host: NetlinkSocket, cnl: NetlinkSocket, netns: String) throws
        -> [CNIResult.Interface]
    {
        let brNow = try host.link(index: br.index) ?? br
        let hostNow = try host.link(index: veth.host.index) ?? veth.host
        let ctrNow = try cnl.link(index: veth.container.index) ?? veth.container
        return [
            .init(name: brNow.name, mac: brNow.mac.description, mtu: brNow.mtu),
            .init(name: hostNow.name, mac: hostNow.mac.description, mtu: hostNow.mtu),
            .init(name: ctrNow.name, mac: ctrNow.mac.description, mtu: ctrNow.mtu, sandbox: netns),
        ]
    }

    static func kernel(_ what: String, _ e: any Error) -> CNIError {
        if let c = e as? CNIError { return c }
        return CNIError(.kernelOperationFailed, what, details: "\(e)")
    }

    static func notABridge(_ conf: BridgeConfig, _ l: Link) -> CNIError {
        CNIError(
            .conflict, "\"\(conf.bridge)\" exists and is not a bridge",
            details: "it is a \(l.kind ?? "plain") link; choose another \"bridge\" name")
    }

    static func interfaceExists(_ ifName: String, _ container: NetworkNamespace) -> CNIError {
        CNIError(
            .conflict, "container interface \"\(ifName)\" already exists",
            details: "in \(container.path); DEL the attachment first or choose another CNI_IFNAME")
    }

    /// The bridge, made (up, MTU, its own MAC, no RAs) when missing; `made` when this call made it.
    /// A link of that name that is no bridge is an error (107). Equivalent to
    /// `ip link add <br> type bridge; ip link set <br> up`.
    /// `existing`: the link of that name as ADD already looked it up (nil: there was none).
    /// A bridge it made and could not finish setting up is deleted again before it throws.
    static func ensureBridge(_ conf: BridgeConfig, _ nl: NetlinkSocket, existing: Link?) throws -> (link: Link, made: Bool) {
        var made = false
        do {
            var br = existing
            if br == nil {
                do {
                    try nl.createBridge(name: conf.bridge, mtu: conf.mtu)
                    made = true
                } catch {
                    if error.errno != EEXIST { throw error }  // EEXIST: another ADD made it meanwhile
                }
                br = try nl.requireLink(conf.bridge)
                // Set the bridge's address to itself: a bridge with a random address takes the lowest
                // address of its ports, so it would change as containers come and go.
                if let b = br, b.mac.bytes.count == 6 { try nl.setMAC(b.index, b.mac.bytes) }
                // No router advertisements are taken on the bridge; the gateway is ours.
                try? Sysctl.set(["net", "ipv6", "conf", conf.bridge, "accept_ra"], "0")
            }
            guard let b = br else { throw CNIError(.kernelOperationFailed, "bridge \(conf.bridge) vanished") }
            if b.kind != "bridge" { throw notABridge(conf, b) }
            if !b.isUp { try nl.setUp(b.index) }
            if conf.promiscMode && !b.isPromiscuous { try nl.setPromiscuous(b.index, true) }
            let filtering = conf.usesVLANs ? try nl.bridgeVLANFiltering(b.index) : false
            if conf.usesVLANs && !filtering {
                do {
                    try nl.setBridgeVLANFiltering(b.index, true)
                } catch {
                    guard error.errno == EOPNOTSUPP || error.errno == EINVAL else { throw error }
                    throw CNIError(
                        .unsupportedField, "unsupported vlan/vlanTrunk: this kernel has no bridge VLAN filtering",
                        details: "\(error) (CONFIG_BRIDGE_VLAN_FILTERING); remove vlan and vlanTrunk from the configuration")
                }
            }
            return (try nl.link(index: b.index) ?? b, made)
        } catch {
            if made, let b = try? nl.link(named: conf.bridge), !((try? nl.links())?.contains { $0.master == b.index } ?? true) {
                try? nl.deleteLink(b.index)
            }
            throw kernel("failed to set up bridge \"\(conf.bridge)\"", error)
        }
    }

    /// The two ends of a container's veth pair.
    public struct VethPair {
        var host: Link
        var container: Link
    }

    /// The veth pair, made inside the container (CNI_IFNAME) with its peer in the host under a
    /// random `veth%08x` name, enslaved to the bridge with the port options.
    static func createVeth(
        _ conf: BridgeConfig, ifName: String, host: NetlinkSocket, container: NetworkNamespace, cnl: NetlinkSocket,
        bridge: Link
    ) throws -> VethPair {
        do {
            let name = try cnl.createContainerVeth(ifName, mtu: conf.mtu ?? bridge.mtu, mac: conf.mac)
            let hostEnd = try host.requireLink(name)
            try host.setMaster(hostEnd.index, bridge.index)
            if conf.hairpinMode || conf.portIsolation {
                try host.setBridgePort(hostEnd.index, hairpin: conf.hairpinMode ? true : nil, isolated: conf.portIsolation ? true : nil)
            }
            try configurePortVLANs(conf, host, port: hostEnd.index, access: conf.vlan, trunk: conf.vlanTrunk)
            try host.setUp(hostEnd.index)
            let ctrEnd = try cnl.requireLink(ifName)
            return VethPair(host: try host.link(index: hostEnd.index) ?? hostEnd, container: ctrEnd)
        } catch {
            throw kernel("failed to create the veth pair for \(ifName)", error)
        }
    }

    /// A port's VLANs: `access` (PVID, untagged), the `trunk` ranges (tagged); the default VLAN 1
    /// goes unless preserveDefaultVlan. Nothing when no VLAN key is set.
    /// Equivalent to `bridge vlan del dev <port> vid 1; bridge vlan add dev <port> vid <v> pvid untagged; ...`.
    static func configurePortVLANs(_ conf: BridgeConfig, _ nl: NetlinkSocket, port: Int32, access: Int, trunk: [ClosedRange<Int>])
        throws
    {
        guard access != 0 || !trunk.isEmpty else { return }
        if !conf.preserveDefaultVlan {
            do {
                try nl.deleteBridgeVLAN(port, 1...1)
            } catch {
                if error.errno != ENOENT && error.errno != EINVAL { throw error }
            }
        }
        if access != 0 { try nl.addBridgeVLAN(port, access...access, pvid: true, untagged: true) }
        for r in trunk where !(r.count == 1 && r.lowerBound == access) { try nl.addBridgeVLAN(port, r) }
    }

    /// With `vlan` and isGateway the gateway address lives on `<bridge>.<vlan>`: a veth whose peer
    /// is an access port of that VLAN on the bridge (as the reference plugin does). Made once, then
    /// reused; it stays, as the bridge does.
    static func ensureVLANGateway(_ conf: BridgeConfig, bridge: Link, host: NetlinkSocket) throws -> Link {
        let name = "\(conf.bridge).\(conf.vlan)"
        do {
            if let l = try host.link(named: name) { return l }
            let peer = randomVethName()
            do {
                try host.createVeth(name: name, peer: peer, peerNamespace: nil, mtu: bridge.mtu, mac: nil)
            } catch {
                if error.errno == EEXIST, let l = try host.link(named: name) { return l }  // another ADD made it
                throw error
            }
            let p = try host.requireLink(peer)
            try host.setMaster(p.index, bridge.index)
            try configurePortVLANs(conf, host, port: p.index, access: conf.vlan, trunk: [])
            try host.setUp(p.index)
            let l = try host.requireLink(name)
            try host.setUp(l.index)
            return l
        } catch {
            throw kernel("failed to set up the VLAN gateway interface \"\(name)\"", error)
        }
    }

    /// The gateway address of each family on the bridge, ip_forward on, and (isDefaultGateway)
    /// a default route via it unless IPAM gave one.
    static func configureGateway(_ conf: BridgeConfig, _ result: inout CNIResult, bridge: Link, host: NetlinkSocket)
        throws
    {
        do {
            for i in result.ips.indices {
                let ipc = result.ips[i]
                let gw = ipc.gateway ?? ipc.address.network.address.advanced(by: 1)
                result.ips[i].gateway = gw
                let gwPrefix = IPPrefix(address: gw, length: ipc.address.length)!
                let existing = try host.addresses(bridge.index, family: gw.family)
                if !existing.contains(where: { $0.prefix == gwPrefix }) {
                    // Another address in the same network on the bridge conflicts, unless forced away.
                    let clashing = existing.filter { $0.prefix.network == gwPrefix.network || gw.family == .v4 && $0.prefix.overlaps(gwPrefix) }
                    if !clashing.isEmpty {
                        guard conf.forceAddress else {
                            throw CNIError(
                                .conflict, "\"\(conf.bridge)\" already has an IP address different from \(gwPrefix)",
                                details: "it has \(clashing.map(\.prefix.description).joined(separator: ", ")); set forceAddress to replace it")
                        }
                        for c in clashing { try host.deleteAddress(bridge.index, c.prefix) }
                    }
                    do {
                        try host.addAddress(bridge.index, gwPrefix, noDAD: true)
                    } catch {
                        if error.errno != EEXIST { throw error }  // EEXIST: another ADD added it meanwhile
                    }
                }
                let forwarding: [String] =
                    gw.family == .v4
                    ? ["net", "ipv4", "ip_forward"] : ["net", "ipv6", "conf", "all", "forwarding"]
                if (try? Sysctl.get(forwarding)) != "1" { try Sysctl.set(forwarding, "1") }
                if conf.isDefaultGateway {
                    let any = IPPrefix(address: IPAddress(family: gw.family, bits: 0), length: 0)!
                    if !result.routes.contains(where: { $0.dst == any && $0.gw != nil }) {
                        result.routes.removeAll { $0.dst == any }
                        result.routes.append(CNIResult.Route(dst: any, gw: gw))
                    }
                }
            }
        } catch {
            throw kernel("failed to configure the gateway on \"\(conf.bridge)\"", error)
        }
    }

    /// Addresses and routes on the container interface (see ``NetworkNamespace/configure``).
    static func configureContainer(
        _ conf: BridgeConfig, _ result: inout CNIResult, ifName: String, index: Int32, container: NetworkNamespace,
        cnl: NetlinkSocket
    ) throws {
        do {
            try container.configure(
                &result, index: index, ifName: ifName, nl: cnl, enableDAD: conf.enableDAD, routeMetric: conf.routeMetric)
        } catch {
            throw kernel("failed to configure \(ifName) in \(container.path)", error)
        }
    }

    /// CHECK of the interfaces and addresses ADD made.
    static func check(_ conf: BridgeConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ msg: String, _ details: String = "") -> CNIError { CNIError(.checkFailed, msg, details: details) }
        let host = try NetlinkSocket()
        guard let br = try host.link(named: conf.bridge), br.kind == "bridge" else {
            throw fail("bridge \"\(conf.bridge)\" is missing or not a bridge")
        }
        if conf.promiscMode && !br.isPromiscuous { throw fail("bridge \"\(conf.bridge)\" is not in promiscuous mode") }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        guard let ctr = try cnl.link(named: ctx.args.ifName) else {
            throw fail("interface \"\(ctx.args.ifName)\" is missing in \(ctx.args.netns)")
        }
        if ctr.kind != "veth" { throw fail("interface \"\(ctx.args.ifName)\" is a \(ctr.kind ?? "plain link"), not a veth") }
        if !conf.disableContainerInterface && !ctr.isUp { throw fail("interface \"\(ctx.args.ifName)\" is down") }
        let mine = prev.interfaces.enumerated().filter { $0.element.name == ctx.args.ifName && $0.element.sandbox != nil }
        if let expected = mine.first?.element.mac, MACAddress(expected) != ctr.mac {
            throw fail("interface \"\(ctx.args.ifName)\" has MAC \(ctr.mac), the result says \(expected)")
        }
        // The host end: a port of the bridge whose peer is the container interface.
        let ports = try host.links().filter { $0.master == br.index && $0.kind == "veth" }
        guard let port = ports.first(where: { $0.parentIndex == ctr.index }) else {
            throw fail("no port of \"\(conf.bridge)\" is the peer of \(ctx.args.ifName)")
        }
        if conf.usesVLANs {
            let vlans = try host.bridgeVLANs(port.index)
            if conf.vlan != 0 && !vlans.contains(PortVLAN(vid: conf.vlan, pvid: true, untagged: true)) {
                throw fail("port \(port.name) is not an untagged access port of VLAN \(conf.vlan)", "its VLANs: \(vlans)")
            }
            for r in conf.vlanTrunk {
                for v in r where !vlans.contains(where: { $0.vid == v }) {
                    throw fail("port \(port.name) does not carry trunk VLAN \(v)", "its VLANs: \(vlans)")
                }
            }
        }
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        if conf.macSpoofCheck,
            let missing = try MacSpoofCheck.missing(try NFTSocket.open(), network: ctx.config.name, attachment, hostInterface: port.name)
        {
            throw fail(missing)
        }
        let mineIPs = prev.ips.filter { ipc in ipc.interface == nil || mine.contains(where: { $0.offset == ipc.interface }) }
        if let missing = try cnl.missingConfiguration(mineIPs, prev.routes, index: ctr.index, ifName: ctx.args.ifName) {
            throw fail(missing)
        }
        if conf.ipMasq,
            let missing = try Masquerade.missing(try NFTSocket.open(), network: ctx.config.name, attachment, addresses: mineIPs.map(\.address.address))
        {
            throw fail(missing)
        }
    }
}
