import Base
import CNI
import IPAM

/// host-local's configuration (the `ipam` object, plus the requested addresses from runtimeConfig,
/// args and CNI_ARGS), decoded and validated before anything touches the disk.
struct HostLocalConfig {
    let rangeSets: [RangeSet]
    let routes: [CNIResult.Route]
    let dataDir: String
    let dns: CNIResult.DNS
    let requested: [IPAddress]

    static let defaultDataDir = "/var/lib/cni/networks"

    /// `requireRanges` is false for DEL and GC, which must work even when the ranges of the
    /// configuration are broken (the addresses still have to be released).
    init(_ conf: NetConf, args: CommandArgs, requireRanges: Bool = true) throws(CNIError) {
        guard let ipam = conf.ipam else {
            throw CNIError(.invalidNetworkConfig, "missing \"ipam\"", details: "host-local reads its settings from the ipam object")
        }
        dataDir = try ipam.string("dataDir").flatMap { $0.isEmpty ? nil : $0 } ?? HostLocalConfig.defaultDataDir
        // Relative would mean relative to wherever the runtime happens to run: a different store
        // per caller, and addresses handed out twice.
        guard dataDir.hasPrefix("/") else {
            throw Fields.invalid("ipam.dataDir", .string(dataDir), "must be an absolute path")
        }

        var sets: [RangeSet] = []
        if requireRanges {
            // runtimeConfig.ipRanges first, then the legacy single range, then `ranges` (the
            // reference prepends both).
            if let rt = try conf.runtimeConfig.array("ipRanges") {
                sets += try HostLocalConfig.rangeSets(rt, path: conf.runtimeConfig.pathOf("ipRanges"))
            }
            if let subnet = try ipam.prefix("subnet") {
                let (start, end, gateway) = (try ipam.address("rangeStart"), try ipam.address("rangeEnd"), try ipam.address("gateway"))
                sets.append(
                    try IPAMError.asCNI { () throws(IPAMError) in
                        try RangeSet([try IPRange(subnet: subnet, rangeStart: start, rangeEnd: end, gateway: gateway, path: "ipam")], path: "ipam")
                    })
            }
            if let list = try ipam.array("ranges") {
                sets += try HostLocalConfig.rangeSets(list, path: ipam.pathOf("ranges"))
            }
            if sets.isEmpty {
                throw CNIError(
                    .invalidNetworkConfig, "no IP ranges specified",
                    details: "set ipam.ranges, e.g. [[{\"subnet\":\"10.22.0.0/16\"}]], or ipam.subnet")
            }
            for (i, s) in sets.enumerated() {
                for (j, t) in sets.enumerated() where j < i && s.overlaps(t) {
                    throw CNIError(.invalidNetworkConfig, "range set \(i) (\(s)) overlaps range set \(j) (\(t))")
                }
            }
            if conf.cniVersion < .v0_3_0 {
                for fam in [IPFamily.v4, .v6] where sets.filter({ $0.family == fam }).count > 1 {
                    throw CNIError(
                        .incompatibleVersion, "CNI version \(conf.cniVersion) does not support more than 1 address per family",
                        details: "the configuration has \(sets.filter { $0.family == fam }.count) \(fam) range sets")
                }
            }
        }
        rangeSets = sets

        var routes: [CNIResult.Route] = []
        for (i, r) in (try ipam.array("routes") ?? []).enumerated() {
            routes.append(try CNIResult.Route(json: r, path: "\(ipam.pathOf("routes"))[\(i)]"))
        }
        self.routes = routes

        if let path = try ipam.string("resolvConf"), !path.isEmpty, requireRanges {
            dns = try ResolvConf.parse(path: path, field: ipam.pathOf("resolvConf"))
        } else {
            dns = CNIResult.DNS()
        }

        // Requested addresses. args.cni.ips replaces CNI_ARGS IP (the convention: the same
        // information in args wins); runtimeConfig.ips adds to either.
        var req: [IPAddress] = []
        if let ips = try conf.args.object("cni")?.stringArray("ips") {
            req += try HostLocalConfig.addresses(ips, path: "args.cni.ips")
        } else if let ip = args.cniArg("IP"), !ip.isEmpty {
            req += try HostLocalConfig.addresses(ip.split(separator: ",").map(String.init), path: "CNI_ARGS IP")
        }
        if let ips = try conf.runtimeConfig.stringArray("ips") {
            req += try HostLocalConfig.addresses(ips, path: conf.runtimeConfig.pathOf("ips"))
        }
        requested = req
        if requireRanges { try args.checkCNIArgs(known: ["IP"]) }
    }

    static func rangeSets(_ list: [JSONValue], path: String) throws(CNIError) -> [RangeSet] {
        var sets: [RangeSet] = []
        for (i, setValue) in list.enumerated() {
            let sp = "\(path)[\(i)]"
            var ranges: [IPRange] = []
            for (j, rv) in (try setValue.array(at: sp)).enumerated() {
                let rp = "\(sp)[\(j)]"
                let f = Fields(try rv.object(at: rp), path: rp)
                guard let subnet = try f.prefix("subnet") else {
                    throw CNIError(.invalidNetworkConfig, "missing \"\(rp).subnet\"")
                }
                let (start, end, gateway) = (try f.address("rangeStart"), try f.address("rangeEnd"), try f.address("gateway"))
                ranges.append(
                    try IPAMError.asCNI { () throws(IPAMError) in try IPRange(subnet: subnet, rangeStart: start, rangeEnd: end, gateway: gateway, path: rp) })
            }
            sets.append(try IPAMError.asCNI { () throws(IPAMError) in try RangeSet(ranges, path: sp) })
        }
        return sets
    }

    /// Addresses given as `10.1.2.3` or `10.1.2.3/24` (the prefix is ignored: the range decides).
    static func addresses(_ texts: [String], path: String) throws(CNIError) -> [IPAddress] {
        var out: [IPAddress] = []
        for t in texts {
            let s = String(t.trimmingWhitespace())
            if let ip = IPAddress(s) ?? IPPrefix(s)?.address {
                out.append(ip)
            } else {
                throw Fields.invalid(path, .string(t), "not an IP address")
            }
        }
        return out
    }
}

/// resolv.conf, as the reference reads it into a result's `dns`: `nameserver`, `domain`,
/// `search` and `options` lines; comments (`#`, `;`) and other lines ignored.
enum ResolvConf {
    static func parse(path: String, field: String) throws(CNIError) -> CNIResult.DNS {
        let bytes: [UInt8]
        do {
            bytes = try System.readFile(path, limit: 1 << 20)
        } catch {
            throw Fields.invalid(field, .string(path), "cannot be read: \(error.reason)")
        }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    static func parse(_ text: String) -> CNIResult.DNS {
        var dns = CNIResult.DNS()
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let key = words.first, !key.hasPrefix("#"), !key.hasPrefix(";"), words.count > 1 else { continue }
            let rest = Array(words.dropFirst())
            switch key {
            case "nameserver": dns.nameservers.append(rest[0])
            case "domain": dns.domain = rest[0]
            case "search": dns.search += rest
            case "options": dns.options += rest
            default: continue
            }
        }
        return dns
    }
}

extension IPAMError: CNIErrorConvertible {
    /// host-local's error for it: code 7, 106, 105 or 107, the message and details as they are.
    public var cniError: CNIError {
        let code: CNIErrorCode
        switch kind {
        case .invalidConfig: code = .invalidNetworkConfig
        case .addressUnavailable: code = .addressUnavailable
        case .storeFailure: code = .stateStoreFailure
        case .conflict: code = .conflict
        }
        return CNIError(code, msg, details: details)
    }
}
