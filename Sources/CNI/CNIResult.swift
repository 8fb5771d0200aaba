import Base
/// The result of ADD, modelled at spec 1.1.0. ``json(version:)`` prints it in any version;
/// ``init(json:defaultVersion:)`` reads any version.
public struct CNIResult: Sendable, Equatable {
    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]
    public var dns: DNS

    /// A result of interfaces, addresses, routes and DNS (empty by default).
    public init(interfaces: [Interface] = [], ips: [IPConfig] = [], routes: [Route] = [], dns: DNS = DNS()) {
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }

    /// An interface the plugin created or configured.
    public struct Interface: Sendable, Equatable {
        public var name: String
        public var mac: String?
        /// 1.1.0.
        public var mtu: Int?
        /// The CNI_NETNS value for interfaces inside the container; nil for host interfaces.
        public var sandbox: String?
        /// 1.1.0: path of a socket (vhost-user and the like).
        public var socketPath: String?
        /// 1.1.0: PCI address of the device.
        public var pciID: String?

        /// An interface of the result; `sandbox` is the container's netns path (nil on the host).
        public init(
            name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil,
            socketPath: String? = nil, pciID: String? = nil
        ) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
            self.socketPath = socketPath
            self.pciID = pciID
        }
    }

    /// An address assigned to an interface.
    public struct IPConfig: Sendable, Equatable {
        /// The address with its prefix length (`10.1.0.5/24`).
        public var address: IPPrefix
        public var gateway: IPAddress?
        /// Index into ``CNIResult/interfaces``; nil in IPAM results.
        public var interface: Int?

        /// An address with its gateway, on the result's interface `interface`.
        public init(address: IPPrefix, gateway: IPAddress? = nil, interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }
    }

    /// A route. The 1.1.0 fields are nil when not set.
    public struct Route: Sendable, Equatable {
        /// Destination network (host bits cleared).
        public var dst: IPPrefix
        public var gw: IPAddress?
        public var mtu: Int?
        public var advmss: Int?
        public var priority: Int?
        public var table: Int?
        /// 0 global, 253 link, 254 host.
        public var scope: Int?

        /// A route to `dst` (its host bits cleared), via `gw` when given, with the 1.1.0 fields.
        public init(
            dst: IPPrefix, gw: IPAddress? = nil, mtu: Int? = nil, advmss: Int? = nil, priority: Int? = nil,
            table: Int? = nil, scope: Int? = nil
        ) {
            self.dst = dst.network
            self.gw = gw
            self.mtu = mtu
            self.advmss = advmss
            self.priority = priority
            self.table = table
            self.scope = scope
        }
    }

    /// DNS settings for the container.
    public struct DNS: Sendable, Equatable {
        public var nameservers: [String]
        public var domain: String?
        public var search: [String]
        public var options: [String]

        /// DNS settings for the container's resolver.
        public init(nameservers: [String] = [], domain: String? = nil, search: [String] = [], options: [String] = []) {
            self.nameservers = nameservers
            self.domain = domain
            self.search = search
            self.options = options
        }

        public var isEmpty: Bool { nameservers.isEmpty && domain == nil && search.isEmpty && options.isEmpty }
    }
}

// MARK: - Printing

extension CNIResult {
    /// The result as the given spec version prints it, with `cniVersion` first.
    ///
    /// Throws code 1 when the result cannot be expressed in `version`: 0.1.0 and 0.2.0 carry at
    /// most one address per family. Fields a version does not have are left out (interfaces
    /// before 0.3.0; the 1.1.0 interface and route fields before 1.1.0), and so are routes of a
    /// family without an address in 0.1.0/0.2.0, as Go's converter does.
    public func json(version: CNIVersion) throws(CNIError) -> JSONValue {
        var o = JSONObject()
        o["cniVersion"] = .string(version.rawValue)
        switch version.resultFamily {
        case .legacy:
            var v4: IPConfig? = nil
            var v6: IPConfig? = nil
            for ip in ips {
                let taken = ip.address.family == .v4 ? v4 != nil : v6 != nil
                if taken {
                    throw CNIError(
                        .incompatibleVersion, "CNI version \(version) does not support more than 1 address per family",
                        details: "the result has \(ips.filter { $0.address.family == ip.address.family }.count) \(ip.address.family) addresses")
                }
                if ip.address.family == .v4 { v4 = ip } else { v6 = ip }
            }
            for (key, ip) in [("ip4", v4), ("ip6", v6)] {
                guard let ip else { continue }
                var c = JSONObject()
                c["ip"] = .string(ip.address.description)
                if let gw = ip.gateway { c["gateway"] = .string(gw.description) }
                let fam = ip.address.family
                let rs = routes.filter { $0.dst.family == fam }
                if !rs.isEmpty { c["routes"] = .array(rs.map { $0.json(version: version) }) }
                o[key] = .object(c)
            }
        case .versioned, .current:
            if !interfaces.isEmpty { o["interfaces"] = .array(interfaces.map { $0.json(version: version) }) }
            if !ips.isEmpty {
                o["ips"] = .array(
                    ips.map { ip in
                        var c = JSONObject()
                        if version.resultFamily == .versioned {
                            c["version"] = .string(ip.address.family.versionString)
                        }
                        if let i = ip.interface { c["interface"] = .int(i) }
                        c["address"] = .string(ip.address.description)
                        if let gw = ip.gateway { c["gateway"] = .string(gw.description) }
                        return .object(c)
                    })
            }
            if !routes.isEmpty { o["routes"] = .array(routes.map { $0.json(version: version) }) }
        }
        o["dns"] = dns.json
        return .object(o)
    }

    /// The result converted from the JSON of any version to `version`.
    public static func convert(_ json: JSONValue, to version: CNIVersion) throws(CNIError) -> JSONValue {
        try CNIResult(json: json).json(version: version)
    }
}

extension CNIResult.Interface {
    func json(version: CNIVersion) -> JSONValue {
        var o = JSONObject()
        o["name"] = .string(name)
        if let mac { o["mac"] = .string(mac) }
        if version >= .v1_1_0, let mtu { o["mtu"] = .int(mtu) }
        if let sandbox { o["sandbox"] = .string(sandbox) }
        if version >= .v1_1_0 {
            if let socketPath { o["socketPath"] = .string(socketPath) }
            if let pciID { o["pciID"] = .string(pciID) }
        }
        return .object(o)
    }
}

extension CNIResult.Route {
    func json(version: CNIVersion) -> JSONValue {
        var o = JSONObject()
        o["dst"] = .string(dst.description)
        if let gw { o["gw"] = .string(gw.description) }
        if version >= .v1_1_0 {
            if let mtu { o["mtu"] = .int(mtu) }
            if let advmss { o["advmss"] = .int(advmss) }
            if let priority { o["priority"] = .int(priority) }
            if let table { o["table"] = .int(table) }
            if let scope { o["scope"] = .int(scope) }
        }
        return .object(o)
    }
}

extension CNIResult.DNS {
    /// `{}` when empty, as the Go library always prints `"dns":{}`.
    public var json: JSONValue {
        var o = JSONObject()
        if !nameservers.isEmpty { o["nameservers"] = .array(nameservers.map(JSONValue.string)) }
        if let domain { o["domain"] = .string(domain) }
        if !search.isEmpty { o["search"] = .array(search.map(JSONValue.string)) }
        if !options.isEmpty { o["options"] = .array(options.map(JSONValue.string)) }
        return .object(o)
    }

    /// Reads the `dns` object of a result or configuration.
    public init(fields f: Fields) throws(CNIError) {
        self.init(
            nameservers: try f.stringArray("nameservers") ?? [], domain: try f.string("domain"),
            search: try f.stringArray("search") ?? [], options: try f.stringArray("options") ?? [])
    }
}

// MARK: - Reading

extension CNIResult {
    /// Reads a result printed in any supported version. The version is the document's
    /// `cniVersion`, else `defaultVersion`. Wrong types are code 6, unknown versions code 1.
    public init(json: JSONValue, defaultVersion: CNIVersion = .latest, path: String = "result") throws(CNIError) {
        let f = Fields(try json.object(at: path), path: path)
        let version = try f.string("cniVersion").map { v throws(CNIError) in try CNIVersion.negotiate(v) } ?? defaultVersion
        self.init()
        if let d = try f.object("dns") { dns = try DNS(fields: d) }
        switch version.resultFamily {
        case .legacy:
            for key in ["ip4", "ip6"] {
                guard let c = try f.object(key) else { continue }
                guard let addr = try c.prefix("ip") else {
                    throw CNIError(.decodingFailure, "missing \"\(c.pathOf("ip"))\"")
                }
                ips.append(IPConfig(address: addr, gateway: try c.address("gateway")))
                for (i, r) in (try c.array("routes") ?? []).enumerated() {
                    routes.append(try Route(json: r, path: "\(c.pathOf("routes"))[\(i)]"))
                }
            }
        case .versioned, .current:
            for (i, v) in (try f.array("interfaces") ?? []).enumerated() {
                let p = "\(f.pathOf("interfaces"))[\(i)]"
                let c = Fields(try v.object(at: p), path: p)
                guard let name = try c.string("name") else { throw CNIError(.decodingFailure, "missing \"\(p).name\"") }
                interfaces.append(
                    Interface(
                        name: name, mac: try c.string("mac"), mtu: try c.int("mtu", in: 0...Int(Int32.max)),
                        sandbox: try c.string("sandbox"), socketPath: try c.string("socketPath"),
                        pciID: try c.string("pciID")))
            }
            // 0.3.0's text named the key "ip"; every implementation wrote "ips".
            let ipsKey = version == .v0_3_0 && f["ips"] == nil && f["ip"] != nil ? "ip" : "ips"
            for (i, v) in (try f.array(ipsKey) ?? []).enumerated() {
                let p = "\(f.pathOf(ipsKey))[\(i)]"
                let c = Fields(try v.object(at: p), path: p)
                guard let addr = try c.prefix("address") else {
                    throw CNIError(.decodingFailure, "missing \"\(p).address\"")
                }
                if let fam = try c.string("version"), fam != addr.family.versionString {
                    throw Fields.invalid(c.pathOf("version"), .string(fam), "does not match address \(addr)")
                }
                ips.append(
                    IPConfig(
                        address: addr, gateway: try c.address("gateway"),
                        interface: try c.int("interface", in: 0...Int(Int32.max))))
            }
            for (i, r) in (try f.array("routes") ?? []).enumerated() {
                routes.append(try Route(json: r, path: "\(f.pathOf("routes"))[\(i)]"))
            }
        }
    }
}

extension CNIResult.Route {
    /// Reads a route object (`{dst, gw, mtu, advmss, priority, table, scope}`).
    public init(json: JSONValue, path: String) throws(CNIError) {
        let c = Fields(try json.object(at: path), path: path)
        guard let dst = try c.prefix("dst") else { throw CNIError(.decodingFailure, "missing \"\(path).dst\"") }
        let gw = try c.address("gw")
        if let gw, gw.family != dst.family {
            throw Fields.invalid(c.pathOf("gw"), .string(gw.description), "is not of the family of dst \(dst)")
        }
        self.init(
            dst: dst, gw: gw, mtu: try c.int("mtu", in: 0...Int(Int32.max)),
            advmss: try c.int("advmss", in: 0...Int(Int32.max)),
            priority: try c.int("priority", in: 0...Int(UInt32.max)),
            table: try c.int("table", in: 0...Int(UInt32.max)), scope: try c.int("scope", in: 0...255))
    }
}

extension CNIResult {
    /// The addresses a chained plugin acts on: those of interface `ifName` in the sandbox, and
    /// those the result ties to no interface in particular (as the reference plugins read them).
    public func sandboxIPs(_ ifName: String) -> [IPConfig] {
        ips.filter { ip in
            guard let i = ip.interface, i >= 0, i < interfaces.count else { return true }
            return interfaces[i].name == ifName && !(interfaces[i].sandbox?.isEmpty ?? true)
        }
    }
}
