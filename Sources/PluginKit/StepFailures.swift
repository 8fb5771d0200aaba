import Base
import CNI
import Netlink

/// The failures of a cleanup (DEL, GC) that runs every step whatever fails, each keeping the
/// meaning of its own code: an IPAM plugin's CNI error passes through as it is, a lower layer's
/// error (netlink, nftables) keeps the code it knows, anything else takes the step's code. One
/// failure is reported as it is; several as `summary` with the first failure's code and every
/// failure in the details.
public struct StepFailures: Sendable {
    public private(set) var failures: [(step: String, error: CNIError)] = []
    /// No failure yet.
    public init() {}

    public var isEmpty: Bool { failures.isEmpty }

    /// Records that `step` failed with `error`; `code` when the error carries none.
    public mutating func record(_ step: String, _ error: any Error, code: CNIErrorCode) {
        let e: CNIError
        if let c = error as? CNIError {
            e = c
        } else if let c = error as? any CNIErrorConvertible {
            let inner = c.cniError
            e = CNIError(inner.code, "\(step): \(inner.msg)", details: inner.details)
        } else {
            e = CNIError(code, step, details: String(describing: error))
        }
        failures.append((step, e))
    }

    /// Runs `body`, recording its failure as `step`'s.
    public mutating func run(_ step: String, code: CNIErrorCode, _ body: () throws -> Void) {
        do { try body() } catch { record(step, error, code: code) }
    }

    /// Throws what was recorded, if anything.
    public func throwIfAny(_ summary: String) throws(CNIError) {
        guard let first = failures.first else { return }
        if failures.count == 1 { throw first.error }
        let all = failures.map { f in
            let said = f.error.msg.hasPrefix(f.step) ? f.error.msg : "\(f.step): \(f.error.msg)"
            return "\(said)\(f.error.details.isEmpty ? "" : " (\(f.error.details))") (code \(f.error.code))"
        }
        throw CNIError(first.error.code, summary, details: all.joined(separator: "; "))
    }
}

extension StepFailures {
    /// DEL's deletion of CNI_IFNAME in CNI_NETNS: nothing to do with CNI_NETNS empty, the
    /// namespace gone or the interface gone (a veth's or macvlan's peer goes with it).
    public mutating func deleteContainerInterface(_ ctx: PluginContext) {
        guard !ctx.args.netns.isEmpty else { return }
        run("delete \(ctx.args.ifName) in \(ctx.args.netns)", code: .kernelOperationFailed) {
            try NetworkNamespace.deleteInterface(ctx.args.ifName, inNamespaceAt: ctx.args.netns)
        }
    }
}
