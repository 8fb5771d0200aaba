import Base

/// One network's records as the dnsname plugin writes them: a small line file per network,
/// replaced by atomic rename under a lock.
///
/// ```
/// swift-cni-dns 1
/// domain dns.podman
/// ttl 0
/// internal 0
/// listen 10.88.0.1 fd00:88::1
/// upstreams 192.0.2.53
/// entry <owner tag>[@<container tag>:<ifname>] <ipv4,...|-> <ipv6,...|-> <name,alias,...>
/// ```
///
/// The container tag (the same in all of a container's attachments) and the interface name let
/// the responder answer a container with the names of all of its networks; a responder that
/// predates them reads the first field as the owner tag and answers as before.
public struct NetworkRecords: Sendable, Equatable {
    /// One container's attachment: its addresses and the names they answer to.
    public struct Entry: Sendable, Equatable {
        /// The attachment's owner tag (the plugin's DEL and GC find its lines by it).
        public var owner: String
        public var v4: [IPAddress]
        public var v6: [IPAddress]
        /// Lowercased; the first is the primary name (PTR answers use it).
        public var names: [String]
        /// The container's tag (CNI's `Attachment.containerTag`) and its interface on this network;
        /// nil in entries written before they were recorded.
        public var container: String?
        public var ifName: String?
        /// An entry of `owner` with its addresses and names.
        public init(owner: String, v4: [IPAddress], v6: [IPAddress], names: [String], container: String? = nil, ifName: String? = nil) {
            self.owner = owner
            self.v4 = v4
            self.v6 = v6
            self.names = names
            self.container = container
            self.ifName = ifName
        }

        /// `<owner>[@<container>:<ifname>]`: an interface name never holds ':', a tag never '@'.
        var ownerField: String {
            guard let container, !container.isEmpty else { return owner }
            return "\(owner)@\(container):\(ifName ?? "")"
        }

        init(ownerField f: Substring, v4: [IPAddress], v6: [IPAddress], names: [String]) {
            let parts = f.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            var container: String?, ifName: String?
            if parts.count == 2 {
                let c = parts[1].split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                container = c[0].isEmpty ? nil : String(c[0])
                ifName = c.count == 2 && !c[1].isEmpty ? String(c[1]) : nil
            }
            self.init(owner: String(parts[0]), v4: v4, v6: v6, names: names, container: container, ifName: ifName)
        }
    }

    public var network: String
    public var domain = "dns.podman"
    public var ttl: UInt32 = 0
    /// No forwarding for clients that are only on internal networks.
    public var isInternal = false
    /// The addresses the responder listens on for this network (its gateways).
    public var listen: [IPAddress] = []
    /// Upstream servers; empty: the host's /etc/resolv.conf.
    public var upstreams: [IPAddress] = []
    public var entries: [Entry] = []

    /// Empty records of `network`.
    public init(network: String) { self.network = network }

    public static let magic = "swift-cni-dns 1"

    public var text: String {
        var lines = [Self.magic, "domain \(domain)", "ttl \(ttl)", "internal \(isInternal ? 1 : 0)"]
        lines.append((["listen"] + listen.map(\.description)).joined(separator: " "))
        lines.append((["upstreams"] + upstreams.map(\.description)).joined(separator: " "))
        for e in entries {
            let v4 = e.v4.isEmpty ? "-" : e.v4.map(\.description).joined(separator: ",")
            let v6 = e.v6.isEmpty ? "-" : e.v6.map(\.description).joined(separator: ",")
            lines.append("entry \(e.ownerField) \(v4) \(v6) \(e.names.joined(separator: ","))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a file; nil when it is not one of ours. Malformed lines are skipped and reported.
    public init?(network: String, text: String, problems: inout [String]) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.first.map({ $0 == Self.magic }) == true else { return nil }
        lines.removeFirst()
        self.network = network
        for (n, line) in lines.enumerated() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let key = f.first else { continue }
            switch key {
            case "domain" where f.count == 2 && DNSName(String(f[1])) != nil: domain = String(f[1]).lowercased()
            case "ttl" where f.count == 2 && UInt32(f[1]) != nil: ttl = UInt32(f[1])!
            case "internal" where f.count == 2: isInternal = f[1] == "1"
            case "listen": listen = f.dropFirst().compactMap { IPAddress($0) }
            case "upstreams": upstreams = f.dropFirst().compactMap { IPAddress($0) }
            case "entry" where f.count == 5:
                func addrs(_ s: Substring) -> [IPAddress] { s == "-" ? [] : s.split(separator: ",").compactMap { IPAddress($0) } }
                let names = f[4].split(separator: ",").map { String($0).lowercased() }.filter { DNSName($0) != nil }
                entries.append(Entry(ownerField: f[1], v4: addrs(f[2]), v6: addrs(f[3]), names: names))
            default:
                problems.append("\(network): line \(n + 2) ignored: \(line.prefix(80))")
            }
        }
    }
}

/// Everything the responder knows, indexed for lookups; immutable, replaced as a whole on reload.
public final class Zones: Sendable {
    /// A class: the answering path passes networks around per query, one reference each.
    public final class Network: Sendable {
        public let records: NetworkRecords
        public let domain: DNSName
        /// Lowercased name (relative to the domain) -> entry indices.
        let byName: [DNSName: [Int]]
        let byAddress: [IPAddress: Int]
        /// Entry index -> the PTR target (its first name under the domain), in wire form.
        let ptrTargets: [Int: [UInt8]]
        /// The SOA record of negative answers, made once.
        let soa: [UInt8]

        init(records: NetworkRecords, domain: DNSName, byName: [DNSName: [Int]], byAddress: [IPAddress: Int], ptrTargets: [Int: [UInt8]], soa: [UInt8]) {
            self.records = records
            self.domain = domain
            self.byName = byName
            self.byAddress = byAddress
            self.ptrTargets = ptrTargets
            self.soa = soa
        }
    }

    public let generation: UInt64
    public let networks: [String: Network]
    /// A container address -> the networks of its container (the source of a query): all of
    /// the container's attachments, in the order of its interfaces (eth0 first), then by name.
    let memberOf: [IPAddress: [Network]]
    /// A listen address -> its network.
    let listenerNetworks: [IPAddress: Network]
    /// A listen address -> its network (for sources that are no container).
    public let listenerNetwork: [IPAddress: String]
    /// Every network's domain (with its SOA), each once: a name under one is ours, never
    /// forwarded, also for a client that is not on that network.
    let domains: [(name: DNSName, soa: [UInt8])]

    /// The zones of every network's records, indexed for answering; `generation` counts reloads.
    public init(_ all: [NetworkRecords], generation: UInt64) {
        self.generation = generation
        var nets: [String: Network] = [:]
        typealias Membership = (network: String, ordinal: UInt32)
        var member: [IPAddress: [Membership]] = [:]
        var containerOf: [IPAddress: Set<String>] = [:]
        var attachmentsOf: [String: [Membership]] = [:]  // container tag -> its networks
        var listeners: [IPAddress: String] = [:]
        for r in all.sorted(by: { $0.network < $1.network }) {
            var byName: [DNSName: [Int]] = [:]
            var byAddress: [IPAddress: Int] = [:]
            for (i, e) in r.entries.enumerated() {
                for n in e.names { if let d = DNSName(n) { byName[d.lowercased, default: []].append(i) } }
                let here = (r.network, InterfaceName.ordinal(e.ifName ?? ""))
                if let c = e.container { attachmentsOf[c, default: []].append(here) }
                for a in e.v4 + e.v6 {
                    if byAddress[a] == nil { byAddress[a] = i }
                    member[a, default: []].append(here)
                    if let c = e.container { containerOf[a, default: []].insert(c) }
                }
            }
            for l in r.listen where listeners[l] == nil { listeners[l] = r.network }
            let domain = DNSName(r.domain)?.lowercased ?? DNSName(labels: [])
            var ptr: [Int: [UInt8]] = [:]
            for i in Set(byAddress.values) {
                guard let first = r.entries[i].names.first, let n = DNSName(first) else { continue }
                var wire: [UInt8] = []
                n.appending(domain).write(to: &wire)
                ptr[i] = wire
            }
            nets[r.network] = Network(
                records: r, domain: domain, byName: byName, byAddress: byAddress, ptrTargets: ptr,
                soa: ResponseWriter.soaRecord(zone: domain, ttl: r.ttl))
        }
        networks = nets
        var seen = Set<DNSName>()
        domains = nets.keys.sorted().compactMap { k in
            let n = nets[k]!
            return !n.domain.labels.isEmpty && seen.insert(n.domain).inserted ? (n.domain, n.soa) : nil
        }
        var memberOf: [IPAddress: [Network]] = [:]
        for (a, direct) in member {
            var first: [String: UInt32] = [:]
            for m in direct + (containerOf[a] ?? []).flatMap({ attachmentsOf[$0] ?? [] }) {
                first[m.network] = min(first[m.network] ?? .max, m.ordinal)
            }
            memberOf[a] = first.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.compactMap { nets[$0.key] }
        }
        self.memberOf = memberOf
        listenerNetwork = listeners
        listenerNetworks = listeners.compactMapValues { nets[$0] }
    }

    /// The network served on `listener`.
    public func networkName(listening listener: IPAddress) -> String? { listenerNetwork[listener] }

    /// The networks whose names `source` may see, in the order they are searched: those its
    /// container is attached to, the network of the address it asked first (when it is on it),
    /// then in the order of its interfaces; a source that is no container sees only the network
    /// of the address it asked. Also whether `source` is a container of some network (only
    /// those get forwarding).
    public func visibility(source: IPAddress, listener: IPAddress) -> (networks: [Network], member: Bool) {
        if var m = memberOf[source] {
            if m.count > 1, let asked = listenerNetworks[listener], let i = m.firstIndex(where: { $0 === asked }), i > 0 {
                m.insert(m.remove(at: i), at: 0)
            }
            return (m, true)
        }
        if let net = listenerNetworks[listener] { return ([net], false) }
        return ([], false)
    }

    /// Every listen address.
    public var listenAddresses: [IPAddress] { Array(listenerNetwork.keys).sorted() }
}
