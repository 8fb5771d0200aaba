import Base
import CNI
import Netlink
import PluginKit

/// The macvlan plugin's configuration, decoded and validated with no kernel call.
public struct MacvlanConfig: MainPluginConfig {
    /// nil: the interface of the default route (or, chained, the host interface of prevResult).
    var master: String?
    var mode = MacvlanMode.bridge
    var mtu: Int?
    /// `mac`, then CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac (last wins).
    var mac: [UInt8]?
    var linkInContainer = false
    var broadcastQueueLength: UInt32?
    /// The metric of the container's routes that name no `priority` (automatic when nil).
    var routeMetric: UInt32?
    /// The IPAM plugin; nil for an attachment without addresses (`ipam` absent, `{}` or without a
    /// type: a pure layer-2 port).
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        master = try f.interfaceName("master")
        if let m = try f.string("mode"), !m.isEmpty {
            guard let v = MacvlanMode(name: m) else {
                throw Fields.invalid("mode", .string(m), "must be one of bridge, private, vepa, passthru")
            }
            mode = v
        }
        mtu = try f.linkMTU()
        linkInContainer = try f.bool("linkInContainer") ?? false
        routeMetric = try f.int("routeMetric", in: 0...Int(UInt32.max)).map(UInt32.init)
        broadcastQueueLength = try f.int("bcqueuelen", in: 0...Int(UInt32.max)).map(UInt32.init)
        ipam = conf.ipamPlugin
        dns = conf.dns
        mac = try conf.requestedMAC(args, configured: try f.string("mac").map { m throws(CNIError) in try parseMACAddress(m, field: "mac") })
        if forAdd { try args.checkCNIArgs(known: ["MAC", "IP"]) }
    }
}
