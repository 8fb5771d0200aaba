import Base

/// One address handed out: the address with its subnet's prefix length, and its range's gateway.
public struct Allocation: Sendable, Equatable {
    public let address: IPPrefix
    public let gateway: IPAddress
}

/// Allocates one address per range set for an attachment, all or nothing, under the store's lock.
public enum Allocator {
    /// The range set of each requested address (index -> address). Code 106 when one is in no
    /// set, is a gateway, or shares its set with another. Needs no store: callers check before
    /// touching the disk.
    public static func placeRequested(_ requested: [IPAddress], in sets: [RangeSet]) throws(IPAMError) -> [Int: IPAddress] {
        // Every requested address must belong to exactly one set and not be a gateway.
        var wanted: [Int: IPAddress] = [:]
        for ip in requested {
            guard let i = sets.firstIndex(where: { $0.range(containing: ip) != nil }) else {
                if let s = sets.first(where: { $0.ranges.contains { $0.gateway == ip } }) {
                    throw IPAMError(.addressUnavailable, "requested IP address \(ip) is the gateway of range set \(s)")
                }
                throw IPAMError(
                    .addressUnavailable, "requested IP address \(ip) is not in any range set",
                    details: "range sets: \(sets.map(\.description).joined(separator: "; "))")
            }
            if sets[i].range(containing: ip)?.gateway == ip {
                throw IPAMError(.addressUnavailable, "requested IP address \(ip) is the gateway of range set \(sets[i])")
            }
            if let other = wanted[i] {
                throw IPAMError(
                    .addressUnavailable, "requested IP addresses \(other) and \(ip) are in the same range set \(sets[i])",
                    details: "one address is allocated per range set")
            }
            wanted[i] = ip
        }
        return wanted
    }

    /// Addresses for `a`: each requested address (placed by `placeRequested`) goes to its set; every other set
    /// hands out the next free address round-robin after its `last_reserved_ip`. Throws code 107
    /// when `a` already has addresses, 106 when a requested address cannot be had or a set is
    /// exhausted (naming the set); whatever was reserved before the failure is released.
    public static func allocate(
        _ a: Attachment, sets: [RangeSet], requested wanted: [Int: IPAddress], store: AllocationStore
    ) throws(IPAMError) -> [Allocation] {
        // The duplicate check needs a complete index: after another writer (the reference plugin,
        // a lost index write) the directory is read in full first, as the reference always does.
        let stamp = store.completeIndex()
        var entries = stamp?.entries ?? store.rebuildIndex()
        if let known = store.indexed(a), !known.isEmpty {
            let live = known.filter { ip in store.reservation(ip).map { AllocationStore.matches($0, a) } ?? false }
            if let first = live.first {
                if let entries { store.stampComplete(entries: entries, keeping: stamp) }
                throw IPAMError(
                    .conflict, "\(first) has been allocated to \(a), duplicate allocation is not allowed",
                    details: "DEL the attachment before adding it again")
            }
            if store.removeIndex(a) { entries = entries.map { $0 - 1 } }  // stale hint
        }
        var done: [(IPAddress, Allocation)] = []
        do throws(IPAMError) {
            for (i, set) in sets.enumerated() {
                if let ip = wanted[i] {
                    let r = set.range(containing: ip)!
                    guard try store.reserve(ip, for: a, rangeSet: i) else {
                        throw IPAMError(
                            .addressUnavailable, "requested IP address \(ip) is not available in range set \(set)",
                            details: "it is allocated to \(owner(store.reservation(ip)))")
                    }
                    done.append((ip, Allocation(address: IPPrefix(address: ip, length: r.subnet.length)!, gateway: r.gateway)))
                    continue
                }
                var got = false
                for (ip, r) in set.candidates(after: store.lastReserved(rangeSet: i)) {
                    if try store.reserve(ip, for: a, rangeSet: i) {
                        done.append((ip, Allocation(address: IPPrefix(address: ip, length: r.subnet.length)!, gateway: r.gateway)))
                        got = true
                        break
                    }
                }
                if !got {
                    throw IPAMError(.addressUnavailable, "no IP addresses available in range set: \(set)")
                }
            }
            try store.setIndex(a, done.map(\.0))
        } catch {
            for (ip, _) in done { store.release(ip, ifOwnedBy: a) }
            store.removeIndex(a)
            if let entries { store.stampComplete(entries: entries, keeping: stamp) }  // a refused ADD changes nothing
            throw error
        }
        if let entries { store.stampComplete(entries: entries + 1) }
        return done.map(\.1)
    }

    static func owner(_ content: [UInt8]?) -> String {
        guard let content else { return "nobody (released meanwhile)" }
        return AllocationStore.trimmed(content).replacingOccurrences("\r\n", with: "/")
    }
}

extension Substring {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
