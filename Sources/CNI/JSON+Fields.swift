import Base
/// Typed access to the fields of a JSON object. Every error names the field's full path, so a user
/// reads `invalid type for "ipam.ranges[0][1].subnet": expected string, got number 5`.
///
/// A wrong JSON type is code 6 (the content does not decode); a well-typed but wrong value is code
/// 7 (invalid network configuration), raised by the caller through ``invalid(_:_:_:)``.
/// A key whose value is `null` reads as absent, as Go's encoding/json does.
public struct Fields: Sendable {
    public let object: JSONObject
    /// The path of this object in the document; empty at the top level.
    public let path: String

    /// The fields of `object`, found at `path` in the document (empty: the top level).
    public init(_ object: JSONObject, path: String = "") {
        self.object = object
        self.path = path
    }

    /// The path of `key` in this object.
    public func pathOf(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The raw value of `key`, nil when absent or null. As Go's encoding/json (which the
    /// reference plugins and every Go runtime use) a key matches case-insensitively when no key
    /// matches exactly: go-cni sends port mappings as `{"HostPort":8080,"ContainerPort":80}`.
    public subscript(key: String) -> JSONValue? {
        var v = object[key]
        if v == nil { v = object.entries.first { Fields.equalFoldingASCII($0.key, key) }?.value }
        if let v, v != .null { return v }
        return nil
    }

    /// ASCII case-insensitive equality without making lowercased copies (the lookup of every
    /// absent optional key takes this path, on every plugin's start).
    static func equalFoldingASCII(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count
            && zip(a.utf8, b.utf8).allSatisfy { x, y in
                x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A)
            }
    }

    /// Field `key` as a string; nil when absent or null; code 7 naming it when of another type.
    public func string(_ key: String) throws(CNIError) -> String? {
        guard let v = self[key] else { return nil }
        return try v.string(at: pathOf(key))
    }

    /// Field `key` as a Bool; nil when absent or null; code 7 naming it when of another type.
    public func bool(_ key: String) throws(CNIError) -> Bool? {
        guard let v = self[key] else { return nil }
        return try v.bool(at: pathOf(key))
    }

    /// A boolean that may also be written as the string "true" or "false" (libcni accepts both
    /// for list-level flags such as `disableCheck`).
    public func looseBool(_ key: String) throws(CNIError) -> Bool? {
        guard let v = self[key] else { return nil }
        if case .string(let s) = v {
            switch s.lowercased() {
            case "true": return true
            case "false": return false
            default: throw Fields.invalid(pathOf(key), v, "must be true or false")
            }
        }
        return try v.bool(at: pathOf(key))
    }

    /// Field `key` as an integer in `range`; nil when absent or null; code 7 naming it otherwise.
    public func int(_ key: String, in range: ClosedRange<Int>) throws(CNIError) -> Int? {
        guard let v = self[key] else { return nil }
        return try v.int(at: pathOf(key), in: range)
    }

    /// Field `key` as a link MTU: nil when absent, null or 0 (the kernel's choice), else 68 to
    /// 65535; code 7 naming it otherwise.
    public func linkMTU(_ key: String = "mtu") throws(CNIError) -> Int? {
        guard let m = try int(key, in: 0...65535), m != 0 else { return nil }
        if m < 68 { throw Fields.invalid(pathOf(key), .int(m), "must be at least 68") }
        return m
    }

    /// Field `key` as an interface name: nil when absent, null or empty; code 7 ("invalid KEY
    /// \"NAME\"", the reason in the details) when the kernel would refuse it.
    public func interfaceName(_ key: String) throws(CNIError) -> String? {
        guard let n = try string(key), !n.isEmpty else { return nil }
        do {
            try CommandArgs.validateInterfaceName(n, variable: key)
        } catch {
            throw CNIError(.invalidNetworkConfig, "invalid \(key) \"\(n)\"", details: error.details)
        }
        return n
    }

    /// Field `key` as an object's fields; nil when absent or null; code 7 naming it otherwise.
    public func object(_ key: String) throws(CNIError) -> Fields? {
        guard let v = self[key] else { return nil }
        return Fields(try v.object(at: pathOf(key)), path: pathOf(key))
    }

    /// Field `key` as an array; nil when absent or null; code 7 naming it otherwise.
    public func array(_ key: String) throws(CNIError) -> [JSONValue]? {
        guard let v = self[key] else { return nil }
        return try v.array(at: pathOf(key))
    }

    /// Field `key` as an array of strings; nil when absent or null; code 7 naming the element otherwise.
    public func stringArray(_ key: String) throws(CNIError) -> [String]? {
        guard let a = try array(key) else { return nil }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for (i, e) in a.enumerated() { out.append(try e.string(at: "\(pathOf(key))[\(i)]")) }
        return out
    }

    /// An IP address; code 7 naming the value when the string is not one.
    public func address(_ key: String) throws(CNIError) -> IPAddress? {
        guard let s = try string(key) else { return nil }
        guard let a = IPAddress(s) else { throw Fields.invalid(pathOf(key), .string(s), "not an IP address") }
        return a
    }

    /// An address with prefix length (`10.0.0.0/24`); code 7 naming the value when malformed.
    public func prefix(_ key: String) throws(CNIError) -> IPPrefix? {
        guard let s = try string(key) else { return nil }
        guard let p = IPPrefix(s) else {
            throw Fields.invalid(pathOf(key), .string(s), "not an address with prefix length, such as 10.0.0.0/24")
        }
        return p
    }

    /// The code 7 error for a well-typed but unacceptable value.
    public static func invalid(_ path: String, _ value: JSONValue, _ why: String) -> CNIError {
        let shown: String
        if case .string(let s) = value { shown = "\"\(s)\"" } else { shown = value.serialized() }
        return CNIError(.invalidNetworkConfig, "invalid \(path) \(shown)", details: why)
    }
}

extension JSONValue {
    /// The code 6 error for a value of the wrong JSON type.
    public static func typeError(_ path: String, expected: String, got: JSONValue) -> CNIError {
        CNIError(
            .decodingFailure, "invalid type for \"\(path)\"",
            details: "expected \(expected), got \(CNIError.show(got))")
    }

    /// This value as a string; code 7 naming `path` otherwise.
    public func string(at path: String) throws(CNIError) -> String {
        guard case .string(let s) = self else { throw JSONValue.typeError(path, expected: "string", got: self) }
        return s
    }

    /// This value as a Bool; code 7 naming `path` otherwise.
    public func bool(at path: String) throws(CNIError) -> Bool {
        guard case .bool(let b) = self else { throw JSONValue.typeError(path, expected: "boolean", got: self) }
        return b
    }

    /// This value as an integer in `range`; code 7 naming `path` otherwise.
    public func int(at path: String, in range: ClosedRange<Int>) throws(CNIError) -> Int {
        guard case .number(let n) = self else {
            throw JSONValue.typeError(path, expected: "integer", got: self)
        }
        guard let i = n.intValue else {
            throw JSONValue.typeError(path, expected: "integer", got: self)
        }
        guard range.contains(i) else {
            throw Fields.invalid(path, self, "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return i
    }

    /// This value as an object; code 7 naming `path` otherwise.
    public func object(at path: String) throws(CNIError) -> JSONObject {
        guard case .object(let o) = self else { throw JSONValue.typeError(path, expected: "object", got: self) }
        return o
    }

    /// This value as an array; code 7 naming `path` otherwise.
    public func array(at path: String) throws(CNIError) -> [JSONValue] {
        guard case .array(let a) = self else { throw JSONValue.typeError(path, expected: "array", got: self) }
        return a
    }
}

/// A unicast MAC address from its text (`02:42:ac:11:00:02`); code 7 naming `field` otherwise.
public func parseMACAddress(_ text: String, field: String) throws(CNIError) -> [UInt8] {
    guard let mac = MACAddress(text) else {
        throw Fields.invalid(field, .string(text), "not a MAC address such as 02:42:ac:11:00:02")
    }
    if mac.isMulticast { throw Fields.invalid(field, .string(text), "is a multicast address") }
    return mac.bytes
}
