import Base
import CNI

/// The keys of a main plugin's configuration that its skeleton reads.
public protocol MainPluginConfig {
    /// The IPAM plugin's type; nil for an attachment without addresses (`ipam` absent, `{}` or
    /// without a type: a pure layer-2 port).
    var ipam: String? { get }
    /// The configuration's `dns`, which replaces IPAM's in the result when it is not empty.
    var dns: CNIResult.DNS? { get }
}

/// A main plugin, the one that gives the container its interface, written as its configuration
/// and its named steps; the skeleton (this protocol's extension) runs every verb around them:
///
/// - ADD: ``decode(_:args:forAdd:)``; ``prepare(_:_:)``, where everything that can be refused is
///   refused before anything changes; the IPAM plugin found on CNI_PATH and its ADD started in the
///   background; ``makeInterface(_:_:_:)`` while IPAM runs; ``configure(_:_:ipam:_:)`` with IPAM's
///   addresses; `dns`; the result checked printable in the asked version. A failure at any point
///   runs the undo steps registered so far in reverse, IPAM DEL among them once IPAM answered.
/// - DEL: IPAM DEL in the background beside ``teardown(_:_:_:)``; every step runs, whatever
///   fails, and the failures are reported together.
/// - CHECK: prevResult required, IPAM CHECK, then ``verify(_:_:_:)``.
/// - GC: ``collect(_:_:_:)``, then IPAM GC. STATUS: ``ready(_:_:)``, then IPAM STATUS.
public protocol MainPlugin: CNIPlugin {
    /// The plugin's configuration.
    associatedtype Config: MainPluginConfig
    /// What ``prepare(_:_:)`` found (sockets, the links looked up) and the later steps build on.
    associatedtype Prepared
    /// The interface ``makeInterface(_:_:_:)`` made, which ``configure(_:_:ipam:_:)`` addresses.
    associatedtype Made

    /// The configuration decoded and validated with no kernel call; `forAdd` is false for DEL,
    /// CHECK, GC and STATUS, which must accept settings ADD refuses.
    static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> Config
    /// Looks up what ADD needs and refuses what it cannot do, before IPAM runs: a refused ADD
    /// changes nothing (a change made here registers its undo with `add`).
    func prepare(_ conf: Config, _ add: AddSteps) throws -> Prepared
    /// Makes the container's interface while IPAM runs; each change registers its undo with `add`.
    func makeInterface(_ conf: Config, _ prepared: Prepared, _ add: AddSteps) throws -> Made
    /// Puts IPAM's addresses (nil without IPAM) on the interface and returns the result, its
    /// interfaces listed; changes made here register their undo with `add`.
    func configure(_ conf: Config, _ made: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult
    /// DEL's own steps, run beside IPAM DEL, each through `failures.run`: a missing namespace or
    /// interface is success.
    func teardown(_ conf: Config, _ ctx: PluginContext, _ failures: inout StepFailures)
    /// CHECK's own step after IPAM's: throws code 108 naming what differs from `prev`.
    func verify(_ conf: Config, _ prev: CNIResult, _ ctx: PluginContext) throws
    /// GC's own steps before IPAM GC, each through `failures.run` (default: none).
    func collect(_ conf: Config, _ ctx: PluginContext, _ failures: inout StepFailures)
    /// STATUS's own check before IPAM's: throws code 50 when ADD cannot be served (default: none).
    func ready(_ conf: Config, _ ctx: PluginContext) throws
}

extension MainPlugin {
    /// Validation is the ADD decoding.
    public static func validate(_ config: NetConf, args: CommandArgs) throws(CNIError) {
        _ = try decode(config, args: args, forAdd: true)
    }

    /// ADD: the named steps with IPAM in the background and the rollback (see ``MainPlugin``).
    public func add(_ ctx: PluginContext) throws -> CNIResult {
        let conf = try Self.decode(ctx.config, args: ctx.args, forAdd: true)
        let steps = AddSteps(ctx, plugin: Self.type)
        defer { steps.rollBackUnlessCommitted() }
        let prepared = try prepare(conf, steps)
        let ipam = try conf.ipam.map { type in try steps.startIPAM(type) }
        let made = try makeInterface(conf, prepared, steps)
        var result = try configure(conf, made, ipam: try ipam?.addresses(), steps)
        if let dns = conf.dns, !dns.isEmpty { result.dns = dns }
        // Fail now, while the undo steps are armed, if the result cannot be printed in the asked version.
        _ = try result.json(version: ctx.config.cniVersion)
        steps.commit()
        return result
    }

    /// DEL: IPAM DEL (a child process) beside the plugin's teardown; all failures together.
    public func del(_ ctx: PluginContext) throws {
        let conf = try Self.decode(ctx.config, args: ctx.args, forAdd: false)
        var failures = StepFailures()
        let ipam = conf.ipam.map { type in BackgroundTask { try Delegate.run(type, .del, ctx) } }
        teardown(conf, ctx, &failures)
        if let ipam { failures.run("IPAM DEL", code: .delegateFailed) { try ipam.value() } }
        try failures.throwIfAny("\(Self.type) DEL was incomplete")
    }

    /// CHECK: prevResult, IPAM CHECK, then the plugin's verification.
    public func check(_ ctx: PluginContext) throws {
        let conf = try Self.decode(ctx.config, args: ctx.args, forAdd: false)
        let prev = try ctx.checkedPrevResult(Self.type)
        if let ipam = conf.ipam { try Delegate.run(ipam, .check, ctx) }
        try verify(conf, prev, ctx)
    }

    /// GC: the plugin's collection, then IPAM GC; every step runs, failures together.
    public func gc(_ ctx: PluginContext) throws {
        let conf = try Self.decode(ctx.config, args: ctx.args, forAdd: false)
        var failures = StepFailures()
        collect(conf, ctx, &failures)
        if let ipam = conf.ipam { failures.run("IPAM GC", code: .delegateFailed) { try Delegate.run(ipam, .gc, ctx) } }
        try failures.throwIfAny("\(Self.type) GC was incomplete")
    }

    /// STATUS: the plugin's readiness, then IPAM's.
    public func status(_ ctx: PluginContext) throws {
        let conf = try Self.decode(ctx.config, args: ctx.args, forAdd: false)
        try ready(conf, ctx)
        if let ipam = conf.ipam { try Delegate.run(ipam, .status, ctx) }
    }

    /// No GC steps of its own.
    public func collect(_ conf: Config, _ ctx: PluginContext, _ failures: inout StepFailures) {}

    /// Ready whenever IPAM is.
    public func ready(_ conf: Config, _ ctx: PluginContext) throws {}
}

/// One ADD in progress: its context, the undo steps registered so far and IPAM running in the
/// background. The skeleton runs the undo steps in reverse when the ADD fails.
public final class AddSteps {
    /// The invocation's context.
    public let ctx: PluginContext
    private let plugin: String
    private let rollback = Rollback()

    init(_ ctx: PluginContext, plugin: String) {
        self.ctx = ctx
        self.plugin = plugin
    }

    /// Registers the undo of a change just made; `what` names it in the log if it fails.
    public func undo(_ what: String, _ step: @escaping () throws -> Void) { rollback.add(what, step) }

    /// The IPAM plugin found on CNI_PATH (refused before anything runs when it is not there), its
    /// ADD started in the background, its DEL registered as an undo step that waits for it.
    func startIPAM(_ type: String) throws(CNIError) -> IPAMInBackground {
        _ = try Delegate.find(type, in: ctx.args.path)
        let ctx = self.ctx
        let task = BackgroundTask { try Delegate.add(type, ctx) }
        undo("IPAM DEL") { if (try? task.value()) != nil { try Delegate.run(type, .del, ctx) } }
        return IPAMInBackground(type: type, task: task)
    }

    func commit() { rollback.disarm() }

    func rollBackUnlessCommitted() {
        rollback.runIfArmed()
        if !rollback.failures.isEmpty { ctx.log("\(plugin): rollback: \(rollback.failures.joined(separator: "; "))") }
    }
}

/// IPAM ADD running in the background.
struct IPAMInBackground {
    let type: String
    let task: BackgroundTask<CNIResult>

    /// IPAM's result once it answered; one without an address is refused.
    func addresses() throws -> CNIResult {
        let result = try task.value()
        guard !result.ips.isEmpty else { throw CNIError(.invalidNetworkConfig, "IPAM plugin \"\(type)\" returned no address") }
        return result
    }
}

extension CNIResult {
    /// IPAM's addresses (with their gateways), routes and DNS, the addresses on the result's
    /// interface `interface` (its index in `interfaces`).
    public init(addressesOf ipam: CNIResult, onInterface interface: Int) {
        self.init()
        ips = ipam.ips.map { IPConfig(address: $0.address, gateway: $0.gateway, interface: interface) }
        routes = ipam.routes
        dns = ipam.dns
    }
}
