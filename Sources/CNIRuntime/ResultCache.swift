import Base
import CNI

#if canImport(Glibc)
    import Glibc
#endif

/// The runtime's cache of ADD results, in libcni's format so that cnitool and libcni-based tools
/// read what we write: `<root>/results/<network>-<containerID>-<ifname>`, JSON with
/// `kind: "cniCacheV1"`, mode 0600 in a 0700 directory.
public struct ResultCache: Sendable {
    public let root: String
    /// The cache under `root` (libcni's default: /var/lib/cni).
    public init(root: String) { self.root = root }

    public var directory: String { root + "/results" }

    /// The file of the attachment's cached result.
    public func path(network: String, _ containerID: String, _ ifName: String) -> String {
        "\(directory)/\(network)-\(containerID)-\(ifName)"
    }

    /// One cached attachment.
    public struct Entry: Sendable {
        public var network: String
        public var containerID: String
        public var ifName: String
        public var netns: String
        public var cniArgs: [(key: String, value: String)]
        public var capabilityArgs: JSONObject
        public var result: JSONValue
    }

    /// Writes the attachment's result and the list's configuration (mode 0600, atomically).
    public func store(_ list: NetworkConfigList, _ a: RuntimeAttachment, result: JSONValue) throws(CNIError) {
        var o = JSONObject()
        o["kind"] = .string("cniCacheV1")
        o["containerId"] = .string(a.containerID)
        o["config"] = .string(Base64.encode(list.bytes))
        o["ifName"] = .string(a.ifName)
        o["networkName"] = .string(list.name)
        o["netns"] = .string(a.netns)
        o["cniArgs"] = .array(a.cniArgs.map { .array([.string($0.key), .string($0.value)]) })
        o["capabilityArgs"] = .object(a.capabilityArgs)
        o["result"] = result
        do {
            try System.makeDirectories(directory, mode: 0o700)
            try System.writeFileAtomically(
                path(network: list.name, a.containerID, a.ifName), Array(JSONValue.object(o).serialized().utf8))
        } catch {
            throw CNIError(.stateStoreFailure, "failed to write the result cache", details: error.description)
        }
    }

    /// The attachment's cached entry; throws when none is there or it cannot be read.
    public func load(network: String, _ containerID: String, _ ifName: String) throws -> Entry {
        try decode(try System.readFile(path(network: network, containerID, ifName)))
    }

    func decode(_ bytes: [UInt8]) throws -> Entry {
        let f = Fields(try JSONValue.parse(bytes).object(at: "cache"), path: "cache")
        var args: [(key: String, value: String)] = []
        for pair in try f.array("cniArgs") ?? [] {
            if case .array(let kv) = pair, kv.count == 2, let k = kv[0].stringValue, let v = kv[1].stringValue {
                args.append((k, v))
            }
        }
        return Entry(
            network: try f.string("networkName") ?? "", containerID: try f.string("containerId") ?? "",
            ifName: try f.string("ifName") ?? "", netns: try f.string("netns") ?? "", cniArgs: args,
            capabilityArgs: try f.object("capabilityArgs")?.object ?? JSONObject(), result: f["result"] ?? .null)
    }

    /// Removes the entry, and what a runtime killed while writing it left (its temporary).
    public func remove(network: String, _ containerID: String, _ ifName: String) throws {
        let p = path(network: network, containerID, ifName)
        System.removeAbandonedTemporaries(of: p)
        try System.removeFile(p)
    }

    /// Removes what runtimes killed while writing an entry of `network` left (GC).
    public func removeAbandonedTemporaries(network: String) {
        System.removeAbandonedTemporaries(in: directory, namePrefix: network + "-")
    }

    /// Every readable entry, or those of one network, sorted by network, container and interface.
    public func entries(network: String? = nil) -> [Entry] {
        guard let names = try? System.listDirectory(directory) else { return [] }
        var out: [Entry] = []
        for n in names where (network == nil || n.hasPrefix(network! + "-")) && System.temporaryWriter(n) == nil {
            guard let bytes = try? System.readFile(directory + "/" + n), let e = try? decode(bytes) else { continue }
            if let network, e.network != network { continue }
            out.append(e)
        }
        return out.sorted { ($0.network, $0.containerID, $0.ifName) < ($1.network, $1.containerID, $1.ifName) }
    }
}
