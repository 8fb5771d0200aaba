import CLinux
import Base
import CNI
import NFTables
import PluginKit
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// The `portmap` chained plugin: `runtimeConfig.portMappings` as elements of nftables maps (see
/// ``PortMap``), so neither a packet nor an ADD gets slower as containers come.
///
/// The host is the network namespace of the thread that runs the plugin.
public struct PortmapPlugin: CNIPlugin {
    public static let type = "portmap"
    public static let summary = "portmap plugin (swift-cni): host ports forwarded to containers with nftables maps"

    /// The plugin; its state is the elements of its nftables maps.
    public init() {}

    /// Decodes and validates the mappings and options with no nftables call.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try PortmapConfig(config, args: args) }

    /// Adds the attachment's mappings (DNAT, hairpin SNAT, conntrack flush for UDP) in one transaction; a host port another container holds is refused with code 107.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try PortmapConfig(ctx.config, args: ctx.args)
        let prev = try ctx.chainedPrevResult("portmap")
        if conf.entries.isEmpty { return prev }  // nothing to map: netfilter is not touched
        let addresses = PortmapConfig.containerAddresses(prev, ifName: ctx.args.ifName)
        guard !addresses.isEmpty else {
            throw CNIError(
                .invalidNetworkConfig, "prevResult has no address for \(ctx.args.ifName) to map ports to",
                details: "ips: \(prev.ips.map(\.address.description).joined(separator: ", "))")
        }
        let mappings = try conf.mappings(to: addresses)
        for e in conf.entries where !mappings.contains(where: { $0.hostPort == e.hostPort && $0.proto == e.proto }) {
            ctx.log("portmap: skipping host port \(e.hostPort): the container has no address of the family of hostIP \(e.hostIP!)")
        }
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let network = ctx.config.name
        let nft = try NFTSocket.open()
        let rollback = Rollback()
        defer {
            rollback.runIfArmed()
            if !rollback.failures.isEmpty { ctx.log("portmap: rollback: \(rollback.failures.joined(separator: "; "))") }
        }
        do {
            try PortMap.add(nft, network: network, attachment, mappings: mappings, subnets: addresses, snat: conf.snat, masqAll: conf.masqAll)
        } catch let c as PortMap.Conflict {
            throw CNIError(
                .conflict, "host port \(c.mapping.hostDescription) is already mapped to \(c.owner)",
                details: "it forwards to \(c.target); choose another host port or remove that container")
        } catch let e as NFTError {
            throw CNIError(.firewallFailed, "failed to map the host ports of \(attachment)", details: e.description)
        }
        rollback.add("remove the mappings") { try PortMap.remove(nft, network: network, attachment) }

        // Traffic from 127.0.0.1 may leave through the interface that routes to the container
        // (and is masqueraded there): route_localnet on it.
        if conf.snat {
            let nl = try NetlinkSocket()
            for a in addresses where a.family == .v4 {
                guard let index = try nl.routeInterface(to: a.address), let link = try nl.link(index: index) else { continue }
                let key = ["net", "ipv4", "conf", link.name, "route_localnet"]
                if (try? Sysctl.get(key)) != "1" { try Sysctl.set(key, "1") }
            }
        }
        try Portmap.flushUDP(mappings)
        rollback.disarm()
        return prev
    }

    /// Removes this attachment's elements and the UDP flows of its host ports. With the mappings
    /// the runtime passes (as at ADD) each element is found by its key, so DEL costs the same
    /// with 10 or 10,000 mappings on the host; without them, by tag from a listing (needs
    /// neither prevResult nor the mappings). Nothing to remove is success.
    public func del(_ ctx: PluginContext) throws {
        let conf = try PortmapConfig(ctx.config, args: ctx.args, forAdd: false)
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let removed: [PortMap.Mapping]
        do {
            let nft = try NFTSocket()
            if conf.entries.isEmpty {
                removed = try PortMap.remove(nft, network: ctx.config.name, attachment)
            } else {
                let containers = ctx.config.prevResult.map { PortmapConfig.containerAddresses($0, ifName: ctx.args.ifName).map(\.address) } ?? []
                removed = try PortMap.remove(
                    nft, network: ctx.config.name, attachment,
                    hostPorts: conf.entries.map { e in
                        // 0.0.0.0 and :: mean any address of their family, as at ADD.
                        let any = e.hostIP.map { $0 == IPAddress(family: $0.family, bits: 0) } ?? true
                        return PortMap.HostPort(proto: e.proto, port: e.hostPort, hostIP: any ? nil : e.hostIP)
                    }, containers: containers)
            }
        } catch {
            throw CNIError(.firewallFailed, "failed to remove the host ports of \(attachment)", details: error.description)
        }
        try Portmap.flushUDP(removed)
    }

    /// Every mapping of the configuration must be an element of this attachment.
    public func check(_ ctx: PluginContext) throws {
        let conf = try PortmapConfig(ctx.config, args: ctx.args, forAdd: false)
        let prev = try ctx.checkedPrevResult("portmap")
        let mappings = try conf.mappings(to: PortmapConfig.containerAddresses(prev, ifName: ctx.args.ifName))
        guard !mappings.isEmpty else { return }
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        if let missing = try PortMap.missing(try NFTSocket.open(), network: ctx.config.name, attachment, mappings: mappings, snat: conf.snat) {
            throw CNIError(.checkFailed, missing, details: "attachment \(attachment), table inet swift_cni_portmap")
        }
    }

    /// GC: removes the network's mappings whose attachment is not in the valid list.
    public func gc(_ ctx: PluginContext) throws {
        _ = try PortmapConfig(ctx.config, args: ctx.args, forAdd: false)
        let removed: [PortMap.Mapping]
        do {
            removed = try PortMap.collect(try NFTSocket(), network: ctx.config.name, valid: ctx.config.validAttachments ?? [])
        } catch {
            throw CNIError(.firewallFailed, "portmap GC failed", details: error.description)
        }
        try Portmap.flushUDP(removed)
    }

    /// STATUS: 50 when nftables cannot be used.
    public func status(_ ctx: PluginContext) throws {
        _ = try PortmapConfig(ctx.config, args: ctx.args, forAdd: false)
        do {
            _ = try NFTSocket().tableExists(PortMap.table)
        } catch {
            throw CNIError(.notAvailable, "portmap: nftables is not usable", details: error.description)
        }
    }
}

/// The steps of the portmap plugin.
enum Portmap {
    /// Deletes the conntrack entries of the UDP host ports, so a flow that conntrack still maps
    /// elsewhere (an earlier container, or none) does not swallow the datagrams.
    static func flushUDP(_ mappings: [PortMap.Mapping]) throws {
        var ports: [IPFamily: Set<UInt16>] = [:]
        for m in mappings where m.proto == .udp { ports[m.family, default: []].insert(m.hostPort) }
        guard !ports.isEmpty else { return }
        do {
            let nl = try Conntrack.socket()
            for (family, set) in ports.sorted(by: { $0.key == .v4 && $1.key == .v6 }) {
                try Conntrack.delete(nl, family: family, proto: .udp, destinationPorts: set)
            }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to flush the UDP conntrack entries of the host ports", details: "\(error)")
        }
    }
}
