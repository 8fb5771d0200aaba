import Base
import CNI
import NFTables

#if canImport(Glibc)
    import Glibc
#endif

/// The firewall plugin's rules: forwarded traffic of container addresses accepted (from them, and
/// replies to them), an admin chain evaluated first, and bridges isolated from one another when a
/// network asks for it. Container addresses are map elements, so the rules never grow:
///
/// ```
/// table inet swift_cni_firewall {
///     map from4 { type ipv4_addr : verdict; }       # container address -> jump net-<hash of network>
///     map from6 { type ipv6_addr : verdict; }
///     map isolation_in  { type ifname : verdict; }  # isolated bridge -> jump iso-<hash>
///     map isolation_out { type ifname : verdict; }  # isolated bridge -> jump dropped
///     chain forward { type filter hook forward priority filter; policy accept;
///         jump CNI-ADMIN                             # the administrator's own rules, never touched
///         iifname vmap @isolation_in
///         ip saddr vmap @from4
///         ip6 saddr vmap @from6
///         ct state established,related ip daddr vmap @from4
///         ct state established,related ip6 daddr vmap @from6 }
///     chain accepted { accept }                     # (the addresses of earlier versions jump here)
///     chain net-<hash of network> { accept }        # goes with the network's last address
///     chain dropped { drop }
///     chain iso-<hash of bridge> { oifname "<bridge>" return; oifname vmap @isolation_out }
/// }
/// ```
///
/// An accept here ends this table's verdict only: a drop in another table's forward chain (a
/// host firewall with policy drop) still drops, as nftables defines. Elements carry the owner tag
/// of the attachment (as ipMasq's do); DEL and GC remove them by tag. A bridge's isolation (its
/// elements and chain) goes with the last address of its network.
public enum Firewall {
    public static let table = TableRef(.inet, "swift_cni_firewall")
    static let forward = "forward"
    static let accepted = "accepted"
    static let dropped = "dropped"
    static let isolationIn = "isolation_in"
    static let isolationOut = "isolation_out"

    static func map(_ f: IPFamily) -> String { f == .v4 ? "from4" : "from6" }
    static func isolationChain(_ bridge: String) -> String { "iso-" + Attachment.shortHash("isolation\u{0}" + bridge) }

    /// The whole layout but for elements, in one transaction that fails with EEXIST when the
    /// table exists. `adminChain` is made (empty) and jumped to first.
    public static func skeleton(adminChain: String) -> Batch {
        var b = Batch()
        b.addTable(table, exclusive: true)
        b.addChain(table, adminChain)
        b.addChain(table, accepted)
        b.addRule(table, accepted, .accept)
        b.addChain(table, dropped)
        b.addRule(table, dropped, .drop)
        b.addChain(table, forward, hook: .filterForward)
        b.addVerdictMap(table, map(.v4), key: .ipv4, id: 1)
        b.addVerdictMap(table, map(.v6), key: .ipv6, id: 2)
        b.addVerdictMap(table, isolationIn, key: .interfaceName, id: 3)
        b.addVerdictMap(table, isolationOut, key: .interfaceName, id: 4)
        b.addRule(table, forward, .jump(adminChain))
        b.addRule(table, forward, .inputInterfaceVerdictMap(map: isolationIn), setID: 3)
        b.addRule(table, forward, .sourceVerdictMap(.v4, map: map(.v4)), setID: 1)
        b.addRule(table, forward, .sourceVerdictMap(.v6, map: map(.v6)), setID: 2)
        b.addRule(table, forward, .establishedDestinationVerdictMap(.v4, map: map(.v4)), setID: 1)
        b.addRule(table, forward, .establishedDestinationVerdictMap(.v6, map: map(.v6)), setID: 2)
        return b
    }

    /// Accepts the forwarded traffic of `addresses` (attachment `a` of `network`); with
    /// `isolate`, traffic between `bridge` and the other isolated bridges is dropped.
    public static func add(
        _ s: NFTSocket, network: String, _ a: Attachment, addresses: [IPAddress], adminChain: String, isolate bridge: String?,
        attempt: Int = 0, takeOver: Bool = false
    ) throws(NFTError) {
        let accept = networkChain(network)
        let counts = try s.ensureTable(table, also: [accept]) { skeleton(adminChain: adminChain) }
        // The admin chain of this configuration (another network may name another one): made
        // once, and jumped to first in `forward` (before any verdict of ours), also after the
        // forward rules were put back without its jump.
        if try !s.jumpTargets(table, forward).contains(adminChain) {
            var b = Batch()
            b.addChain(table, adminChain)
            b.insertRule(table, forward, .jump(adminChain))
            try s.apply(b)
        }
        var b = Batch()
        if takeOver {
            // Addresses still listed for an attachment that leaked them: ours now, replaced in
            // the same transaction as the additions.
            for f in [IPFamily.v4, .v6] {
                let keys = Set(addresses.filter { $0.family == f }.map { ElementKey.address($0) })
                b.deleteElements(table, map(f), try s.elements(table, map(f), f == .v4 ? .ipv4 : .ipv6).map(\.key).filter { keys.contains($0) })
            }
        }
        // The network's chain: its addresses jump to it, and it goes (with the isolation of the
        // network's bridge) with the last of them. Counted on but deleted meanwhile by a DEL: this
        // transaction fails with ENOENT and the ADD starts over; an element of this ADD committed
        // first makes that DEL fail with EBUSY instead.
        let made = (counts[accept] ?? 0) < 1
        if made {
            b.addChain(table, accept)
            b.flushChain(table, accept)
            b.addRule(table, accept, .accept)
        }
        if let bridge, !made, try s.elements(table, isolationIn, .interfaceName).contains(where: { $0.key == .interface(bridge) }) {
            // Isolated already, and kept so while this network's chain stands (above).
        } else if let bridge {
            let c = isolationChain(bridge)
            b.addChain(table, c)
            b.flushChain(table, c)
            b.addRule(table, c, .outputInterfaceReturn(bridge))
            b.addRule(table, c, .outputInterfaceVerdictMap(map: isolationOut))
            // Not exclusive: the same elements (same verdicts) another ADD of the network committed
            // meanwhile are kept, so a batch that makes the network's chain never fails on them
            // (exclusive, racing ADDs and DELs of one network could each fail eight times over).
            b.addElements(table, isolationIn, [VerdictElement(key: .interface(bridge), jump: c, comment: isolationComment + network)], exclusive: false)
            b.addElements(table, isolationOut, [VerdictElement(key: .interface(bridge), jump: dropped, comment: isolationComment + network)], exclusive: false)
        }
        let tag = a.ownerTag(network: network)
        for f in [IPFamily.v4, .v6] {
            b.addElements(table, map(f), addresses.filter { $0.family == f }.map { VerdictElement(key: .address($0), jump: accept, comment: tag) })
        }
        do {
            try s.apply(b)
        } catch {
            // EEXIST/EBUSY: an address still listed for an attachment that leaked it, or a bridge
            // another ADD isolated meanwhile; ENOENT: a listed element, or the isolation chain of
            // the bridge, another DEL took first.
            let retry = error.errno == EEXIST || error.errno == EBUSY || error.errno == ENOENT
            guard retry && attempt < 8 else { throw error }
            try add(s, network: network, a, addresses: addresses, adminChain: adminChain, isolate: bridge, attempt: attempt + 1, takeOver: true)
        }
    }

    /// Removes the elements of one attachment, and the isolation of its network's bridge with
    /// the network's last address. Nothing to remove is success.
    public static func remove(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) {
        let tag = a.ownerTag(network: network)
        try removeWhere(s, network: network, orphans: false) { $0 == tag }
    }

    /// GC: removes the elements of `network` whose attachment is not in `valid`, and the
    /// isolation of every bridge whose network has no address left.
    public static func collect(_ s: NFTSocket, network: String, valid: [Attachment]) throws(NFTError) {
        let prefix = Attachment.networkTag(network) + ":"
        let keep = Set(valid.map { $0.ownerTag(network: network) })
        try removeWhere(s, network: network, orphans: true) { $0.hasPrefix(prefix) && !keep.contains($0) }
    }

    static let isolationComment = "bridge of "

    /// The chain a network's addresses jump to (`accept`).
    public static func networkChain(_ network: String) -> String { "net-" + Attachment.shortHash("firewall\u{0}" + network) }

    /// One transaction: the elements, and each network chain they leave without an element (all
    /// such chains with `orphans`) with the isolation of that network's bridge. Race-safe
    /// against an ADD of the same network (see ``add``). Two removals of a network's last two
    /// addresses, each listing the other's, both keep its chain: one that kept a chain for
    /// others' elements lists again after its transaction (the one that commits last sees
    /// none left, and removes the chain and the isolation).
    static func removeWhere(
        _ s: NFTSocket, network: String, orphans: Bool, again: Bool = true, _ predicate: (String) -> Bool
    ) throws(NFTError) {
        var kept = false
        try s.applyListing(also: [EBUSY]) { () throws(NFTError) -> Batch in
            let (b, k) = try removal(s, network: network, orphans: orphans, predicate)
            kept = k
            return b
        }
        if kept && again { try removeWhere(s, network: network, orphans: orphans, again: false) { _ in false } }
    }

    /// The transaction of ``removeWhere(_:network:orphans:again:_:)`` from one listing, and
    /// whether it keeps a network chain only because elements it does not remove jump to it.
    static func removal(
        _ s: NFTSocket, network: String, orphans: Bool, _ predicate: (String) -> Bool
    ) throws(NFTError) -> (Batch, kept: Bool) {
        var b = Batch()
        var used = Set<String>(), freed = Set<String>()
        for f in [IPFamily.v4, .v6] {
            let els = try s.elements(table, map(f), f == .v4 ? .ipv4 : .ipv6)
            b.deleteElements(table, map(f), els.filter { predicate($0.comment) }.map(\.key))
            for e in els { if predicate(e.comment) { freed.insert(e.jump) } else { used.insert(e.jump) } }
        }
        let chains = try s.chainNames(table) ?? []
        if orphans { freed.formUnion(chains.filter { $0.hasPrefix("net-") }) } else { freed.insert(networkChain(network)) }
        let gone = freed.subtracting(used).filter { $0.hasPrefix("net-") && chains.contains($0) }
        let kept = freed.intersection(used).contains { $0.hasPrefix("net-") }
        b.deleteChains(table, gone)
        // The isolation of the networks whose chain goes (or is gone already).
        let isolated = try s.elements(table, isolationIn, .interfaceName).filter { e in
            guard e.comment.hasPrefix(isolationComment) else { return false }
            let owner = networkChain(String(e.comment.dropFirst(isolationComment.count)))
            return gone.contains(owner) || (orphans && !chains.contains(owner) && !used.contains(owner))
        }
        guard !isolated.isEmpty else { return (b, kept) }
        let out = Set(try s.elements(table, isolationOut, .interfaceName).map(\.key))
        b.deleteElements(table, isolationIn, isolated.map(\.key))
        b.deleteElements(table, isolationOut, isolated.map(\.key).filter { out.contains($0) })
        b.deleteChains(table, isolated.map(\.jump).filter { $0.hasPrefix("iso-") })
        return (b, kept)
    }

    /// CHECK: the table's own chains and rules (the admin chain is the administrator's).
    public static func missingLayout(_ s: NFTSocket, adminChain: String) throws(NFTError) -> String? {
        try s.missingLayout(table, skeleton(adminChain: adminChain).layout)
    }

    /// The addresses listed for attachment `a` (CHECK).
    public static func addresses(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) -> [IPAddress] {
        let tag = a.ownerTag(network: network)
        var out: [IPAddress] = []
        for f in [IPFamily.v4, .v6] {
            for e in try s.elements(table, map(f), f == .v4 ? .ipv4 : .ipv6) where e.comment == tag {
                if case .address(let ip) = e.key { out.append(ip) }
            }
        }
        return out
    }
}
