import Base
import CNI

/// The flannel meta plugin's configuration, as flannel-io/cni-plugin reads it: where the
/// agent's subnet file is, where the delegates' configurations are kept, the user's `delegate`
/// keys and `ipam` base. Decoded and validated with no file read.
struct FlannelConfig {
    var subnetFile = "/run/flannel/subnet.env"
    var dataDir = "/var/lib/cni/flannel"
    /// The user's keys for the delegate (`type` defaults to bridge); never `name` or `ipam`.
    var delegate = JSONObject()
    /// The base of the delegate's IPAM (`type` defaults to host-local; ranges come from the
    /// subnet file, routes are added to its own).
    var ipam = JSONObject()

    init(_ conf: NetConf) throws(CNIError) {
        let f = conf.fields
        if let p = try f.string("subnetFile"), !p.isEmpty { subnetFile = p }
        if let p = try f.string("dataDir"), !p.isEmpty {
            guard p.hasPrefix("/") else { throw Fields.invalid("dataDir", .string(p), "must be an absolute path") }
            dataDir = p
        }
        if let d = try f.object("delegate") {
            if let t = d.object["type"], t.stringValue == nil {
                throw Fields.invalid("delegate.type", t, "must be a string: the plugin flannel delegates to")
            }
            for key in ["name", "ipam"] where d.object[key] != nil {
                throw Fields.invalid("delegate.\(key)", d.object[key]!, "must not be set: flannel sets it")
            }
            delegate = d.object
        }
        if let i = try f.object("ipam") { ipam = i.object }
        if let r = ipam["routes"], r.arrayValue == nil { throw Fields.invalid("ipam.routes", r, "must be an array of routes") }
    }
}

/// The agent's subnet file (`/run/flannel/subnet.env`: flanneld or cni-overlayd writes it): the
/// cluster's networks, this host's subnets, the MTU and whether the agent masquerades.
struct SubnetEnv: Equatable {
    var networks: [IPPrefix] = []
    var subnet: IPPrefix?
    var ipv6Networks: [IPPrefix] = []
    var ipv6Subnet: IPPrefix?
    var mtu: Int?
    var ipMasq: Bool?

    /// Reads `path`: code 11 (try again later) while it is not there or lacks a key (the agent
    /// has not written it yet), 6 when a value does not parse, naming the key.
    static func read(_ path: String) throws(CNIError) -> SubnetEnv {
        let bytes: [UInt8]
        do {
            bytes = try System.readFile(path, limit: 1 << 20)
        } catch {
            throw CNIError(
                .tryAgainLater, "no flannel subnet file \(path) yet",
                details: "\(error); the node's agent (flanneld or cni-overlayd) writes it once it holds a subnet")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// The keys of `text` (KEY=VALUE lines; unknown keys are ignored, as flannel does).
    static func parse(_ text: String, path: String) throws(CNIError) -> SubnetEnv {
        var env = SubnetEnv()
        func bad(_ key: String, _ value: Substring) -> CNIError {
            CNIError(.decodingFailure, "invalid \(key) \"\(value)\" in \(path)", details: "expected what flannel writes there")
        }
        func prefixes(_ key: String, _ value: Substring) throws(CNIError) -> [IPPrefix] {
            var out: [IPPrefix] = []
            for part in value.split(separator: ",") {
                guard let p = IPPrefix(String(String(part).trimmingWhitespace())) else { throw bad(key, value) }
                if !out.contains(p.network) { out.append(p.network) }
            }
            return out
        }
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(String(line[..<eq]).trimmingWhitespace())
            let value = line[line.index(after: eq)...]
            switch key {
            case "FLANNEL_NETWORK": env.networks = try prefixes(key, value)
            case "FLANNEL_IPV6_NETWORK": env.ipv6Networks = try prefixes(key, value)
            case "FLANNEL_SUBNET":
                guard let p = IPPrefix(String(String(value).trimmingWhitespace())) else { throw bad(key, value) }
                env.subnet = p.network
            case "FLANNEL_IPV6_SUBNET":
                guard let p = IPPrefix(String(String(value).trimmingWhitespace())) else { throw bad(key, value) }
                env.ipv6Subnet = p.network
            case "FLANNEL_MTU":
                guard let m = Int(String(value).trimmingWhitespace()), (0...Int(UInt32.max)).contains(m) else { throw bad(key, value) }
                env.mtu = m
            case "FLANNEL_IPMASQ": env.ipMasq = String(value).trimmingWhitespace() == "true"
            default: continue
            }
        }
        var missing: [String] = []
        if env.networks.isEmpty && env.ipv6Networks.isEmpty { missing += ["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"] }
        if env.subnet == nil && env.ipv6Subnet == nil { missing += ["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"] }
        if env.mtu == nil { missing.append("FLANNEL_MTU") }
        if env.ipMasq == nil { missing.append("FLANNEL_IPMASQ") }
        if !missing.isEmpty {
            throw CNIError(.tryAgainLater, "\(path) is missing \(missing.joined(separator: ", "))", details: "the node's agent has not finished writing it")
        }
        return env
    }
}
