import Base
/// A version of the CNI specification.
public enum CNIVersion: String, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case v0_1_0 = "0.1.0"
    case v0_2_0 = "0.2.0"
    case v0_3_0 = "0.3.0"
    case v0_3_1 = "0.3.1"
    case v0_4_0 = "0.4.0"
    case v1_0_0 = "1.0.0"
    case v1_1_0 = "1.1.0"

    /// Every version this project implements, oldest first: what VERSION reports.
    public static let allSupported: [CNIVersion] = allCases
    /// The newest version: the internal result model is at this version.
    public static let latest: CNIVersion = .v1_1_0

    private var order: Int { CNIVersion.allCases.firstIndex(of: self)! }
    /// Older versions first.
    public static func < (a: CNIVersion, b: CNIVersion) -> Bool { a.order < b.order }
    public var description: String { rawValue }

    /// The version named by `text` among `supported`; code 1 naming both otherwise.
    public static func negotiate(_ text: String, supported: [CNIVersion] = allSupported) throws(CNIError)
        -> CNIVersion
    {
        if let v = CNIVersion(rawValue: text), supported.contains(v) { return v }
        let list = supported.map { "\"\($0)\"" }.joined(separator: ", ")
        throw CNIError(
            .incompatibleVersion, "incompatible CNI versions",
            details: "config is \"\(text)\", plugin supports [\(list)]")
    }

    /// Result shapes: 0.1.0/0.2.0 carry `ip4`/`ip6`; 0.3.0-0.4.0 `ips[].version`; 1.x neither.
    var resultFamily: ResultFamily {
        switch self {
        case .v0_1_0, .v0_2_0: return .legacy
        case .v0_3_0, .v0_3_1, .v0_4_0: return .versioned
        case .v1_0_0, .v1_1_0: return .current
        }
    }

    enum ResultFamily { case legacy, versioned, current }
}
