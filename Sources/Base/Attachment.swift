/// An attachment of a container to a network: the pair that identifies it (spec section 3).
public struct Attachment: Sendable, Hashable, CustomStringConvertible {
    public var containerID: String
    public var ifName: String
    /// The attachment of `containerID` on `ifName`.
    public init(containerID: String, ifName: String) {
        self.containerID = containerID
        self.ifName = ifName
    }
    public var description: String { "\(containerID)/\(ifName)" }

    /// The owner tag every plugin puts on the state it makes for this attachment (firewall
    /// elements, DNS records): `<network hash>:<attachment hash>`, so DEL and GC find it by tag.
    public func ownerTag(network: String) -> String {
        "\(Attachment.networkTag(network)):\(Attachment.shortHash(containerID, ifName))"
    }

    /// The prefix all owner tags of a network share.
    public static func networkTag(_ network: String) -> String { shortHash(network) }

    /// The tag of the container, the same in all of its attachments (16 hex digits): what tells
    /// the plugins that two attachments are one container's (shared host ports, names across
    /// its networks).
    public var containerTag: String { Attachment.shortHash("container", containerID) }

    /// 16 hex digits of SHA-512 over the parts (NUL-separated): stable names and tags.
    public static func shortHash(_ parts: String...) -> String {
        SHA512.hex(SHA512.hash(Array(parts.joined(separator: "\u{0}").utf8)).prefix(8))
    }
}
