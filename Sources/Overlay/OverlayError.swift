import Base

/// Why the overlay's model could not do what was asked; the vxlan plugin turns it into its CNI
/// error (the kind chooses the code: 7, 106, 105, 11 or 103), the agent logs it.
public struct OverlayError: Error, Sendable, CustomStringConvertible {
    /// What failed, which chooses the CNI code.
    public enum Kind: Sendable {
        /// The network or subnet length cannot be used as configured.
        case invalidConfig
        /// No subnet is free in the network.
        case addressUnavailable
        /// The lease store could not be read or written.
        case storeFailure
        /// Not yet: another host holds the store's lock, or the agent has not written its file.
        case tryAgainLater
        /// A netlink request about the host's links failed.
        case kernelFailure
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

    public var description: String { details.isEmpty ? msg : "\(msg): \(details)" }
}
