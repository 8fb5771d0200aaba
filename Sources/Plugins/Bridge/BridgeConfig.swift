import Base
import CNI
import PluginKit

/// The bridge plugin's configuration, decoded and validated with no kernel call.
public struct BridgeConfig: MainPluginConfig {
    var bridge = "cni0"
    var isGateway = false
    var isDefaultGateway = false
    var forceAddress = false
    var ipMasq = false
    /// Destinations ipMasq leaves alone besides the container's subnet (an overlay's network).
    var ipMasqExclude: [IPPrefix] = []
    var mtu: Int?
    var hairpinMode = false
    var promiscMode = false
    var vlan = 0
    var vlanTrunk: [ClosedRange<Int>] = []
    var preserveDefaultVlan = false
    var enableDAD = false
    var macSpoofCheck = false
    var disableContainerInterface = false
    var portIsolation = false
    /// The metric of the container's routes that name no `priority` (automatic when nil: see
    /// `RouteMetric`).
    var routeMetric: UInt32?
    /// The container's MAC: CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac (last wins).
    var mac: [UInt8]?
    /// The IPAM plugin; nil for an attachment without addresses (`ipam` absent, `{}` or without a
    /// type: a pure layer-2 port).
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    /// VLAN keys in use: the bridge filters VLANs and the port gets its own.
    var usesVLANs: Bool { vlan != 0 || !vlanTrunk.isEmpty }

    /// `forAdd` is false for DEL/GC/STATUS, which must work with settings ADD would refuse.
    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        if let b = try f.string("bridge") {
            do {
                try CommandArgs.validateInterfaceName(b, variable: "bridge")
            } catch {
                throw CNIError(.invalidNetworkConfig, "invalid bridge \"\(b)\"", details: error.details)
            }
            bridge = b
        }
        isGateway = try f.bool("isGateway") ?? false
        isDefaultGateway = try f.bool("isDefaultGateway") ?? false
        if isDefaultGateway { isGateway = true }
        forceAddress = try f.bool("forceAddress") ?? false
        ipMasq = try f.bool("ipMasq") ?? false
        for (i, v) in (try f.array("ipMasqExclude") ?? []).enumerated() {
            guard let p = v.stringValue.flatMap(IPPrefix.init) else { throw Fields.invalid("ipMasqExclude[\(i)]", v, "must be a CIDR") }
            ipMasqExclude.append(p)
        }
        mtu = try f.linkMTU()
        hairpinMode = try f.bool("hairpinMode") ?? false
        promiscMode = try f.bool("promiscMode") ?? false
        vlan = try f.int("vlan", in: 0...4094) ?? 0
        for (i, t) in (try f.array("vlanTrunk") ?? []).enumerated() {
            let p = "vlanTrunk[\(i)]"
            let tf = Fields(try t.object(at: p), path: p)
            if let id = try tf.int("id", in: 1...4094) {
                vlanTrunk.append(id...id)
            } else if let lo = try tf.int("minID", in: 1...4094), let hi = try tf.int("maxID", in: 1...4094) {
                guard lo <= hi else { throw Fields.invalid("\(p).minID", .int(lo), "is above maxID \(hi)") }
                vlanTrunk.append(lo...hi)
            } else {
                throw CNIError(.invalidNetworkConfig, "invalid \(p)", details: "needs id, or minID and maxID")
            }
        }
        preserveDefaultVlan = try f.bool("preserveDefaultVlan") ?? false
        enableDAD = try f.bool("enabledad") ?? false
        macSpoofCheck = try f.bool("macspoofchk") ?? false
        disableContainerInterface = try f.bool("disableContainerInterface") ?? false
        portIsolation = try f.bool("portIsolation") ?? false
        routeMetric = try f.int("routeMetric", in: 0...Int(UInt32.max)).map(UInt32.init)
        ipam = conf.ipamPlugin
        dns = conf.dns

        mac = try conf.requestedMAC(args)

        guard forAdd else { return }
        if hairpinMode && promiscMode {
            throw CNIError(
                .invalidNetworkConfig, "cannot set hairpinMode and promiscMode at the same time",
                details: "hairpin sends a container's traffic back to it; promiscuous mode on the bridge does the same for every port")
        }
        if disableContainerInterface && ipam != nil {
            throw CNIError(
                .invalidNetworkConfig, "cannot use IPAM when disableContainerInterface is set",
                details: "addresses cannot be configured on an interface that stays down")
        }
        if isGateway && ipam == nil {
            throw CNIError(.invalidNetworkConfig, "isGateway needs ipam", details: "the gateway address comes from IPAM")
        }
        if ipMasq && ipam == nil {
            throw CNIError(.invalidNetworkConfig, "ipMasq needs ipam", details: "masquerading is set up for the addresses IPAM hands out")
        }
        if vlan != 0 && isGateway && bridge.utf8.count + 1 + String(vlan).utf8.count > 15 {
            throw CNIError(
                .invalidNetworkConfig, "the VLAN gateway interface \"\(bridge).\(vlan)\" would be longer than 15 characters",
                details: "with vlan and isGateway the gateway address goes on <bridge>.<vlan>; choose a shorter bridge name")
        }
        try args.checkCNIArgs(known: ["MAC", "IP"])
    }
}
