import Base
import CNI
import PluginKit

/// The vlan plugin's configuration (the reference's keys), decoded and validated with no
/// kernel call.
public struct VlanConfig: MainPluginConfig {
    /// The host interface (in the container with linkInContainer) the VLAN is a sub-interface of.
    var master = ""
    /// The 802.1Q VLAN ID, 0 (priority tags only) to 4094.
    var vlanId: UInt16 = 0
    var mtu: Int?
    var linkInContainer = false
    /// The metric of the container's routes that name no `priority` (automatic when nil).
    var routeMetric: UInt32?
    /// The IPAM plugin; nil for a pure layer-2 attachment.
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        ipam = conf.ipamPlugin
        dns = conf.dns
        linkInContainer = try f.bool("linkInContainer") ?? false
        routeMetric = try f.int("routeMetric", in: 0...Int(UInt32.max)).map(UInt32.init)
        mtu = try f.linkMTU()
        let id = try f.int("vlanId", in: 0...4094)
        vlanId = UInt16(id ?? 0)
        master = try f.interfaceName("master") ?? ""
        guard forAdd else { return }
        if master.isEmpty {
            throw CNIError(.invalidNetworkConfig, "vlan needs \"master\"", details: "the host interface the VLAN is a sub-interface of")
        }
        if id == nil { throw CNIError(.invalidNetworkConfig, "vlan needs \"vlanId\"", details: "the 802.1Q VLAN ID, 0 to 4094") }
        try args.checkCNIArgs(known: ["IP"])
    }
}
