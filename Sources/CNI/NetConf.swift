import Base

/// A plugin's network configuration as it arrives on stdin: the well-known keys decoded, the
/// whole object kept in ``raw`` so each plugin reads its own keys (``fields``).
public struct NetConf: Sendable {
    /// The whole configuration object, unknown keys included.
    public let raw: JSONObject
    public let cniVersion: CNIVersion
    public let name: String
    /// The plugin type; empty if the runtime did not send it.
    public let type: String
    public let capabilities: [String: Bool]
    /// `runtimeConfig`; empty when absent.
    public let runtimeConfig: Fields
    /// `args`; empty when absent.
    public let args: Fields
    /// `ipam`, when present.
    public let ipam: Fields?
    /// `ipam.type`, when present.
    public let ipamType: String?
    /// The IPAM plugin a main plugin delegates to: `ipam.type` when it is not empty; nil for an
    /// attachment without addresses (`ipam` absent, `{}` or without a type).
    public var ipamPlugin: String? { ipamType.flatMap { $0.isEmpty ? nil : $0 } }
    /// The `dns` key of the configuration (overrides IPAM's DNS in main plugins).
    public let dns: CNIResult.DNS?
    /// `prevResult`, parsed in the version it carries (its `cniVersion`, else the config's).
    public let prevResult: CNIResult?
    /// GC: `cni.dev/valid-attachments` (or the older `cni.dev/attachments`); nil when neither key
    /// is present.
    public let validAttachments: [Attachment]?

    /// The configuration's keys, for plugin-specific settings.
    public var fields: Fields { Fields(raw) }

    /// The largest configuration accepted on stdin.
    public static let maximumSize = 4 << 20

    /// Decodes a configuration. Syntax and type errors are code 6; an unsupported `cniVersion`
    /// code 1; a missing or invalid `name` code 7 (the name becomes a directory name); `ipam`
    /// settings without a `type` code 7 unless `ipamNeedsType` is false.
    public init(decoding bytes: [UInt8], supported: [CNIVersion] = CNIVersion.allSupported, ipamNeedsType: Bool = true) throws(CNIError) {
        let value: JSONValue
        if bytes.count > NetConf.maximumSize {
            throw CNIError(
                .decodingFailure, "network configuration too large",
                details: "\(bytes.count) bytes on stdin; the limit is \(NetConf.maximumSize)")
        }
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw CNIError(.decodingFailure, "failed to decode network configuration", details: error.description)
        }
        guard case .object(let obj) = value else {
            throw CNIError(
                .decodingFailure, "failed to decode network configuration",
                details: "expected a JSON object, got \(value.kindName)")
        }
        try self.init(object: obj, supported: supported, ipamNeedsType: ipamNeedsType)
    }

    /// Decodes an already parsed configuration object.
    public init(object obj: JSONObject, supported: [CNIVersion] = CNIVersion.allSupported, ipamNeedsType: Bool = true) throws(CNIError) {
        let f = Fields(obj)
        raw = obj
        // A missing cniVersion means 0.1.0, as the Go library reads it.
        cniVersion = try CNIVersion.negotiate(try f.string("cniVersion") ?? "0.1.0", supported: supported)
        name = try f.string("name") ?? ""
        try NetConf.validateName(name)
        type = try f.string("type") ?? ""
        if type.isEmpty, obj["plugins"] != nil {
            // A runtime hands a plugin one configuration of a list (with the list's name and
            // version): the list itself here would run with defaults (a cni0 bridge appears).
            throw CNIError(
                .invalidNetworkConfig, "a network configuration list (\"plugins\") was given to a plugin",
                details:
                    "a plugin takes one network configuration with its \"type\"; run the list with a runtime (cnitool, cnictl add) or pass one of its plugins")
        }
        var caps: [String: Bool] = [:]
        if let c = try f.object("capabilities") {
            for (k, v) in c.object { caps[k] = try v.bool(at: c.pathOf(k)) }
        }
        capabilities = caps
        runtimeConfig = try f.object("runtimeConfig") ?? Fields(JSONObject(), path: "runtimeConfig")
        args = try f.object("args") ?? Fields(JSONObject(), path: "args")
        ipam = try f.object("ipam")
        ipamType = try ipam?.string("type")
        // `"ipam": {}` means none (layer 2 only), as for the reference; settings without a type
        // are a configuration that lost its plugin.
        if ipamNeedsType, let ipam, !ipam.object.isEmpty, (ipamType ?? "").isEmpty {
            throw CNIError(
                .invalidNetworkConfig, "ipam.type is missing",
                details: "ipam has \(ipam.object.keys.sorted().joined(separator: ", ")) but no plugin to run them; e.g. \"type\": \"host-local\"")
        }
        dns = try f.object("dns").map { d throws(CNIError) in try CNIResult.DNS(fields: d) }
        if let prev = f["prevResult"] {
            prevResult = try CNIResult(json: prev, defaultVersion: cniVersion, path: "prevResult")
        } else {
            prevResult = nil
        }
        let key = f["cni.dev/valid-attachments"] != nil ? "cni.dev/valid-attachments" : "cni.dev/attachments"
        if let list = try f.array(key) {
            var out: [Attachment] = []
            for (i, v) in list.enumerated() {
                let p = "\(key)[\(i)]"
                let a = Fields(try v.object(at: p), path: p)
                guard let cid = try a.string("containerID"), let ifn = try a.string("ifname") else {
                    throw CNIError(.decodingFailure, "invalid \"\(p)\"", details: "needs containerID and ifname")
                }
                out.append(Attachment(containerID: cid, ifName: ifn))
            }
            validAttachments = out
        } else {
            validAttachments = nil
        }
    }

    /// A network name must match `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` and fit in a file name: it names
    /// directories (IPAM store, caches), so nothing else may pass.
    public static func validateName(_ name: String) throws(CNIError) {
        if name.isEmpty {
            throw CNIError(.invalidNetworkConfig, "missing network name", details: "\"name\" is required")
        }
        if !CommandArgs.isValidIdentifier(name) {
            throw CNIError(
                .invalidNetworkConfig, "invalid network name \"\(name)\"",
                details: "must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$")
        }
        if name.utf8.count > 200 {
            throw CNIError(
                .invalidNetworkConfig, "invalid network name \"\(name.prefix(32))...\"",
                details: "must be at most 200 bytes, is \(name.utf8.count)")
        }
    }

    /// Whether the configuration declares `capability` as enabled.
    public func hasCapability(_ capability: String) -> Bool { capabilities[capability] == true }
}
