import Base
import CNI
import NFTables

#if canImport(Glibc)
    import Glibc
#endif

/// Host ports in nftables. The rules are fixed; each mapping is one map element, so the cost of
/// a packet and of an ADD does not grow with the number of containers:
///
/// ```
/// table inet swift_cni_portmap {
///     map dnat4 { type inet_proto . inet_service : ipv4_addr . inet_service; }            # any host address
///     map dnat4_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }  # hostIP set
///     map dnat6 ... map dnat6_addr ...
///     map snat4 { type ipv4_addr : verdict; }     # container address -> jump <its subnet's chain>
///     map snat6 { type ipv6_addr : verdict; }
///     chain prerouting { type nat hook prerouting priority dstnat; policy accept;
///         fib daddr type local jump hostports }    # only traffic to this host's own addresses
///     chain output { type nat hook output priority -100; policy accept;
///         fib daddr type local jump hostports }
///     chain hostports {
///         meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @dnat4_addr
///         meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4
///         ... the same for ipv6 }
///     chain postrouting { type nat hook postrouting priority srcnat; policy accept;
///         ct status dnat ip daddr vmap @snat4
///         ct status dnat ip6 daddr vmap @snat6 }
///     chain snat-<hash of attachment and subnet> { # snat: localhost, hairpin and the same network
///         ip saddr 127.0.0.0/8 masquerade
///         ip saddr <subnet> masquerade }           # masqAll: just "masquerade"
/// }
/// ```
///
/// Every element carries `<owner tag> <container tag> <container id>/<ifname> <network>` as its
/// comment, the owner tag as every plugin makes it (``CNI/Attachment/ownerTag(network:)``), so DEL and GC find an attachment's elements
/// without its mappings and a conflict names the owner.
///
/// A container on several networks asks for the same host ports through each of its interfaces
/// (podman passes a container's mappings to every network). A map key holds one element, so the
/// first attachment's mapping is active and the others wait in a standby map (`dnat4_standby`
/// beside `dnat4`, keyed by the active key and the container address, made when first needed);
/// when the active attachment goes (DEL, GC), one transaction puts a standby of the same
/// container in its place, so the port keeps working while any of those attachments lives.
public enum PortMap {
    public static let table = TableRef(.inet, "swift_cni_portmap")
    static let hostports = "hostports"
    static let postrouting = "postrouting"

    /// One host port forwarded to a container address.
    public struct Mapping: Sendable, Hashable, CustomStringConvertible {
        public var hostPort: UInt16
        public var containerPort: UInt16
        /// TCP, UDP or SCTP.
        public var proto: IPProtocol
        /// Only traffic to this host address; nil for any.
        public var hostIP: IPAddress?
        public var container: IPAddress

        /// A mapping of `hostPort` (on `hostIP`, or any) to `containerPort` of `container`.
        public init(hostPort: UInt16, containerPort: UInt16, proto: IPProtocol, hostIP: IPAddress?, container: IPAddress) {
            self.hostPort = hostPort
            self.containerPort = containerPort
            self.proto = proto
            self.hostIP = hostIP
            self.container = container
        }

        public var family: IPFamily { container.family }
        public var map: String { PortMap.dnatMap(family, byAddress: hostIP != nil) }
        public var key: [FieldValue] {
            (hostIP.map { [.address($0)] } ?? []) + [.proto(proto), .port(hostPort)]
        }
        /// The key of this mapping in the standby map of ``map``.
        var standbyKey: [FieldValue] { key + [.address(container)] }
        var value: [FieldValue] { [.address(container), .port(containerPort)] }
        /// `[<hostIP>:]<port>/<proto>`, as the errors name it.
        public var hostDescription: String {
            let ip = hostIP.map { $0.family == .v6 ? "[\($0)]:" : "\($0):" } ?? ""
            return "\(ip)\(hostPort)/\(FieldValue.proto(proto))"
        }
        public var description: String {
            "\(hostDescription) -> \(container.family == .v6 ? "[\(container)]" : container.description):\(containerPort)"
        }
    }

    /// Another attachment owns a host port this ADD asked for.
    public struct Conflict: Error, Sendable {
        public let mapping: Mapping
        public let owner: String
        public let target: String
    }

    /// The name of the DNAT map of family `f`: the one keyed by host address too when `byAddress`.
    public static func dnatMap(_ f: IPFamily, byAddress: Bool) -> String {
        (f == .v4 ? "dnat4" : "dnat6") + (byAddress ? "_addr" : "")
    }
    static func snatMap(_ f: IPFamily) -> String { f == .v4 ? "snat4" : "snat6" }
    /// Where mappings of a host port that another attachment of the same container holds in
    /// `map` wait.
    public static func standbyMap(_ map: String) -> String { map + "_standby" }
    static let dnatMaps = [IPFamily.v4, .v6].flatMap { f in [true, false].map { (f, $0) } }

    static func type(_ f: IPFamily, byAddress: Bool) -> MapType {
        let addr: FieldType = f == .v4 ? .ipv4 : .ipv6
        return MapType(key: (byAddress ? [addr] : []) + [.proto, .port], value: [addr, .port])
    }

    static func standbyType(_ f: IPFamily, byAddress: Bool) -> MapType {
        let t = type(f, byAddress: byAddress)
        return MapType(key: t.key + [f == .v4 ? .ipv4 : .ipv6], value: t.value)
    }

    /// The chain that masquerades translated connections to attachment `a`'s address in
    /// `subnet`: one per attachment and family, so it goes with the attachment's element in one
    /// transaction, and a DEL never has to find out whether another container still uses it.
    public static func snatChain(network: String, _ a: Attachment, subnet: IPPrefix, masqAll: Bool) -> String {
        "snat-" + Attachment.shortHash(network, a.containerID, a.ifName, subnet.network.description, masqAll ? "all" : "local")
    }

    /// The comment of an attachment's elements: the owner tag first, then the container's tag
    /// (what tells that two attachments are the same container's); at most 128 bytes, nft's own
    /// limit for comments.
    public static func comment(network: String, _ a: Attachment) -> String {
        "\(a.ownerTag(network: network)) \(a.containerTag) \(a.containerID.prefix(12))/\(a.ifName) \(network.prefix(48))"
    }

    /// The owner tag at the start of a comment.
    static func owner(_ comment: String) -> Substring { comment.prefix { $0 != " " } }

    /// The container tag of a comment; nil in comments written before there was one.
    static func container(_ comment: String) -> Substring? {
        let parts = comment.split(separator: " ", maxSplits: 2)
        guard parts.count == 3, parts[1].utf8.count == 16, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        return parts[1]
    }

    /// The order of the interface a comment names (``InterfaceName/ordinal(_:)``).
    static func ordinal(_ comment: String) -> UInt32 {
        let parts = comment.split(separator: " ", maxSplits: 3)
        let who = parts.count > 2 ? parts[container(comment) != nil ? 2 : 1] : ""
        return InterfaceName.ordinal(String(who.split(separator: "/", maxSplits: 1).last ?? ""))
    }

    /// "container <id> (<ifname>) of network <name>" from a comment.
    static func ownerDescription(_ comment: String) -> String {
        var parts = comment.split(separator: " ", maxSplits: 3)
        if container(comment) != nil { parts.remove(at: 1) }
        guard parts.count >= 2 else { return "an attachment tagged \(comment)" }
        let who = parts[1].split(separator: "/", maxSplits: 1)
        let network = parts.count > 2 ? " on network \"\(parts[2...].joined(separator: " "))\"" : ""
        return "container \(who[0])" + (who.count > 1 ? " (\(who[1]))" : "") + network
    }

    /// The element's owner is attachment `tag` or another attachment of container `ctag`.
    static func sameContainer(_ comment: String, tag: String, ctag: String) -> Bool {
        owner(comment) == tag || container(comment).map { $0 == ctag } ?? false
    }

    /// Table, maps, base chains and fixed rules in one transaction that fails with EEXIST when
    /// the table exists, so racing ADDs never both add the rules.
    public static func skeleton() -> Batch {
        var b = Batch()
        b.addTable(table, exclusive: true)
        var id: UInt32 = 0
        var ids: [String: UInt32] = [:]
        for f in [IPFamily.v4, .v6] {
            for byAddress in [true, false] {
                id += 1
                ids[dnatMap(f, byAddress: byAddress)] = id
                b.addMap(table, dnatMap(f, byAddress: byAddress), type(f, byAddress: byAddress), id: id)
            }
            id += 1
            ids[snatMap(f)] = id
            b.addVerdictMap(table, snatMap(f), key: f == .v4 ? .ipv4 : .ipv6, id: id)
        }
        b.addChain(table, hostports)
        for f in [IPFamily.v4, .v6] {
            for byAddress in [true, false] {  // a mapping for one host address wins over "any"
                let m = dnatMap(f, byAddress: byAddress)
                b.addRule(table, hostports, .dnatMap(f, map: m, byAddress: byAddress), setID: ids[m])
            }
        }
        b.addChain(table, "prerouting", hook: .natPrerouting)
        b.addRule(table, "prerouting", .jumpIfLocalDestination(chain: hostports))
        b.addChain(table, "output", hook: .natOutput)
        b.addRule(table, "output", .jumpIfLocalDestination(chain: hostports))
        b.addChain(table, postrouting, hook: .natPostrouting)
        for f in [IPFamily.v4, .v6] {
            b.addRule(table, postrouting, .dnatDestinationVerdictMap(f, map: snatMap(f)), setID: ids[snatMap(f)])
        }
        return b
    }

    /// The snat chains not in `existing`, the mappings, and (when `snat`) the container
    /// addresses' snat elements. `subnets` are the container addresses with their prefix length.
    /// The mappings in `standby` go to the standby maps (made if missing), their keys in
    /// `replacingStandby` deleted first.
    public static func addBatch(
        network: String, _ a: Attachment, mappings: [Mapping], subnets: [IPPrefix], snat: Bool, masqAll: Bool,
        existing: Set<String> = [], skipping: Set<[FieldValue]> = [], replacing: [IPFamily: [ElementKey]] = [:],
        standby: [Mapping] = [], replacingStandby: [Mapping] = []
    ) -> Batch {
        var b = Batch()
        let comment = comment(network: network, a)
        let snatted = snat ? subnets.filter { p in mappings.contains { $0.container == p.address } } : []
        var made = Set<String>()
        for p in snatted {
            let c = snatChain(network: network, a, subnet: p, masqAll: masqAll)
            guard !existing.contains(c), made.insert(c).inserted else { continue }
            b.addChain(table, c)
            b.flushChain(table, c)
            if masqAll {
                b.addRule(table, c, .masquerade)
            } else {
                if p.family == .v4 { b.addRule(table, c, .sourceMasquerade(IPPrefix("127.0.0.0/8")!)) }
                b.addRule(table, c, .sourceMasquerade(p.network))
            }
        }
        var byMap: [String: [MapElement]] = [:]
        var order: [String] = []
        for m in mappings where !skipping.contains(m.key + [.address(m.container)]) {
            if byMap[m.map] == nil { order.append(m.map) }
            byMap[m.map, default: []].append(MapElement(key: m.key, value: m.value, comment: comment))
        }
        for f in [IPFamily.v4, .v6] {
            b.deleteElements(table, snatMap(f), replacing[f] ?? [])
            let els = snatted.filter { $0.family == f && !skipping.contains([.address($0.address)]) }.map {
                VerdictElement(key: .address($0.address), jump: snatChain(network: network, a, subnet: $0, masqAll: masqAll), comment: comment)
            }
            b.addElements(table, snatMap(f), els)
        }
        for m in order { b.addElements(table, m, byMap[m]!) }
        for (i, (f, byAddress)) in dnatMaps.enumerated() {
            let map = dnatMap(f, byAddress: byAddress)
            let waiting = standby.filter { $0.map == map }
            guard !waiting.isEmpty else { continue }
            b.addMap(table, standbyMap(map), standbyType(f, byAddress: byAddress), id: 100 + UInt32(i))  // kept if there
            b.deleteElements(table, standbyMap(map), keys: replacingStandby.filter { $0.map == map }.map(\.standbyKey))
            b.addElements(table, standbyMap(map), waiting.map { MapElement(key: $0.standbyKey, value: $0.value, comment: comment) })
        }
        return b
    }

    /// Adds the mappings of attachment `a`. A host port another attachment holds (same protocol,
    /// and the same host address or "any" on either side) throws ``Conflict``; what this
    /// attachment already holds is kept, so a repeated ADD is idempotent.
    public static func add(
        _ s: NFTSocket, network: String, _ a: Attachment, mappings: [Mapping], subnets: [IPPrefix], snat: Bool,
        masqAll: Bool, attempt: Int = 0
    ) throws -> Void {
        guard !mappings.isEmpty else { return }
        let counts = try s.ensureTable(table, also: snat ? subnets.map { snatChain(network: network, a, subnet: $0, masqAll: masqAll) } : [], skeleton)
        let tag = a.ownerTag(network: network)
        let ctag = a.containerTag
        // "Any address" and one address of the same port exclude each other: look in the other map.
        // The by-address maps are small (hostIP is rare); the "any" maps are only read for hostIP.
        // The same container's other attachments are no conflict.
        for f in [IPFamily.v4, .v6] {
            let mine = mappings.filter { $0.family == f }
            for byAddress in [true, false] where mine.contains(where: { ($0.hostIP == nil) == byAddress }) {
                let els = try s.elements(table, dnatMap(f, byAddress: byAddress), type(f, byAddress: byAddress))
                for el in els where !sameContainer(el.comment, tag: tag, ctag: ctag) {
                    let port = Array(el.key.suffix(2))
                    if let m = mine.first(where: { ($0.hostIP == nil) == byAddress && Array($0.key.suffix(2)) == port }) {
                        throw Conflict(mapping: m, owner: ownerDescription(el.comment), target: FieldValue.text(el.value))
                    }
                }
            }
        }
        // A snat chain that lost its rules (fewer than the batch would write) is made again.
        var existing = Set<String>()
        if snat {
            let full = addBatch(network: network, a, mappings: mappings, subnets: subnets, snat: true, masqAll: masqAll).layout
            for (c, n) in full where (counts[c] ?? 0) >= n { existing.insert(c) }
        }
        let batch = addBatch(network: network, a, mappings: mappings, subnets: subnets, snat: snat, masqAll: masqAll, existing: existing)
        do {
            try s.apply(batch)
            return
        } catch {
            if error.errno == ENOENT && attempt < 5 && !existing.isEmpty {
                // A snat chain went with its last element (a DEL or GC) after it was counted.
                return try add(s, network: network, a, mappings: mappings, subnets: subnets, snat: snat, masqAll: masqAll, attempt: attempt + 1)
            }
            guard error.errno == EEXIST || error.errno == EBUSY else { throw error }
        }
        // Some key exists: ours (a repeated ADD) is kept, another attachment of the same container
        // makes ours a standby, another owner's host port is a conflict, another owner's
        // container address (a leaked snat element) is ours now.
        var skipping = Set<[FieldValue]>()
        var standby: [Mapping] = [], replacingStandby: [Mapping] = []
        for m in mappings {
            guard let el = try s.element(table, m.map, type(m.family, byAddress: m.hostIP != nil), key: m.key) else { continue }
            skipping.insert(m.standbyKey)
            if owner(el.comment) == tag && el.value == m.value { continue }
            guard owner(el.comment) != tag, container(el.comment).map { $0 == ctag } == true else {
                throw Conflict(
                    mapping: m, owner: owner(el.comment) == tag ? "this attachment" : ownerDescription(el.comment),
                    target: FieldValue.text(el.value))
            }
            let waiting = try s.element(table, standbyMap(m.map), standbyType(m.family, byAddress: m.hostIP != nil), key: m.standbyKey)
            if let waiting, owner(waiting.comment) == tag, waiting.value == m.value { continue }
            standby.append(m)
            if waiting != nil { replacingStandby.append(m) }
        }
        var replacing: [IPFamily: [ElementKey]] = [:]
        for f in [IPFamily.v4, .v6] where snat {
            let addresses = Set(subnets.filter { $0.family == f }.map { ElementKey.address($0.address) })
            for el in try s.elements(table, snatMap(f), f == .v4 ? .ipv4 : .ipv6) where addresses.contains(el.key) {
                if owner(el.comment) == tag, case .address(let addr) = el.key {
                    skipping.insert([.address(addr)])
                } else {
                    replacing[f, default: []].append(el.key)
                }
            }
        }
        try s.apply(
            addBatch(
                network: network, a, mappings: mappings, subnets: subnets, snat: snat, masqAll: masqAll,
                existing: existing, skipping: skipping, replacing: replacing, standby: standby,
                replacingStandby: replacingStandby))
    }

    /// The mappings attachment `a` holds (read from the maps), active or standing by.
    public static func mappings(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) -> [Mapping] {
        let tag = a.ownerTag(network: network)
        return try (all(s) + allStandby(s)).filter { owner($0.comment) == tag }.map(\.mapping)
    }

    /// The mappings attachment `a` has in the standby maps.
    public static func standbyMappings(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) -> [Mapping] {
        let tag = a.ownerTag(network: network)
        return try allStandby(s).filter { owner($0.comment) == tag }.map(\.mapping)
    }

    /// Deletes the active elements in `going` (listed from `map`) and puts in the place of each
    /// the first of `waiting` (the standby elements of that map) whose key extends it and that
    /// `keep` accepts; deletes the standby elements that `keep` refuses.
    static func promote(
        _ b: inout Batch, map: String, going: [MapElement], waiting: [MapElement], keep: (String) -> Bool
    ) {
        b.deleteElements(table, map, keys: going.map(\.key))
        b.deleteElements(table, standbyMap(map), keys: waiting.filter { !keep($0.comment) }.map(\.key))
        var promoted: [MapElement] = []
        for el in going {
            // The container's first interface (as routes prefer it: eth1 before eth2).
            let next = waiting.filter { Array($0.key.dropLast()) == el.key && keep($0.comment) }
                .min { (ordinal($0.comment), $0.comment) < (ordinal($1.comment), $1.comment) }
            guard let next else { continue }
            b.deleteElements(table, standbyMap(map), keys: [next.key])
            promoted.append(MapElement(key: el.key, value: next.value, comment: next.comment))
        }
        b.addElements(table, map, promoted)
    }

    /// Removes every element of attachment `a` (found by tag); returns the mappings removed.
    @discardableResult
    public static func remove(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) -> [Mapping] {
        let tag = a.ownerTag(network: network)
        return try removeWhere(s, orphans: false) { owner($0) == tag }
    }

    /// A host port as a runtime names it: protocol, port, and the host address (nil for any).
    public struct HostPort: Sendable, Hashable {
        public var proto: IPProtocol
        public var port: UInt16
        public var hostIP: IPAddress?
        /// Host port `port` of `proto`, on `hostIP` or any.
        public init(proto: IPProtocol, port: UInt16, hostIP: IPAddress?) {
            self.proto = proto
            self.port = port
            self.hostIP = hostIP
        }

        /// The maps and keys a mapping of this host port may have (either family for any address).
        var candidates: [(map: String, type: MapType, key: [FieldValue])] {
            if let ip = hostIP {
                return [(dnatMap(ip.family, byAddress: true), PortMap.type(ip.family, byAddress: true), [.address(ip), .proto(proto), .port(port)])]
            }
            return [IPFamily.v4, .v6].map { (dnatMap($0, byAddress: false), PortMap.type($0, byAddress: false), [.proto(proto), .port(port)]) }
        }
    }

    /// DEL with the host ports the runtime passes (the same as at ADD, as the spec requires):
    /// each of attachment `a`'s elements is found by its key, so the cost does not grow with the
    /// mappings of the host; elements of other owners are never touched. The snat elements of
    /// the removed mappings' container addresses (and of `containers`, prevResult's) go too, and
    /// a snat chain with its last reference. One transaction.
    @discardableResult
    public static func remove(
        _ s: NFTSocket, network: String, _ a: Attachment, hostPorts: [HostPort], containers: [IPAddress] = []
    ) throws(NFTError) -> [Mapping] {
        let tag = a.ownerTag(network: network)
        var gone: [Mapping] = []
        // The snat chains are the attachment's own and go along. One that another element
        // still used (a leaked element of an earlier attachment of the same name) would fail
        // the transaction with EBUSY naming it: it is then applied again without that chain.
        var kept = Set<String>()
        func build() throws(NFTError) -> Batch {
            var b = Batch()
            gone = []
            var seen = Set<String>()
            // The standby maps are small (only containers on several networks): listed, since a
            // successor is found by the first part of its key.
            var waiting: [String: [MapElement]] = [:]
            for hp in hostPorts {
                for c in hp.candidates where seen.insert("\(c.map) \(FieldValue.text(c.key))").inserted {
                    if waiting[c.map] == nil {
                        let byAddress = c.key.count == 3, f: IPFamily = c.map.hasPrefix("dnat4") ? .v4 : .v6
                        waiting[c.map] = try s.elements(table, standbyMap(c.map), standbyType(f, byAddress: byAddress))
                    }
                    let candidates = waiting[c.map]!.filter { Array($0.key.dropLast()) == c.key }
                    let el = try s.element(table, c.map, c.type, key: c.key)
                    let mine = el.map { owner($0.comment) == tag } ?? false
                    promote(&b, map: c.map, going: mine ? [el!] : [], waiting: candidates) { owner($0) != tag }
                    if mine { gone.append(Listed(map: c.map, element: el!).mapping) }
                    gone += candidates.filter { owner($0.comment) == tag }.map { Listed(map: standbyMap(c.map), element: $0).mapping }
                }
            }
            var refs: [String: Int] = [:]  // chain -> our elements that jump to it
            for addr in Set(gone.map(\.container) + containers) {
                guard let el = try s.element(table, snatMap(addr.family), addr.family == .v4 ? .ipv4 : .ipv6, key: .address(addr)),
                    owner(el.comment) == tag
                else { continue }
                b.deleteElements(table, snatMap(addr.family), [el.key])
                refs[el.jump, default: 0] += 1
            }
            b.deleteChains(table, refs.keys.filter { $0.hasPrefix("snat-") && !kept.contains($0) })
            return b
        }
        for attempt in 1...8 {
            do {
                try s.apply(try build())
                return gone
            } catch {
                // The failed message names the chain another element still uses.
                let busy = error.errno == EBUSY && error.operation.hasPrefix("delete chain ")
                if attempt == 8 || !(error.errno == ENOENT || busy) { throw error }
                if busy, let c = error.operation.split(separator: " ").last { kept.insert(String(c)) }
            }
        }
        return gone
    }

    /// GC: removes the network's elements whose attachment is not in `valid`.
    @discardableResult
    public static func collect(_ s: NFTSocket, network: String, valid: [Attachment]) throws(NFTError) -> [Mapping] {
        let prefix = Attachment.networkTag(network) + ":"
        let keep = Set(valid.map { $0.ownerTag(network: network) })
        return try removeWhere(s, orphans: true) { $0.hasPrefix(prefix) && !keep.contains(String(owner($0))) }
    }

    struct Listed {
        var map: String
        var element: MapElement
        var comment: String { element.comment }
        var mapping: Mapping {
            // A standby key is the active key and the container address.
            let key = map.hasSuffix("_standby") ? Array(element.key.dropLast()) : element.key
            let byAddress = key.count == 3
            var hostIP: IPAddress?
            if byAddress, case .address(let a) = key[0] { hostIP = a }
            var proto: IPProtocol = 0
            var hostPort: UInt16 = 0
            var container = IPAddress(family: .v4, bits: 0)
            var containerPort: UInt16 = 0
            if case .proto(let p) = key[key.count - 2] { proto = p }
            if case .port(let p) = key[key.count - 1] { hostPort = p }
            if case .address(let c) = element.value[0] { container = c }
            if case .port(let p) = element.value[1] { containerPort = p }
            return Mapping(hostPort: hostPort, containerPort: containerPort, proto: proto, hostIP: hostIP, container: container)
        }
    }

    /// Every active mapping element of the table.
    static func all(_ s: NFTSocket) throws(NFTError) -> [Listed] {
        var out: [Listed] = []
        for (f, byAddress) in dnatMaps {
            let m = dnatMap(f, byAddress: byAddress)
            out += try s.elements(table, m, type(f, byAddress: byAddress)).map { Listed(map: m, element: $0) }
        }
        return out
    }

    /// Every standby mapping element of the table (none while no standby map exists).
    static func allStandby(_ s: NFTSocket) throws(NFTError) -> [Listed] {
        var out: [Listed] = []
        for (f, byAddress) in dnatMaps {
            let m = standbyMap(dnatMap(f, byAddress: byAddress))
            out += try s.elements(table, m, standbyType(f, byAddress: byAddress)).map { Listed(map: m, element: $0) }
        }
        return out
    }

    /// One transaction: the elements, and the snat chains they leave without an element (all
    /// such chains with `orphans`), race-safe as the masquerade layout removes its subnet chains.
    static func removeWhere(_ s: NFTSocket, orphans: Bool, _ predicate: (String) -> Bool) throws(NFTError) -> [Mapping] {
        var gone: [Listed] = []
        try s.applyListing(also: [EBUSY]) { () throws(NFTError) -> Batch in
            var b = Batch()
            let active = try all(s), waiting = try allStandby(s)
            gone = active.filter { predicate($0.comment) } + waiting.filter { predicate($0.comment) }
            for (f, byAddress) in dnatMaps {
                let map = dnatMap(f, byAddress: byAddress)
                let going = active.filter { $0.map == map && predicate($0.comment) }.map(\.element)
                let standing = waiting.filter { $0.map == standbyMap(map) }.map(\.element)
                promote(&b, map: map, going: going, waiting: standing) { !predicate($0) }
            }
            var used = Set<String>(), freed = Set<String>()
            for f in [IPFamily.v4, .v6] {
                let els = try s.elements(table, snatMap(f), f == .v4 ? .ipv4 : .ipv6)
                b.deleteElements(table, snatMap(f), els.filter { predicate($0.comment) }.map(\.key))
                for e in els { if predicate(e.comment) { freed.insert(e.jump) } else { used.insert(e.jump) } }
            }
            if orphans { freed.formUnion((try s.chainNames(table) ?? []).filter { $0.hasPrefix("snat-") }) }
            b.deleteChains(table, freed.subtracting(used).filter { $0.hasPrefix("snat-") })
            return b
        }
        return gone.map(\.mapping)
    }

    /// CHECK: what of `mappings` (and, with `snat`, the snat elements) attachment `a` lacks; nil
    /// when all is there.
    public static func missing(
        _ s: NFTSocket, network: String, _ a: Attachment, mappings: [Mapping], snat: Bool
    ) throws(NFTError) -> String? {
        if let m = try s.missingLayout(table, skeleton().layout) { return m }
        let tag = a.ownerTag(network: network)
        let ctag = a.containerTag
        // Each element by its key, as ADD and DEL find them: no listing of the host's mappings.
        // Behind another attachment of the same container, the mapping must be standing by.
        for m in mappings {
            let el = try s.element(table, m.map, type(m.family, byAddress: m.hostIP != nil), key: m.key)
            if let el, owner(el.comment) == tag, el.value == m.value { continue }
            if let el, owner(el.comment) != tag, container(el.comment).map { $0 == ctag } == true,
                let w = try s.element(table, standbyMap(m.map), standbyType(m.family, byAddress: m.hostIP != nil), key: m.standbyKey),
                owner(w.comment) == tag, w.value == m.value
            {
                continue
            }
            return "host port \(m.hostDescription) is not mapped to \(m.container):\(m.containerPort)"
        }
        if snat {
            for addr in Set(mappings.map(\.container)) {
                let el = try s.element(table, snatMap(addr.family), addr.family == .v4 ? .ipv4 : .ipv6, key: .address(addr))
                guard let el, owner(el.comment) == tag else { return "no snat element for \(addr)" }
                if let missing = try s.missingLayout(table, [(el.jump, 1)]) { return "snat for \(addr): \(missing)" }
            }
        }
        return nil
    }
}
