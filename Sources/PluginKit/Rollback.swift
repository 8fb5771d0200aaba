import Base
/// Undo steps registered as an ADD makes progress, run in reverse order when it fails part-way.
/// `disarm()` once everything succeeded; otherwise `runIfArmed()` (in a `defer`) undoes it all.
public final class Rollback {
    private var steps: [(String, () throws -> Void)] = []
    private var armed = true
    /// Failures of undo steps, for the log (the ADD's own error is what is reported).
    public private(set) var failures: [String] = []

    /// An armed rollback with no step yet.
    public init() {}

    /// Registers an undo step; `what` names it in the failure list.
    public func add(_ what: String, _ step: @escaping () throws -> Void) { steps.append((what, step)) }

    /// The ADD succeeded: the steps will not run.
    public func disarm() { armed = false }

    /// Runs every step, last registered first, unless disarmed; records their failures and goes on.
    public func runIfArmed() {
        guard armed else { return }
        armed = false
        for (what, step) in steps.reversed() {
            do { try step() } catch { failures.append("\(what): \(error)") }
        }
    }
}
