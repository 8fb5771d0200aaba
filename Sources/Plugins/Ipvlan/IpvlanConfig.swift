import Base
import CNI
import Netlink
import PluginKit

/// The ipvlan plugin's configuration (the reference's keys and `flag`), decoded and validated
/// with no kernel call.
public struct IpvlanConfig: MainPluginConfig {
    /// nil: the host interface of prevResult when chained, else the default route's interface.
    var master: String?
    var mode = IpvlanMode.l2
    var flag = IpvlanFlag.bridge
    var mtu: Int?
    var linkInContainer = false
    /// The metric of the container's routes that name no `priority` (automatic when nil).
    var routeMetric: UInt32?
    /// The IPAM plugin; nil when chained after a plugin whose prevResult has the addresses.
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        master = try f.interfaceName("master")
        if let m = try f.string("mode"), !m.isEmpty {
            guard let v = IpvlanMode(name: m) else { throw Fields.invalid("mode", .string(m), "must be one of l2, l3, l3s") }
            mode = v
        }
        if let m = try f.string("flag"), !m.isEmpty {
            guard let v = IpvlanFlag(name: m) else { throw Fields.invalid("flag", .string(m), "must be one of bridge, private, vepa") }
            flag = v
        }
        mtu = try f.linkMTU()
        linkInContainer = try f.bool("linkInContainer") ?? false
        routeMetric = try f.int("routeMetric", in: 0...Int(UInt32.max)).map(UInt32.init)
        ipam = conf.ipamPlugin
        dns = conf.dns
        guard forAdd else { return }
        if ipam == nil, conf.prevResult?.ips.isEmpty ?? true {
            throw CNIError(
                .invalidNetworkConfig, "ipvlan needs ipam, or a prevResult with addresses",
                details: "an ipvlan shares its master's MAC, so it has no layer-2 identity without an address")
        }
        try args.checkCNIArgs(known: ["IP"])
    }
}
