import Base
import CNI
import NFTables
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// macspoofchk in nftables: frames a container sends must carry its own MAC.
///
/// ```
/// table bridge swift_cni {
///     map macspoof { type ifname : verdict; }           # host port -> jump <its chain>
///     chain prerouting { type filter hook prerouting priority -300; policy accept;
///         iifname vmap @macspoof }
///     chain spoof-<attachment hash> {                  # one per attachment
///         ether saddr <container MAC> return
///         drop }
/// }
/// ```
/// Elements carry the attachment's owner tag (as ``Masquerade``), so DEL and GC find them by tag.
public enum MacSpoofCheck {
    public static let table = TableRef(.bridge, "swift_cni")
    static let prerouting = "prerouting"
    static let map = "macspoof"

    /// The chain of one attachment.
    public static func chain(network: String, _ a: Attachment) -> String {
        "spoof-" + Masquerade.hash(network, a.containerID, a.ifName)
    }

    /// The table and its base chain, made once (idempotent).
    public static func skeleton() -> Batch {
        var b = Batch()
        b.addTable(table, exclusive: true)
        b.addChain(table, prerouting, hook: .bridgePrerouting)
        b.addVerdictMap(table, map, key: .interfaceName, id: 1)
        b.addRule(table, prerouting, .inputInterfaceVerdictMap(map: map), setID: 1)
        return b
    }

    /// `replacing`: the element a leaked attachment left for the same host interface, deleted
    /// (with its chain) in the same transaction.
    public static func addBatch(
        network: String, _ a: Attachment, hostInterface: String, mac: [UInt8], replacing: VerdictElement? = nil
    ) -> Batch {
        let c = chain(network: network, a)
        var b = Batch()
        if let old = replacing {
            b.deleteElements(table, map, [old.key])
            if old.jump != c && !old.jump.isEmpty {
                b.flushChain(table, old.jump)
                b.deleteChain(table, old.jump)
            }
        }
        b.addChain(table, c)
        b.flushChain(table, c)
        b.addRule(table, c, .sourceMACReturn(mac))
        b.addRule(table, c, .drop)
        b.addElements(table, map, [VerdictElement(key: .interface(hostInterface), jump: c, comment: Masquerade.tag(network: network, a))])
        return b
    }

    /// Frames entering the bridge from `hostInterface` must come from `mac`.
    public static func add(_ s: NFTSocket, network: String, _ a: Attachment, hostInterface: String, mac: [UInt8])
        throws(NFTError)
    {
        try s.ensureTable(table, skeleton)
        do {
            try s.apply(addBatch(network: network, a, hostInterface: hostInterface, mac: mac))
        } catch {
            guard error.errno == EEXIST || error.errno == EBUSY else { throw error }
            // A leaked element for a reused host interface name: replaced in one transaction.
            try s.applyListing { () throws(NFTError) -> Batch in
                addBatch(network: network, a, hostInterface: hostInterface, mac: mac, replacing: try element(s, hostInterface: hostInterface))
            }
        }
    }

    /// Removes one attachment's element and chain. Nothing to remove is success.
    public static func remove(_ s: NFTSocket, network: String, _ a: Attachment) throws(NFTError) {
        let t = Masquerade.tag(network: network, a)
        try removeWhere(s) { $0.comment == t }
    }

    /// GC: removes the network's elements (and chains) of attachments not in `valid`.
    public static func collect(_ s: NFTSocket, network: String, valid: [Attachment]) throws(NFTError) {
        let prefix = Masquerade.networkTag(network) + ":"
        let keep = Set(valid.map { Masquerade.tag(network: network, $0) })
        try removeWhere(s) { $0.comment.hasPrefix(prefix) && !keep.contains($0.comment) }
    }

    static func removeWhere(_ s: NFTSocket, _ predicate: (VerdictElement) -> Bool) throws(NFTError) {
        try s.applyListing { () throws(NFTError) -> Batch in
            let gone = try s.elements(table, map, .interfaceName).filter(predicate)
            var b = Batch()
            guard !gone.isEmpty else { return b }
            b.deleteElements(table, map, gone.map(\.key))
            for c in Set(gone.map(\.jump)) {
                b.flushChain(table, c)
                b.deleteChain(table, c)
            }
            return b
        }
    }

    /// CHECK: what macspoofchk of `hostInterface` for attachment `a` lacks (its element, the
    /// lookup rule, its chain's rules), or nil.
    public static func missing(_ s: NFTSocket, network: String, _ a: Attachment, hostInterface: String) throws(NFTError) -> String? {
        if let m = try s.missingLayout(table, skeleton().layout) { return m }
        guard let el = try element(s, hostInterface: hostInterface), el.comment == Masquerade.tag(network: network, a) else {
            return "macspoofchk for port \(hostInterface) is missing"
        }
        return try s.missingLayout(table, [(el.jump, 2)]).map { "macspoofchk for port \(hostInterface): \($0)" }
    }

    /// The element of `hostInterface`, if any.
    public static func element(_ s: NFTSocket, hostInterface: String) throws(NFTError) -> VerdictElement? {
        try s.elements(table, map, .interfaceName).first { $0.key == .interface(hostInterface) }
    }
}
