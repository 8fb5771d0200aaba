import Base

/// Why an allocation or a range could not be made; host-local turns it into its CNI error (the
/// kind chooses the code: 7, 106 or 105), the message and details as they are.
public struct IPAMError: Error, Sendable, CustomStringConvertible {
    /// What failed, which chooses the CNI code.
    public enum Kind: Sendable {
        /// A range or range set that cannot be used as configured.
        case invalidConfig
        /// No address can be allocated (a range set exhausted, a requested address taken).
        case addressUnavailable
        /// The on-disk store could not be read or written.
        case storeFailure
        /// The attachment holds an address already (a second ADD).
        case conflict
    }

    public let kind: Kind
    public let msg: String
    public let details: String

    /// An error of `kind` with its message and, optionally, what the system said.
    public init(_ kind: Kind, _ msg: String, details: String = "") {
        self.kind = kind
        self.msg = msg
        self.details = details
    }

    /// `invalid <path> <value>`, naming the field and its value (as the configuration decoder does).
    public static func invalid(_ path: String, _ value: JSONValue, _ why: String) -> IPAMError {
        let shown: String
        if case .string(let s) = value { shown = "\"\(s)\"" } else { shown = value.serialized() }
        return IPAMError(.invalidConfig, "invalid \(path) \(shown)", details: why)
    }

    public var description: String { details.isEmpty ? msg : "\(msg): \(details)" }
}
