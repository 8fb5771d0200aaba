import Base
/// A CNI error code: the spec's codes 1-99 and this project's own codes (100 and up).
///
/// Every code the project uses is declared here and listed in docs/reliability.md; nowhere else invents one.
public struct CNIErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt
    /// The code `rawValue` (1-99 the spec's, 100+ plugin-specific).
    public init(rawValue: UInt) { self.rawValue = rawValue }

    // The spec's codes (SPEC.md "Error" section).
    /// 1: incompatible CNI version.
    public static let incompatibleVersion = CNIErrorCode(rawValue: 1)
    /// 2: unsupported field in network configuration; the message names key and value.
    public static let unsupportedField = CNIErrorCode(rawValue: 2)
    /// 3: container unknown or does not exist.
    public static let unknownContainer = CNIErrorCode(rawValue: 3)
    /// 4: invalid necessary environment variables; the message names them.
    public static let invalidEnvironment = CNIErrorCode(rawValue: 4)
    /// 5: I/O failure, e.g. reading stdin.
    public static let ioFailure = CNIErrorCode(rawValue: 5)
    /// 6: failed to decode content (JSON syntax, wrong types, oversized input).
    public static let decodingFailure = CNIErrorCode(rawValue: 6)
    /// 7: invalid network configuration.
    public static let invalidNetworkConfig = CNIErrorCode(rawValue: 7)
    /// 11: try again later (a transient condition).
    public static let tryAgainLater = CNIErrorCode(rawValue: 11)
    /// 50: plugin not available (STATUS).
    public static let notAvailable = CNIErrorCode(rawValue: 50)
    /// 51: plugin not available, existing containers may have limited connectivity (STATUS).
    public static let notAvailableLimitedConnectivity = CNIErrorCode(rawValue: 51)

    // This project's codes.
    /// 100: internal error: a condition the code did not expect (a bug; please report it).
    public static let internalError = CNIErrorCode(rawValue: 100)
    /// 101: the multi-call binary was started under a name that is no plugin of it.
    public static let unknownPlugin = CNIErrorCode(rawValue: 101)
    /// 102: a delegated plugin (IPAM) could not be found or run, or failed without a CNI error.
    public static let delegateFailed = CNIErrorCode(rawValue: 102)
    /// 103: a kernel operation (netlink, sysctl, namespace) failed; the message names it and the
    /// details carry the kernel's reason.
    public static let kernelOperationFailed = CNIErrorCode(rawValue: 103)
    /// 104: an nftables operation failed (ipMasq, port mappings); details carry the kernel's reason.
    public static let firewallFailed = CNIErrorCode(rawValue: 104)
    /// 105: on-disk state (IPAM store, result cache, records) could not be read or written.
    public static let stateStoreFailure = CNIErrorCode(rawValue: 105)
    /// 106: no address can be allocated: a range set is exhausted, or a requested address is
    /// outside every range or taken.
    public static let addressUnavailable = CNIErrorCode(rawValue: 106)
    /// 107: the attachment conflicts with existing state (a second ADD for the same container
    /// and interface, an interface name already in use).
    public static let conflict = CNIErrorCode(rawValue: 107)
    /// 108: CHECK found the attachment different from its result (an address, interface or rule
    /// is missing or changed).
    public static let checkFailed = CNIErrorCode(rawValue: 108)

    /// Every code above with a one-line meaning, in order: the table printed in docs/reliability.md.
    public static let documented: [(CNIErrorCode, String)] = [
        (.incompatibleVersion, "incompatible CNI version"),
        (.unsupportedField, "unsupported field in network configuration"),
        (.unknownContainer, "container unknown or does not exist"),
        (.invalidEnvironment, "invalid necessary environment variables"),
        (.ioFailure, "I/O failure"),
        (.decodingFailure, "failed to decode content"),
        (.invalidNetworkConfig, "invalid network configuration"),
        (.tryAgainLater, "try again later"),
        (.notAvailable, "plugin not available (STATUS)"),
        (.notAvailableLimitedConnectivity, "plugin not available, existing containers may have limited connectivity"),
        (.internalError, "internal error (a bug: please report it)"),
        (.unknownPlugin, "the binary was called under a name that is no plugin of it"),
        (.delegateFailed, "a delegated plugin could not be found or run, or failed without a CNI error"),
        (.kernelOperationFailed, "a kernel operation (netlink, sysctl, namespace) failed"),
        (.firewallFailed, "an nftables operation failed"),
        (.stateStoreFailure, "on-disk state could not be read or written"),
        (.addressUnavailable, "no address can be allocated (range exhausted, requested address unavailable)"),
        (.conflict, "the attachment conflicts with existing state"),
        (.checkFailed, "CHECK found the attachment different from its result"),
    ]

    public var description: String { String(rawValue) }
}

/// An error as the CNI protocol reports it: `{"cniVersion","code","msg","details"}` on stdout.
///
/// Messages are lower-case and say what failed on what; `details` carries the why.
public struct CNIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: CNIErrorCode
    public var msg: String
    public var details: String

    /// An error of `code` with a message that names the field or step, and details.
    public init(_ code: CNIErrorCode, _ msg: String, details: String = "") {
        self.code = code
        self.msg = msg
        self.details = details
    }

    public var description: String {
        details.isEmpty ? "\(msg) (code \(code))" : "\(msg): \(details) (code \(code))"
    }

    /// The error object. `cniVersion` is included when known; `details` only when not empty.
    public func json(version: CNIVersion?) -> JSONValue {
        var o = JSONObject()
        if let version { o["cniVersion"] = .string(version.rawValue) }
        o["code"] = .number(JSONNumber(Int(code.rawValue)))
        o["msg"] = .string(msg)
        if !details.isEmpty { o["details"] = .string(details) }
        return .object(o)
    }

    /// Reads an error object printed by a plugin (ours, or the Go library's form without
    /// `cniVersion`). Returns nil when `value` is not an error object.
    public init?(json value: JSONValue) {
        guard let o = value.objectValue, case .number(let n)? = o["code"], let code = n.intValue, code >= 0
        else { return nil }
        self.code = CNIErrorCode(rawValue: UInt(code))
        self.msg = o["msg"]?.stringValue ?? ""
        self.details = o["details"]?.stringValue ?? ""
    }
}

/// An error of a lower layer (netlink, nftables) that knows its CNI code, so the dispatcher reports
/// it as such instead of as an internal error.
public protocol CNIErrorConvertible: Error {
    var cniError: CNIError { get }
}

extension CNIErrorConvertible {
    /// `body`'s result, or its error as the plugin's CNI error (a library's typed throws at the
    /// plugin's boundary).
    public static func asCNI<T>(_ body: () throws(Self) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw error.cniError }
    }
}

extension CNIError {
    /// Wraps any error into a CNI error; one that is neither a CNI error nor convertible becomes
    /// code 100.
    public static func from(_ error: any Error) -> CNIError {
        if let e = error as? CNIError { return e }
        if let e = error as? any CNIErrorConvertible { return e.cniError }
        return CNIError(.internalError, "internal error", details: String(describing: error))
    }

    /// Short rendering of a JSON value for messages: `number 5`, `string "abc"`, cut at 64 bytes.
    static func show(_ v: JSONValue) -> String {
        var text = v.serialized()
        if text.utf8.count > 64 { text = String(text.utf8.prefix(61))! + "..." }
        switch v {
        case .null: return "null"
        case .object, .array: return "\(v.kindName) \(text)"
        default: return "\(v.kindName) \(text)"
        }
    }
}
