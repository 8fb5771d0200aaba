import Base
import CNI
import Netlink

/// The bandwidth plugin's configuration: the limits of the reference plugin's keys, in bits per
/// second and bits, from `runtimeConfig.bandwidth` (the `bandwidth` capability: what the CRI
/// makes of the pod annotations) or else from the configuration's own keys. Keys match
/// case-insensitively, as the reference's Go decoding does (its integration suite writes
/// `bandWidth`). Decoded and validated with no kernel call.
struct BandwidthConfig {
    /// The bucket of traffic towards the container (the host veth's root qdisc); nil: unshaped.
    var ingress: TokenBucket?
    /// The bucket of traffic from the container (the IFB its host veth's ingress goes to).
    var egress: TokenBucket?
    /// Where the limits came from, for messages: `runtimeConfig.bandwidth` or the top level.
    var source = ""

    /// Nothing to shape: ADD passes prevResult on.
    var isEmpty: Bool { ingress == nil && egress == nil }

    /// `forAdd` false (DEL, GC, STATUS): limits that do not validate are left out instead of
    /// refused, so cleaning up never fails on them.
    init(_ conf: NetConf, forAdd: Bool = true) throws(CNIError) {
        var f = conf.fields
        source = ""
        if let rt = try conf.runtimeConfig.object("bandwidth") {
            f = rt
            source = "runtimeConfig.bandwidth."
        }
        do {
            ingress = try BandwidthConfig.bucket(f, rate: "ingressRate", burst: "ingressBurst", prefix: source)
            egress = try BandwidthConfig.bucket(f, rate: "egressRate", burst: "egressBurst", prefix: source)
        } catch {
            if forAdd { throw error }
            ingress = nil
            egress = nil
        }
    }

    /// The bucket of one direction: rate and burst both set or both 0 (absent); the kernel's
    /// fields must hold them (code 7 naming the key that does not fit).
    static func bucket(_ f: Fields, rate rateKey: String, burst burstKey: String, prefix: String) throws(CNIError) -> TokenBucket? {
        let rate = try f.int(rateKey, in: 0...Int.max) ?? 0
        let burst = try f.int(burstKey, in: 0...Int.max) ?? 0
        if rate == 0 && burst == 0 { return nil }
        if burst == 0 { throw Fields.invalid(prefix + rateKey, .int(rate), "is set, so \(prefix + burstKey) must be set too (bits)") }
        if rate == 0 { throw Fields.invalid(prefix + burstKey, .int(burst), "is set, so \(prefix + rateKey) must be set too (bits per second)") }
        if rate < 8 { throw Fields.invalid(prefix + rateKey, .int(rate), "must be at least 8 bits per second (one byte)") }
        if burst < 8 { throw Fields.invalid(prefix + burstKey, .int(burst), "must be at least 8 bits (one byte)") }
        guard UInt64(burst) / 8 < UInt64(UInt32.max) else {
            throw Fields.invalid(prefix + burstKey, .int(burst), "cannot be more than 4 GB (the kernel's 32-bit burst)")
        }
        guard let b = TokenBucket(rate: UInt64(rate) / 8, burst: UInt64(burst) / 8) else {
            throw Fields.invalid(
                prefix + rateKey, .int(rate), "with \(prefix + burstKey) \(burst), its 25 ms queue does not fit the kernel's 32-bit limit")
        }
        return b
    }
}
