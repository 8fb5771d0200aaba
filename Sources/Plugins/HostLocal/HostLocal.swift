import Base
import CNI
import IPAM

/// The `host-local` IPAM plugin: addresses from configured ranges, stored on the host's disk in
/// the reference plugin's format, with GC and STATUS.
public struct HostLocalPlugin: CNIPlugin {
    public static let type = "host-local"
    public static let summary = "host-local IPAM plugin (swift-cni): addresses from ranges, stored under dataDir"

    /// The plugin; its state is the store on disk.
    public init() {}

    /// Decodes and validates the `ipam` section (ranges, routes, dataDir) with no file touched.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) { _ = try HostLocalConfig(config, args: args) }

    /// Reserves an address of every range set for the attachment (the same ones again for a repeated ADD) under the store's lock.
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try HostLocalConfig(ctx.config, args: ctx.args)
        let requested = try Allocator.placeRequested(conf.requested, in: conf.rangeSets)  // refused before the store is made
        let store = try AllocationStore(dataDir: conf.dataDir, network: ctx.config.name)
        defer { store.close() }
        let attachment = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        let allocations = try Allocator.allocate(
            attachment, sets: conf.rangeSets, requested: requested, store: store)
        return CNIResult(
            ips: allocations.map { CNIResult.IPConfig(address: $0.address, gateway: $0.gateway) },
            routes: conf.routes, dns: conf.dns)
    }

    /// Releases every address of the attachment. Nothing allocated is success; the ranges of the
    /// configuration are not needed (a broken range must not strand an address).
    public func del(_ ctx: PluginContext) throws {
        let conf = try HostLocalConfig(ctx.config, args: ctx.args, requireRanges: false)
        // A network that never had an address: nothing to release, and nothing is created.
        guard let store = try AllocationStore(existing: conf.dataDir, network: ctx.config.name) else { return }
        defer { store.close() }
        store.releaseAll(of: Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName))
    }

    /// The attachment holds an address, and every address prevResult names inside our ranges is
    /// reserved for it.
    public func check(_ ctx: PluginContext) throws {
        let conf = try HostLocalConfig(ctx.config, args: ctx.args)
        let a = Attachment(containerID: ctx.args.containerID, ifName: ctx.args.ifName)
        guard let store = try AllocationStore(existing: conf.dataDir, network: ctx.config.name) else {
            throw CNIError(
                .checkFailed, "host-local: no address allocated to \(a) in network \"\(ctx.config.name)\"",
                details: "no store \(conf.dataDir)/\(ctx.config.name)")
        }
        defer { store.close() }
        let held = Set(store.addresses(of: a))
        if held.isEmpty {
            throw CNIError(
                .checkFailed, "host-local: no address allocated to \(a) in network \"\(ctx.config.name)\"",
                details: "store \(store.directory)")
        }
        for ip in ctx.config.prevResult?.ips ?? [] {
            let addr = ip.address.address
            guard conf.rangeSets.contains(where: { $0.range(containing: addr) != nil }) else { continue }
            if !held.contains(addr) {
                throw CNIError(
                    .checkFailed, "host-local: \(addr) of prevResult is not allocated to \(a)",
                    details: "allocated: \(held.sorted().map(\.description).joined(separator: ", "))")
            }
        }
    }

    /// Releases every reservation whose attachment is not in `cni.dev/valid-attachments` (absent or
    /// null: none is valid, as `cnitool gc` means it). Keeps going on errors and reports them all.
    public func gc(_ ctx: PluginContext) throws {
        let conf = try HostLocalConfig(ctx.config, args: ctx.args, requireRanges: false)
        guard let store = try AllocationStore(existing: conf.dataDir, network: ctx.config.name) else { return }
        defer { store.close() }
        let valid = Set(ctx.config.validAttachments ?? [])
        let validIDs = Set(valid.map(\.containerID))
        var errors: [String] = []
        for (ip, content) in store.scan() {
            // A legacy id-only reservation counts by container ID.
            let keep = AllocationStore.owner(content).map(valid.contains) ?? validIDs.contains(String(AllocationStore.trimmed(content)))
            if keep { continue }
            do {
                try System.removeFile(store.directory + "/" + ip.description)
            } catch {
                errors.append(error.description)
            }
        }
        for a in store.indexedAttachments() where !valid.contains(a) { store.removeIndex(a) }
        store.removeIndexTemporaries()
        if let entries = store.rebuildIndex() { store.stampComplete(entries: entries) }
        if !errors.isEmpty {
            throw CNIError(
                .stateStoreFailure, "host-local GC could not release \(errors.count) address(es)",
                details: errors.joined(separator: "; "))
        }
    }

    /// Code 50 when the data directory is unusable or a range set has no free address (ADD needs
    /// one from every set).
    public func status(_ ctx: PluginContext) throws {
        let conf = try HostLocalConfig(ctx.config, args: ctx.args)
        let store: AllocationStore
        do {
            store = try AllocationStore(dataDir: conf.dataDir, network: ctx.config.name)
        } catch {
            throw CNIError(.notAvailable, "host-local: data directory unusable: \(error.msg)", details: error.details)
        }
        defer { store.close() }
        if !System.isWritableDirectory(store.directory) {
            throw CNIError(.notAvailable, "host-local: data directory \(store.directory) is not writable")
        }
        let taken = store.scan().map(\.ip)
        for (i, set) in conf.rangeSets.enumerated() {
            var used = 0
            for ip in taken { if let r = set.range(containing: ip), ip != r.gateway { used += 1 } }
            let capacity = set.ranges.reduce(0) { $0 &+ $1.capacity }
            if used >= capacity {
                throw CNIError(
                    .notAvailable, "host-local: no IP addresses available in range set: \(set)",
                    details: "range set \(i): \(used) of \(capacity) addresses allocated")
            }
        }
    }
}
