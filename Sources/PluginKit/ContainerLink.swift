import Base
import CNI
import Netlink

extension NetlinkSocket {
    /// Refuses, with code 107 (conflict), a CNI_IFNAME the container already has.
    public func requireFree(_ ifName: String, in netns: String) throws {
        if try link(named: ifName) != nil {
            throw CNIError(
                .conflict, "container interface \"\(ifName)\" already exists",
                details: "in \(netns); DEL the attachment first or choose another CNI_IFNAME")
        }
    }
}

extension AddSteps {
    /// Makes the container's interface through `create`, which makes it in the container under
    /// the temporary name it is given (`prefix` and eight random hex digits, never a host
    /// interface's name), registers its deletion as an undo step and renames it CNI_IFNAME: a
    /// crash never leaves a half-made link on the host. `what` names the link in the error
    /// (`macvlan "eth0" on "ens3"`).
    public func makeInContainer(_ cnl: NetlinkSocket, prefix: String, what: String, _ create: (String) throws -> Void) throws -> Link {
        let ifName = ctx.args.ifName
        do {
            let temporary = prefix + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            try create(temporary)
            let made = try cnl.requireLink(temporary)
            undo("delete \(ifName) in the container") { try? cnl.deleteLink(made.index) }
            try cnl.rename(made.index, to: ifName)
            return made
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to create \(what)", details: "\(error)")
        }
    }
}

extension CNIResult {
    /// The result's only interface: `index` as the container's socket `cnl` reads it now, in
    /// CNI_NETNS.
    public mutating func list(containerInterface index: Int32, _ cnl: NetlinkSocket, _ ctx: PluginContext) throws {
        guard let now = try cnl.link(index: index) else {
            throw CNIError(.kernelOperationFailed, "\(ctx.args.ifName) vanished from \(ctx.args.netns) during ADD")
        }
        interfaces = [.init(name: now.name, mac: now.mac.description, mtu: now.mtu, sandbox: ctx.args.netns)]
    }
}

extension AddSteps {
    /// The container's interface `index` addressed: `addresses` (IPAM's result, or prevResult's
    /// when chained) with their routes at `routeMetric` (``NetworkNamespace/configure``), or, with
    /// none, only set up (`arpNotify` as asked); the result lists it as its only interface. A
    /// kernel failure is code 103 naming the interface.
    public func address(
        _ index: Int32, in container: NetworkNamespace, _ cnl: NetlinkSocket, with addresses: CNIResult?,
        routeMetric: UInt32? = nil, arpNotify: Bool = true
    ) throws -> CNIResult {
        var result = addresses.map { CNIResult(addressesOf: $0, onInterface: 0) } ?? CNIResult()
        do {
            if addresses != nil {
                try container.configure(&result, index: index, ifName: ctx.args.ifName, nl: cnl, routeMetric: routeMetric)
            } else {
                try cnl.setUp(index, arpNotify: arpNotify)
            }
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to configure \(ctx.args.ifName) in \(ctx.args.netns)", details: "\(error)")
        }
        try result.list(containerInterface: index, cnl, ctx)
        return result
    }
}

/// CHECK's steps the main plugins share; each failure is code 108 naming what differs.
public enum ContainerCheck {
    /// The container's socket and CNI_IFNAME in it, of `kind` (the link kind, and how the message
    /// names it: `("macvlan", "a macvlan")`) when given.
    public static func link(_ ctx: PluginContext, kind: (kind: String, named: String)? = nil) throws -> (NetlinkSocket, Link) {
        let cnl = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment).netlink()
        let ifName = ctx.args.ifName
        guard let l = try cnl.link(named: ifName) else { throw CNIError(.checkFailed, "interface \"\(ifName)\" is missing in \(ctx.args.netns)") }
        if let kind, l.kind != kind.kind {
            throw CNIError(.checkFailed, "interface \"\(ifName)\" is a \(l.kind ?? "plain link"), not \(kind.named)")
        }
        return (cnl, l)
    }

    /// The sub-interface `link` is on the master the configuration names (found as ADD found it,
    /// without prevResult).
    public static func master(of link: Link, _ name: String?, linkInContainer: Bool, _ cnl: NetlinkSocket, ifName: String) throws {
        let masterNL = linkInContainer ? cnl : try NetlinkSocket()
        let master = try Master.find(name, prev: nil, linkInContainer: linkInContainer, masterNL)
        if link.parentIndex != master.index { throw CNIError(.checkFailed, "interface \"\(ifName)\" is not on master \"\(master.name)\"") }
    }

    /// `link` has prevResult's MAC for it (when `mac`), addresses and routes.
    public static func result(_ prev: CNIResult, _ link: Link, _ cnl: NetlinkSocket, ifName: String, mac: Bool = true) throws {
        if mac, let m = prev.interfaces.first(where: { $0.name == ifName })?.mac, MACAddress(m) != link.mac {
            throw CNIError(.checkFailed, "interface \"\(ifName)\" has MAC \(link.mac), the result says \(m)")
        }
        if let missing = try cnl.missingConfiguration(prev.ips, prev.routes, index: link.index, ifName: ifName) {
            throw CNIError(.checkFailed, missing)
        }
    }
}
