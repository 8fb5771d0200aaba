import Base
import CNI
import NFTables

/// The portmap plugin's configuration, decoded and validated with no kernel call.
struct PortmapConfig {
    /// One entry of `runtimeConfig.portMappings`.
    struct Entry: Equatable {
        var hostPort: UInt16
        var containerPort: UInt16
        var proto: IPProtocol
        /// nil: every address of both families; an unspecified address (0.0.0.0, ::) means every
        /// address of its family only.
        var hostIP: IPAddress?
    }

    var entries: [Entry] = []
    var snat = true
    var masqAll = false

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        snat = try f.bool("snat") ?? true
        masqAll = try f.bool("masqAll") ?? false
        // iptables-only knobs, with no meaning for nftables maps: checked as the reference checks
        // them, then ignored.
        let markBit = try f.int("markMasqBit", in: 0...31)
        let markChain = try f.string("externalSetMarkChain")
        if markBit != nil && markChain != nil && forAdd {
            throw CNIError(
                .invalidNetworkConfig, "cannot set both markMasqBit and externalSetMarkChain",
                details: "both are iptables settings; this plugin uses nftables and ignores them")
        }
        if let b = try f.string("backend"), b != "nftables" && b != "iptables" {
            throw Fields.invalid("backend", .string(b), "must be nftables or iptables (both give nftables maps here)")
        }
        for key in ["conditionsV4", "conditionsV6"] where !(try f.stringArray(key) ?? []).isEmpty && forAdd {
            throw CNIError(
                .unsupportedField, "unsupported field \"\(key)\" in network configuration",
                details: "extra match conditions are not supported by this portmap; remove \(key)")
        }
        let list = try conf.runtimeConfig.array("portMappings") ?? []
        for (i, v) in list.enumerated() {
            let p = "runtimeConfig.portMappings[\(i)]"
            let m = Fields(try v.object(at: p), path: p)
            guard let host = try m.int("hostPort", in: 1...65535) else {
                throw CNIError(.invalidNetworkConfig, "missing \(p).hostPort", details: "a port from 1 to 65535")
            }
            guard let ctr = try m.int("containerPort", in: 1...65535) else {
                throw CNIError(.invalidNetworkConfig, "missing \(p).containerPort", details: "a port from 1 to 65535")
            }
            var proto = IPProtocol.tcp
            if let name = try m.string("protocol"), !name.isEmpty {
                guard let n = IPProtocol(name: name) else {
                    throw Fields.invalid("\(p).protocol", .string(name), "must be tcp, udp or sctp")
                }
                proto = n
            }
            var hostIP: IPAddress?
            if let s = try m.string("hostIP"), !s.isEmpty {
                guard let a = IPAddress(s) else { throw Fields.invalid("\(p).hostIP", .string(s), "not an IP address") }
                hostIP = a
            }
            let e = Entry(hostPort: UInt16(host), containerPort: UInt16(ctr), proto: proto, hostIP: hostIP)
            entries.append(e)
        }
    }

    /// The container's addresses a chained plugin acts on: the first IPv4 and first IPv6 address
    /// of prevResult that belong to CNI_IFNAME in the sandbox (or to no interface in particular).
    static func containerAddresses(_ prev: CNIResult, ifName: String) -> [IPPrefix] {
        var out: [IPPrefix] = []
        for ip in prev.sandboxIPs(ifName) where !out.contains(where: { $0.family == ip.address.family }) { out.append(ip.address) }
        return out
    }

    /// The kernel mappings: every entry for each container address whose family its hostIP
    /// allows. The same host port twice with different targets is an error; twice the same, once.
    func mappings(to addresses: [IPPrefix]) throws(CNIError) -> [PortMap.Mapping] {
        var out: [PortMap.Mapping] = []
        for (i, e) in entries.enumerated() {
            for a in addresses where e.hostIP == nil || e.hostIP!.family == a.family {
                let any = e.hostIP.map { $0 == IPAddress(family: $0.family, bits: 0) } ?? true
                let m = PortMap.Mapping(
                    hostPort: e.hostPort, containerPort: e.containerPort, proto: e.proto,
                    hostIP: any ? nil : e.hostIP, container: a.address)
                if let other = out.first(where: { $0.map == m.map && $0.key == m.key }) {
                    if other == m { continue }
                    throw CNIError(
                        .invalidNetworkConfig, "invalid runtimeConfig.portMappings[\(i)]: host port \(m.hostDescription) is given twice",
                        details: "once for container port \(other.containerPort), once for \(m.containerPort)")
                }
                out.append(m)
            }
        }
        return out
    }
}
