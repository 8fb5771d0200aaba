import Base

import NFTables

#if canImport(Glibc)
    import Glibc
#endif

/// ipMasq in nftables, with a per-packet and per-ADD cost that does not grow with the number of
/// containers:
///
/// ```
/// table inet swift_cni {
///     map masq4 { type ipv4_addr : verdict; }      # container address -> jump <subnet chain>
///     map masq6 { type ipv6_addr : verdict; }
///     chain postrouting { type nat hook postrouting priority srcnat; policy accept;
///         ip saddr vmap @masq4
///         ip6 saddr vmap @masq6 }
///     chain masq-<hash of network and subnet> {   # one per subnet of a network
///         ip daddr <subnet> return
///         ip daddr 224.0.0.0/4 return              # ip6: ff00::/8
///         masquerade }
/// }
/// ```
///
/// ADD inserts one element per container address, with the owner tag `<network hash>:<attachment
/// hash>` as its comment; DEL and GC remove elements by tag, so they need neither the addresses
/// nor the configuration ADD had.
public enum Masquerade {
    public static let table = TableRef(.inet, "swift_cni")
    static let postrouting = "postrouting"

    static func map(_ f: IPFamily) -> String { f == .v4 ? "masq4" : "masq6" }

    /// The short hash of `parts` that element tags and chain names are made of.
    public static func hash(_ parts: String...) -> String { Attachment.shortHash(parts.joined(separator: "\u{0}")) }

    /// `<network hash>`: the prefix every tag of the network starts with.
    public static func networkTag(_ network: String) -> String { Attachment.networkTag(network) }

    /// `<network hash>:<attachment hash>`.
    public static func tag(network: String, _ a: Attachment) -> String { a.ownerTag(network: network) }

    /// The chain for one subnet of a network (and the destinations it leaves alone, if any).
    public static func chain(network: String, subnet: IPPrefix, exclude: [IPPrefix] = []) -> String {
        exclude.isEmpty
            ? "masq-" + hash(network, subnet.network.description)
            : "masq-" + hash(network, subnet.network.description, exclude.map(\.network.description).joined(separator: ","))
    }

    /// The table, maps, base chain and lookup rules, created in one transaction that fails with
    /// EEXIST when the table already exists (so two ADDs never both add the rules).
    public static func skeleton() -> Batch {
        var b = Batch()
        b.addTable(table, exclusive: true)
        b.addChain(table, postrouting, hook: .natPostrouting)
        b.addVerdictMap(table, map(.v4), key: .ipv4, id: 1)
        b.addVerdictMap(table, map(.v6), key: .ipv6, id: 2)
        b.addRule(table, postrouting, .sourceVerdictMap(.v4, map: map(.v4)), setID: 1)
        b.addRule(table, postrouting, .sourceVerdictMap(.v6, map: map(.v6)), setID: 2)
        return b
    }

    /// The subnet chains (re-made with the same content, idempotent) unless `existing` has them,
    /// and the elements of `addresses`. `exclude`: more destinations that keep the source address
    /// (a vxlan overlay's whole network: traffic between its hosts is not masqueraded).
    /// `replacing`: keys another attachment leaked, deleted in the same transaction.
    public static func addBatch(
        network: String, _ a: Attachment, addresses: [IPPrefix], exclude: [IPPrefix] = [], existing: Set<String> = [],
        replacing: [IPFamily: [ElementKey]] = [:]
    ) -> Batch {
        var b = Batch()
        var done = Set<IPPrefix>()
        for p in addresses where !done.contains(p.network) && !existing.contains(chain(network: network, subnet: p, exclude: exclude)) {
            done.insert(p.network)
            let c = chain(network: network, subnet: p, exclude: exclude)
            b.addChain(table, c)
            b.flushChain(table, c)
            b.addRule(table, c, .destinationReturn(p.network))
            for x in exclude where x.family == p.family { b.addRule(table, c, .destinationReturn(x.network)) }
            b.addRule(table, c, .destinationReturn(p.family == .v4 ? IPPrefix("224.0.0.0/4")! : IPPrefix("ff00::/8")!))
            b.addRule(table, c, .masquerade)
        }
        for f in [IPFamily.v4, .v6] {
            b.deleteElements(table, map(f), replacing[f] ?? [])
            let els = addresses.filter { $0.family == f }.map {
                VerdictElement(key: .address($0.address), jump: chain(network: network, subnet: $0, exclude: exclude), comment: tag(network: network, a))
            }
            b.addElements(table, map(f), els)
        }
        return b
    }

    /// The number of rules of the chain of `subnet`.
    static func rules(subnet: IPPrefix, exclude: [IPPrefix]) -> Int {
        addBatch(network: "", Attachment(containerID: "", ifName: ""), addresses: [subnet], exclude: exclude).layout.first?.rules ?? 0
    }

    /// CHECK: what the masquerading of attachment `a`'s `addresses` lacks (an element, the
    /// lookup rules, its subnet chain's rules), or nil.
    public static func missing(_ s: NFTSocket, network: String, _ a: Attachment, addresses: [IPAddress]) throws(NFTError) -> String? {
        if let m = try s.missingLayout(table, skeleton().layout) { return m }
        let t = tag(network: network, a)
        for ip in addresses {
            guard let el = try elements(s, ip.family).first(where: { $0.key == .address(ip) && $0.comment == t }) else {
                return "ipMasq for \(ip) is missing: no element with tag \(t) in table \(table.text)"
            }
            if let m = try s.missingLayout(table, [(el.jump, 3)]) { return "ipMasq for \(ip): \(m)" }
        }
        return nil
    }

    /// Masquerades traffic from `addresses` leaving their subnets (multicast excepted).
    public static func add(
        _ s: NFTSocket, network: String, _ a: Attachment, addresses: [IPPrefix], exclude: [IPPrefix] = [], attempt: Int = 0
    ) throws(NFTError) {
        let counts = try s.ensureTable(table, also: addresses.map { chain(network: network, subnet: $0, exclude: exclude) }, skeleton)
        // A subnet chain is made once; later ADDs of the subnet only add their elements (rewriting
        // a chain deletes rules, and deletions make the kernel wait for a grace period). One that
        // lost its rules is made again.
        var existing = Set<String>()
        for p in addresses {
            let c = chain(network: network, subnet: p, exclude: exclude)
            if (counts[c] ?? 0) >= rules(subnet: p, exclude: exclude) { existing.insert(c) }
        }
        do {
            try s.apply(addBatch(network: network, a, addresses: addresses, exclude: exclude, existing: existing))
        } catch {
            if error.errno == ENOENT && attempt < 5 && !existing.isEmpty {
                // A subnet chain went with its last element (a DEL or GC) after it was counted.
                return try add(s, network: network, a, addresses: addresses, exclude: exclude, attempt: attempt + 1)
            }
            guard error.errno == EEXIST || error.errno == EBUSY else { throw error }
            // An address still mapped for an attachment that leaked it: the address is ours now,
            // its old element replaced in one transaction (never a moment without either).
            try s.applyListing { () throws(NFTError) -> Batch in
                var replacing: [IPFamily: [ElementKey]] = [:]
                for f in [IPFamily.v4, .v6] {
                    let keys = Set(addresses.filter { $0.family == f }.map { ElementKey.address($0.address) })
                    replacing[f] = try elements(s, f).map(\.key).filter { keys.contains($0) }
                }
                return addBatch(network: network, a, addresses: addresses, exclude: exclude, existing: existing, replacing: replacing)
            }
        }
    }

    /// Removes the elements of one attachment (found by tag), and a subnet chain with its last
    /// element. Nothing to remove is success.
    public static func remove(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) {
        let t = tag(network: network, a)
        try removeWhere(s, orphans: false) { $0.comment == t }
    }

    /// GC: removes the network's elements whose attachment is not in `valid`, and every subnet
    /// chain no element jumps to any more (of any network: a removed network's too).
    public static func collect(_ s: NFTSocket, network: String, valid: [Attachment]) throws(NFTError) {
        let prefix = networkTag(network) + ":"
        let keep = Set(valid.map { tag(network: network, $0) })
        try removeWhere(s, orphans: true) { $0.comment.hasPrefix(prefix) && !keep.contains($0.comment) }
    }

    /// One transaction: the elements, and the subnet chains they leave without an element (all
    /// such chains with `orphans`). Race-safe: an ADD that gives such a chain a new element
    /// first makes the deletion fail with EBUSY, and the listing is taken again; an ADD that
    /// counted on a chain deleted first fails with ENOENT and makes it again. Two removals of
    /// a chain's last two elements, each listing the other's, both keep the chain: after its
    /// transaction each lists again the chains it kept for others' elements, and whichever
    /// commits last finds them unused and deletes them.
    static func removeWhere(_ s: NFTSocket, orphans: Bool, _ predicate: (VerdictElement) -> Bool) throws(NFTError) {
        var kept = Set<String>()
        try s.applyListing(also: [EBUSY]) { () throws(NFTError) -> Batch in
            let (b, k) = try removal(s, orphans: orphans, predicate)
            kept = k
            return b
        }
        try deleteIfUnused(s, kept)
    }

    /// Deletes those of `chains` that no element jumps to now (listed again: a refused deletion
    /// would cost the kernel a grace period, a listing does not).
    static func deleteIfUnused(_ s: NFTSocket, _ chains: Set<String>) throws(NFTError) {
        guard !chains.isEmpty else { return }
        var used = Set<String>()
        for f in [IPFamily.v4, .v6] { for e in try elements(s, f) { used.insert(e.jump) } }
        try s.deleteUnusedChains(table, chains.subtracting(used))
    }

    /// The transaction of ``removeWhere(_:orphans:_:)`` from one listing, and the subnet chains
    /// it keeps only because elements it does not remove still jump to them.
    static func removal(
        _ s: NFTSocket, orphans: Bool, _ predicate: (VerdictElement) -> Bool
    ) throws(NFTError) -> (Batch, kept: Set<String>) {
        var b = Batch()
        var used = Set<String>(), freed = Set<String>()
        for f in [IPFamily.v4, .v6] {
            let els = try elements(s, f)
            let gone = els.filter(predicate)
            b.deleteElements(table, map(f), gone.map(\.key))
            for e in els { if predicate(e) { freed.insert(e.jump) } else { used.insert(e.jump) } }
        }
        if orphans { freed.formUnion((try s.chainNames(table) ?? []).filter { $0.hasPrefix("masq-") }) }
        b.deleteChains(table, freed.subtracting(used).filter { $0.hasPrefix("masq-") })
        return (b, freed.intersection(used).filter { $0.hasPrefix("masq-") })
    }

    /// The elements of the map of family `f`; none when the table does not exist.
    public static func elements(_ s: NFTSocket, _ f: IPFamily) throws(NFTError) -> [VerdictElement] {
        try s.elements(table, map(f), f == .v4 ? .ipv4 : .ipv6)
    }

    static func chainExists(_ s: NFTSocket, _ name: String) throws(NFTError) -> Bool { try s.chainExists(table, name) }
}
