import Base
import CNI
import NFTables
import Netlink

// The kernel libraries know nothing of the spec; a plugin's failed netlink or nftables request
// becomes its CNI error here.

extension NetlinkError: CNIErrorConvertible {
    /// Code 103, the operation as the message and the kernel's reason as the details.
    public var cniError: CNIError {
        CNIError(.kernelOperationFailed, operation, details: extendedAck.isEmpty ? reason : "\(reason) (\(extendedAck))")
    }
}

extension NFTError: CNIErrorConvertible {
    /// Code 104, the failing nft command as the message.
    public var cniError: CNIError { CNIError(.firewallFailed, operation, details: reason) }
}

extension NFTSocket {
    /// A socket for a plugin: a failure is the plugin's code 104 error.
    public static func open() throws(CNIError) -> NFTSocket {
        do { return try NFTSocket() } catch {
            throw CNIError(.firewallFailed, "cannot open a netfilter socket", details: error.description)
        }
    }
}
