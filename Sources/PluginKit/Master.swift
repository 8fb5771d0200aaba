import Base
import CNI
import Netlink

/// The host interface a sub-interface (macvlan, ipvlan, 802.1Q VLAN) is made on: found as the
/// plugins find it, refused before anything changes where the kernel would refuse it after IPAM
/// ran.
public enum Master {
    /// `name`, else (chained) the last host interface of prevResult, else the interface of the
    /// IPv4 default route, else of the IPv6 one. Code 7 naming it when it does not exist.
    public static func find(_ name: String?, prev: CNIResult?, linkInContainer: Bool, _ nl: NetlinkSocket) throws -> Link {
        var name = name
        if name == nil, let prev {
            let hostIf = prev.interfaces.last(where: { $0.sandbox == nil || $0.sandbox == "" })
            // In the container, a chained plugin's single interface (the reference's rule).
            name = hostIf?.name ?? (linkInContainer && prev.interfaces.count == 1 ? prev.interfaces[0].name : nil)
        }
        if let name {
            guard let found = try nl.link(named: name) else {
                throw CNIError(
                    .invalidNetworkConfig, "master \"\(name)\" not found",
                    details: linkInContainer ? "looked in the container (linkInContainer)" : "looked on the host")
            }
            return found
        }
        for family in [IPFamily.v4, .v6] {
            if let idx = try nl.routes(family: family).first(where: { $0.destination == nil && $0.outputIndex != nil })?.outputIndex,
                let l = try nl.link(index: idx)
            {
                return l
            }
        }
        throw CNIError(
            .invalidNetworkConfig, "no master given and no default route to take it from",
            details: "set \"master\" to the host interface the containers should share")
    }

    /// Refuses a master the kernel refuses for a `kind` ("macvlan" or "ipvlan") child: a
    /// loopback, a device that is not Ethernet, a port of a bridge or bond (its frames belong to
    /// that master: EBUSY), a master that already carries children of the other kind (EBUSY).
    public static func usable(_ master: Link, for kind: String, _ nl: NetlinkSocket) throws {
        func refuse(_ why: String) -> CNIError { Fields.invalid("master", .string(master.name), why) }
        let a = kind.first.map { "aeiou".contains($0) } == true ? "an" : "a"
        if master.isLoopback { throw refuse("is a loopback device, which cannot carry \(a) \(kind)") }
        if !master.isEthernet { throw refuse("is not an Ethernet device (kind \(master.kind ?? "none")), which \(a) \(kind) needs") }
        let links = try nl.links()
        if let upper = master.master, let owner = links.first(where: { $0.index == upper }),
            ["bridge", "bond", "team", "openvswitch"].contains(owner.kind ?? "")
        {
            throw refuse("is a port of \(owner.kind!) \"\(owner.name)\"; use \"\(owner.name)\" or a device of its own as master")
        }
        let other = kind == "macvlan" ? "ipvlan" : "macvlan"
        if let child = links.first(where: { $0.parentIndex == master.index && $0.kind == other && $0.index != master.index }) {
            throw refuse("already carries \(other) \"\(child.name)\"; one device cannot be master of both a macvlan and an ipvlan")
        }
    }
}

/// Where a sub-interface (macvlan, ipvlan, 802.1Q VLAN) is made, found before any change: the
/// container's namespace and socket, the master and the socket of its namespace.
public struct SubInterfaceSite {
    /// The container's namespace.
    public let container: NetworkNamespace
    /// A socket in the container's namespace.
    public let cnl: NetlinkSocket
    /// The socket of the master's namespace: the container's with linkInContainer.
    public let masterNL: NetlinkSocket
    /// The parent interface.
    public let master: Link
    /// The namespace to make the link in from `masterNL`: the container's, nil with
    /// linkInContainer (it is made where the master is).
    public let target: NetworkNamespace?

    /// The container's namespace, the master (``Master/find(_:prev:linkInContainer:_:)``, then
    /// the plugin's own `check` of it), `mtu` within the master's (code 7 naming both) and
    /// CNI_IFNAME free in the container (code 107).
    public init(
        _ ctx: PluginContext, master name: String?, prev: CNIResult?, linkInContainer: Bool, mtu: Int?,
        check: (Link, NetlinkSocket) throws -> Void
    ) throws {
        container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        cnl = try container.netlink()
        masterNL = linkInContainer ? cnl : try NetlinkSocket()
        master = try Master.find(name, prev: prev, linkInContainer: linkInContainer, masterNL)
        target = linkInContainer ? nil : container
        try check(master, masterNL)
        if let mtu, mtu > master.mtu {
            throw Fields.invalid("mtu", .int(mtu), "must be at most \(master.mtu), the MTU of master \"\(master.name)\"")
        }
        try cnl.requireFree(ctx.args.ifName, in: ctx.args.netns)
    }
}
