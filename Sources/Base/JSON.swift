/// A JSON document as the CNI protocol carries it.
///
/// Objects keep their keys in document order so that a runtime can pass unknown keys through
/// unchanged (spec section "Network configuration") and so that output is stable for golden tests.
/// Numbers keep their literal text, so a value is never rounded on its way through.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A number from an integer.
    public static func int(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }

    /// The object, or nil for any other kind of value.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The string, or nil for any other kind of value.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The array, or nil for any other kind of value.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// A word for the kind of value, used in error messages ("expected string, got number 5").
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON number, kept as its literal text.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The number exactly as written in the document (or as produced by ``init(_:)``).
    public let text: String

    /// A number from an integer.
    public init(_ value: Int) { text = String(value) }

    init(literal: String) { text = literal }

    /// The value as a whole number, or nil if it has a fraction, an exponent or is out of range.
    public var intValue: Int? { Int(text) }

    /// The value as a double (always defined for a valid literal).
    public var doubleValue: Double { Double(text) ?? .nan }

    public var description: String { text }

    /// Equal when both are the same integer, or the same number as a Double.
    public static func == (a: JSONNumber, b: JSONNumber) -> Bool {
        if a.text == b.text { return true }
        return a.doubleValue == b.doubleValue
    }
}

/// A JSON object with keys in document order. Setting an existing key replaces its value in place.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(key: String, value: JSONValue)] = []

    /// An empty object.
    public init() {}

    /// An object with `elements` in the order written (a later key replaces an earlier one in place).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// The keys in document order.
    public var keys: [String] { entries.map(\.key) }
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// The value for `key`; assigning nil removes the key.
    public subscript(key: String) -> JSONValue? {
        get {
            for e in entries where e.key == key { return e.value }
            return nil
        }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    /// The members in the order they were read or set.
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> {
        entries.makeIterator()
    }

    /// Objects are equal when they have the same keys with equal values, in any order.
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.entries.count == b.entries.count else { return false }
        for e in a.entries where b[e.key] != e.value { return false }
        return true
    }
}

/// A syntax error in a JSON document, with the byte offset where it was found.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSONValue {
    /// The deepest nesting of arrays and objects the parser accepts. Deeper documents are
    /// rejected with an error instead of exhausting the stack.
    public static let maximumDepth = 512

    /// Parses a complete JSON document (RFC 8259). Throws ``JSONSyntaxError``.
    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONSyntaxError) -> JSONValue in
            var p = JSONParser(buf)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            if p.i != buf.count { throw p.fail("unexpected data after the JSON value") }
            return v
        }
    }

    /// Parses a JSON document held in a string.
    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

private struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0

    init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

    func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, reason: reason) }

    mutating func skipSpace() {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard i < b.count else { throw fail(i == 0 ? "empty input" : "unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"): return .object(try object(depth: depth + 1))
        case UInt8(ascii: "["): return .array(try array(depth: depth + 1))
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default:
            throw fail("invalid character \(describe(b[i])) looking for beginning of value")
        }
    }

    func describe(_ c: UInt8) -> String {
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "0x" + String(c, radix: 16)
    }

    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw fail("unexpected end of input") }
        for k in 0..<n where b[i + k] != word.utf8Start[k] {
            i += k
            throw fail("invalid literal")
        }
        i += n
    }

    mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONObject {
        if depth > JSONValue.maximumDepth { throw fail("nesting deeper than \(JSONValue.maximumDepth) levels") }
        i += 1  // {
        var obj = JSONObject()
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return obj }
        while true {
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of input in object") }
            guard b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key in object") }
            let key = try string()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':' after object key") }
            i += 1
            skipSpace()
            obj[key] = try value(depth: depth)
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of input in object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return obj }
            throw fail("expected ',' or '}' in object")
        }
    }

    mutating func array(depth: Int) throws(JSONSyntaxError) -> [JSONValue] {
        if depth > JSONValue.maximumDepth { throw fail("nesting deeper than \(JSONValue.maximumDepth) levels") }
        i += 1  // [
        var arr: [JSONValue] = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return arr }
        while true {
            skipSpace()
            arr.append(try value(depth: depth))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of input in array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return arr }
            throw fail("expected ',' or ']' in array")
        }
    }

    mutating func number() throws(JSONSyntaxError) -> JSONNumber {
        let start = i
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.b.count, p.b[p.i] >= 0x30, p.b[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count else { throw fail("unexpected end of input in number") }
        if b[i] == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw fail("invalid number")
        }
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            if digits(&self) == 0 { throw fail("invalid number: digits expected after '.'") }
        }
        if i < b.count && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            if i < b.count && (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) { i += 1 }
            if digits(&self) == 0 { throw fail("invalid number: digits expected in exponent") }
        }
        return JSONNumber(literal: String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
    }

    mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("unexpected end of input in \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONSyntaxError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = try validated(UnsafeBufferPointer(rebasing: b[start..<i]), at: start)
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            i += 1
        }
        var out: [UInt8] = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = try out.withUnsafeBufferPointer { (p) throws(JSONSyntaxError) -> String in
                    try validated(p, at: start)
                }
                i += 1
                return s
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar), i + 6 <= b.count, b[i] == UInt8(ascii: "\\"),
                    b[i + 1] == UInt8(ascii: "u")
                {
                    let save = i
                    i += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        i = save
                    }
                }
                // Lone surrogates become U+FFFD, as Go's encoding/json does.
                let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                i -= 1
                throw fail("invalid escape \(describe(e)) in string")
            }
        }
        throw fail("unexpected end of input in string")
    }

    func validated(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) throws(JSONSyntaxError) -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw JSONSyntaxError(offset: offset, reason: "invalid UTF-8 in string")
        }
        return s
    }
}

// MARK: - Serialization

extension JSONValue {
    /// The document as compact JSON text (no spaces), or indented by four spaces per level.
    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(256)
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let v): out += v ? "true" : "false"
        case .number(let n): out += n.text
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (k, v) in a.enumerated() {
                if k > 0 { out += "," }
                if pretty { newline(&out, indent + 1) }
                v.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out += "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            for (k, e) in o.entries.enumerated() {
                if k > 0 { out += "," }
                if pretty { newline(&out, indent + 1) }
                JSONValue.writeString(e.key, to: &out)
                out += pretty ? ": " : ":"
                e.value.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out += "}"
        }
    }

    private func newline(_ out: inout String, _ level: Int) {
        out += "\n"
        for _ in 0..<level { out += "    " }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        var plainStart = s.utf8.startIndex
        var idx = plainStart
        let u = s.utf8
        while idx != u.endIndex {
            let c = u[idx]
            let esc: String?
            switch c {
            case 0x22: esc = "\\\""
            case 0x5C: esc = "\\\\"
            case 0x0A: esc = "\\n"
            case 0x0D: esc = "\\r"
            case 0x09: esc = "\\t"
            case 0..<0x20:
                let h = String(c, radix: 16)
                esc = "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: esc = nil
            }
            if let esc {
                out += Substring(u[plainStart..<idx])
                out += esc
                plainStart = u.index(after: idx)
            }
            idx = u.index(after: idx)
        }
        out += Substring(u[plainStart..<idx])
        out += "\""
    }
}
