import Base
import CNI
import PluginKit

/// The ptp plugin's configuration (the reference's keys), decoded and validated with no kernel
/// call.
public struct PtpConfig: MainPluginConfig {
    /// Masquerade the container's traffic to destinations outside its subnet.
    var ipMasq = false
    var mtu: Int?
    /// The container end's MAC: CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac.
    var mac: [UInt8]?
    /// The metric of the container's routes that name no `priority` (automatic when nil).
    var routeMetric: UInt32?
    /// The IPAM plugin; ptp needs one (its addresses and gateway).
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        ipMasq = try f.bool("ipMasq") ?? false
        if let b = try f.string("ipMasqBackend"), !["nftables", "iptables"].contains(b) {
            throw Fields.invalid("ipMasqBackend", .string(b), "must be nftables or iptables (both are served by nftables here)")
        }
        mtu = try f.linkMTU()
        routeMetric = try f.int("routeMetric", in: 0...Int(UInt32.max)).map(UInt32.init)
        ipam = conf.ipamPlugin
        dns = conf.dns
        mac = try conf.requestedMAC(args)
        guard forAdd else { return }
        if ipam == nil { throw CNIError(.invalidNetworkConfig, "ptp needs ipam", details: "the addresses and the gateway come from it") }
        try args.checkCNIArgs(known: ["MAC", "IP"])
    }
}
