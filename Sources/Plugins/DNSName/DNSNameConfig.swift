import Base
import CNI
import DNS

/// The dnsname plugin's configuration, decoded and validated with no I/O.
struct DNSNameConfig {
    var domain = "dns.podman"
    var runDir = "/run/cni/dns"
    var ttl: UInt32 = 0
    var isInternal = false
    var upstreams: [IPAddress] = []
    /// `runtimeConfig.aliases[<network>]` (capability `aliases`).
    var aliases: [String] = []
    /// Responder options, used when this ADD starts it: UDP queries a second per source (0: no
    /// limit) and the address of the Prometheus endpoint (none unless set).
    var rateLimit: Int?
    var metricsAddress: (host: IPAddress, port: Int)?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        if let d = try f.string("domainName"), !d.isEmpty {
            guard let n = DNSName(d), !n.labels.isEmpty, n.labels.allSatisfy(DNSNameConfig.isHostnameLabel) else {
                throw Fields.invalid("domainName", .string(d), "must be a DNS name of letters, digits, '-' and '_'")
            }
            domain = d.lowercased().hasSuffix(".") ? String(d.lowercased().dropLast()) : d.lowercased()
        }
        if let r = try f.string("runDir"), !r.isEmpty {
            guard r.hasPrefix("/") else { throw Fields.invalid("runDir", .string(r), "must be an absolute path") }
            runDir = r
        }
        ttl = UInt32(try f.int("ttl", in: 0...86400) ?? 0)
        isInternal = try f.bool("internal") ?? false
        for (i, s) in (try f.stringArray("upstreams") ?? []).enumerated() {
            guard let a = IPAddress(s) else { throw Fields.invalid("upstreams[\(i)]", .string(s), "not an IP address") }
            upstreams.append(a)
        }
        rateLimit = try f.int("rateLimit", in: 0...10_000_000)
        if let m = try f.string("metricsAddress"), !m.isEmpty {
            guard let a = IPAddress.parseHostPort(m) else {
                throw Fields.invalid("metricsAddress", .string(m), "must be ADDRESS:PORT, e.g. 127.0.0.1:9153 or [::1]:9153")
            }
            metricsAddress = a
        }
        if let map = try conf.runtimeConfig.object("aliases") {
            aliases = try map.stringArray(conf.name) ?? []
        }
        if forAdd { try args.checkCNIArgs(known: ["K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IP", "MAC"]) }
    }

    /// The responder's command-line options for what this configuration sets.
    var daemonOptions: [String] {
        var o: [String] = []
        if let r = rateLimit { o += ["--rate-limit", String(r)] }
        if let m = metricsAddress { o += ["--metrics", m.host.family == .v6 ? "[\(m.host)]:\(m.port)" : "\(m.host):\(m.port)"] }
        return o
    }

    static func isHostnameLabel(_ l: [UInt8]) -> Bool {
        !l.isEmpty && l.count <= 63 && l.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || $0 == 45 || $0 == 95 }
    }

    /// The container's names: K8S_POD_NAME, the aliases, the 12-character short ID; lowercased,
    /// each a valid DNS name (code 7 naming the one that is not).
    func names(_ ctx: PluginContext) throws(CNIError) -> [String] {
        var out: [String] = []
        func add(_ n: String, _ field: String) throws(CNIError) {
            let l = n.lowercased()
            guard let d = DNSName(l), !d.labels.isEmpty, d.labels.allSatisfy(DNSNameConfig.isHostnameLabel) else {
                throw Fields.invalid(field, .string(n), "not a DNS name (letters, digits, '-', '_', dots between labels)")
            }
            if !out.contains(l) { out.append(l) }
        }
        if let pod = ctx.args.cniArg("K8S_POD_NAME"), !pod.isEmpty { try add(pod, "CNI_ARGS K8S_POD_NAME") }
        for (i, a) in aliases.enumerated() { try add(a, "runtimeConfig.aliases.\(ctx.config.name)[\(i)]") }
        let id = ctx.args.containerID.lowercased()
        if id.count >= 12, id.prefix(12).allSatisfy({ $0.isHexDigit }) { try add(String(id.prefix(12)), "CNI_CONTAINERID") }
        if out.isEmpty { try add(String(id.prefix(63)), "CNI_CONTAINERID") }
        return out
    }

    /// The owner tag of an attachment in the records (as the firewall tags of the other plugins).
    static func owner(network: String, _ args: CommandArgs) -> String {
        owner(network: network, containerID: args.containerID, ifName: args.ifName)
    }
    static func owner(network: String, containerID: String, ifName: String) -> String {
        Attachment(containerID: containerID, ifName: ifName).ownerTag(network: network)
    }

    /// Every address of CNI_IFNAME in the sandbox (or of no interface in particular).
    static func containerIPs(_ prev: CNIResult, ifName: String) -> [IPAddress] {
        prev.sandboxIPs(ifName).map(\.address.address)
    }

    /// The gateways of those addresses: where the responder listens.
    static func gateways(_ prev: CNIResult, ifName: String) -> [IPAddress] {
        var out: [IPAddress] = []
        for ip in prev.sandboxIPs(ifName) { if let g = ip.gateway, !out.contains(g) { out.append(g) } }
        return out
    }
}
