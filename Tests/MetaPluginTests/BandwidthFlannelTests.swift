import Base
import CNI
import Netlink
import Testing

@testable import BandwidthPlugin
@testable import FlannelPlugin

func netconf(_ json: String, ipamNeedsType: Bool = true) throws -> NetConf {
    try NetConf(decoding: Array(json.utf8), ipamNeedsType: ipamNeedsType)
}

@Suite struct TokenBucketTests {
    @Test func aBucketIsTheReferencesRateBurstQueueAndBuffer() throws {
        let b = try #require(TokenBucket(rate: 1_000_000, burst: 100_000))
        #expect(b.limit == 25_000 + 100_000, "25 ms at the rate, plus the burst")
        #expect(b.bufferTicks == 1_562_500, "100 ms of 64 ns ticks")
    }

    @Test func aBurstLongerThanTheKernelKeepsIsKeptAsThat() throws {
        let b = try #require(TokenBucket(rate: 1000, burst: 100_000_000))
        #expect(b.bufferTicks == UInt32(UInt64(UInt32.max) / 64))
    }

    @Test func zeroesAndOverflowsAreRefused() {
        #expect(TokenBucket(rate: 0, burst: 10) == nil)
        #expect(TokenBucket(rate: 10, burst: 0) == nil)
        #expect(TokenBucket(rate: UInt64.max / 100, burst: 10) == nil, "the 25 ms queue overflows 32 bits")
        #expect(TokenBucket(rate: 10, burst: UInt64(UInt32.max) + 1) == nil)
    }
}

@Suite struct BandwidthConfigTests {
    @Test func runtimeConfigWinsAndKeysMatchCaseInsensitively() throws {
        let c = try BandwidthConfig(
            netconf(
                #"{"cniVersion":"1.1.0","name":"n","type":"bandwidth","ingressRate":800,"ingressBurst":800,"#
                    + #""runtimeConfig":{"bandWidth":{"IngressRate":8000000,"ingressBurst":80000}}}"#))
        #expect(c.ingress?.rate == 1_000_000 && c.ingress?.burst == 10_000)
        #expect(c.egress == nil)
    }

    @Test func theConfigsOwnKeysAreTheFallback() throws {
        let c = try BandwidthConfig(netconf(#"{"cniVersion":"1.1.0","name":"n","type":"bandwidth","egressRate":16000,"egressBurst":16000}"#))
        #expect(c.egress?.rate == 2000 && c.ingress == nil)
    }

    @Test func aRateWithoutItsBurstNamesTheBurst() throws {
        let error = #expect(throws: CNIError.self) {
            _ = try BandwidthConfig(netconf(#"{"cniVersion":"1.1.0","name":"n","type":"bandwidth","ingressRate":8000}"#))
        }
        #expect(error?.code == .invalidNetworkConfig && error?.details.contains("ingressBurst") == true)
        // At DEL the same limits are left out instead of refused.
        #expect(
            try BandwidthConfig(netconf(#"{"cniVersion":"1.1.0","name":"n","type":"bandwidth","ingressRate":8000}"#), forAdd: false).isEmpty)
    }

    @Test func theIFBIsNamedAsTheReferenceNamesIt() {
        // sha512("bwctr-a") starts 4e40291462db (sha512sum of the same bytes).
        #expect(Shaping.ifbName(network: "bw", containerID: "ctr-a") == "bwp4e40291462db")
    }
}

@Suite struct FlannelTests {
    let full = "FLANNEL_NETWORK=10.244.0.0/16,10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"

    @Test func theSubnetFileIsReadAsFlannelWritesIt() throws {
        let env = try SubnetEnv.parse(full, path: "s")
        #expect(env.networks.map(\.description) == ["10.244.0.0/16"], "a network given twice is kept once")
        #expect(env.subnet?.description == "10.244.7.0/24", "the node's subnet, not its first address")
        #expect(env.mtu == 1450 && env.ipMasq == true)
    }

    @Test func aMissingKeyIsTryAgainLaterAndABadValueNamesItsKey() {
        let missing = #expect(throws: CNIError.self) { _ = try SubnetEnv.parse("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n", path: "s") }
        #expect(missing?.code == .tryAgainLater && missing?.msg.contains("FLANNEL_MTU, FLANNEL_IPMASQ") == true)
        let bad = #expect(throws: CNIError.self) { _ = try SubnetEnv.parse(full + "FLANNEL_SUBNET=10.244.7/24\n", path: "s") }
        #expect(bad?.code == .decodingFailure && bad?.msg.contains("FLANNEL_SUBNET") == true)
    }

    @Test func theDelegateIsFlannelsAndTheUsersKeysWin() throws {
        let nc = try netconf(
            #"{"cniVersion":"1.0.0","name":"cbr0","type":"flannel","delegate":{"hairpinMode":true,"mtu":1400},"#
                + #""ipam":{"routes":[{"dst":"192.0.2.0/24"}]},"runtimeConfig":{"portMappings":[]}}"#, ipamNeedsType: false)
        let ctx = PluginContext(
            args: CommandArgs(command: .add, containerID: "c", netns: "/x", ifName: "eth0", path: []), config: nc, stdin: [],
            environment: [:], log: { _ in })
        let d = Flannel.delegateConfig(ctx, try FlannelConfig(nc), try SubnetEnv.parse(full, path: "s"))
        #expect(d["type"] == .string("bridge") && d["name"] == .string("cbr0") && d["cniVersion"] == .string("1.0.0"))
        #expect(d["hairpinMode"] == .bool(true) && d["mtu"] == .int(1400), "the user's keys stay")
        #expect(d["ipMasq"] == .bool(false), "the agent masquerades (FLANNEL_IPMASQ=true)")
        #expect(d["isGateway"] == .bool(true) && d["runtimeConfig"] != nil)
        let ipam = try #require(d["ipam"]?.objectValue)
        #expect(ipam["type"] == .string("host-local"))
        #expect(ipam["ranges"] == .array([.array([.object(["subnet": .string("10.244.7.0/24")])])]))
        #expect(ipam["routes"]?.arrayValue?.compactMap { $0.objectValue?["dst"]?.stringValue } == ["192.0.2.0/24", "10.244.0.0/16"])
    }

    @Test func aDelegateNameOrIPAMIsRefused() throws {
        for key in ["name", "ipam"] {
            let error = #expect(throws: CNIError.self) {
                _ = try FlannelConfig(netconf(#"{"cniVersion":"1.0.0","name":"n","type":"flannel","delegate":{"\#(key)":"x"}}"#))
            }
            #expect(error?.msg.contains("delegate.\(key)") == true)
        }
    }
}
