import Base
import CNI
import CNIRuntime
import Testing

/// Golden documents: the spec's examples for each result shape.
enum Golden {
    static let v020 = #"{"cniVersion":"0.2.0","ip4":{"ip":"10.222.0.2/24","gateway":"10.222.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{}}"#
    static let v040 =
        #"{"cniVersion":"0.4.0","interfaces":[{"name":"cni0","mac":"c6:e0:63:33:9b:98"},{"name":"veth13fd3d21","mac":"fa:80:b6:db:ca:26"},{"name":"eth0","mac":"36:cb:66:d4:2f:d7","sandbox":"/run/netns/ctr-a"}],"ips":[{"version":"4","interface":2,"address":"10.222.0.2/24","gateway":"10.222.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#
    static let v110 =
        #"{"cniVersion":"1.1.0","interfaces":[{"name":"cni0","mac":"c6:e0:63:33:9b:98","mtu":1450},{"name":"veth13fd3d21","mac":"fa:80:b6:db:ca:26","mtu":1450},{"name":"eth0","mac":"36:cb:66:d4:2f:d7","mtu":1450,"sandbox":"/run/netns/ctr-a"}],"ips":[{"interface":2,"address":"10.222.0.2/24","gateway":"10.222.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.222.0.1","priority":100},{"dst":"10.244.0.0/16","mtu":1450,"scope":0}],"dns":{"nameservers":["10.222.0.1"],"search":["dns.podman"]}}"#

    /// A dual-stack result with one address per family, expressible in every version.
    static let dual = CNIResult(
        interfaces: [
            .init(name: "br0", mac: "02:00:00:00:00:01", mtu: 1400),
            .init(name: "eth0", mac: "02:00:00:00:00:02", mtu: 1400, sandbox: "/run/netns/a", pciID: "0000:00:01.0"),
        ],
        ips: [
            .init(address: IPPrefix("10.1.0.5/24")!, gateway: IPAddress("10.1.0.1"), interface: 1),
            .init(address: IPPrefix("2001:db8::5/64")!, gateway: IPAddress("2001:db8::1"), interface: 1),
        ],
        routes: [
            .init(dst: IPPrefix("0.0.0.0/0")!, gw: IPAddress("10.1.0.1"), priority: 10),
            .init(dst: IPPrefix("::/0")!, mtu: 1300, table: 100, scope: 0),
        ],
        dns: .init(nameservers: ["10.1.0.1"], domain: "example", search: ["a.example"], options: ["ndots:2"]))
}

@Suite struct ResultTests {
    @Test(arguments: [Golden.v020, Golden.v040, Golden.v110])
    func goldenDocumentsRoundTripExactly(_ text: String) throws {
        let doc = json(text)
        let version = CNIVersion(rawValue: doc.objectValue!["cniVersion"]!.stringValue!)!
        let r = try CNIResult(json: doc)
        #expect(try r.json(version: version).serialized() == text)
    }

    @Test(arguments: CNIVersion.allSupported)
    func everyVersionRoundTrips(_ v: CNIVersion) throws {
        let printed = try Golden.dual.json(version: v)
        let back = try CNIResult(json: printed)
        #expect(try back.json(version: v) == printed)
        // What each version keeps.
        let o = printed.objectValue!
        #expect(o["cniVersion"] == .string(v.rawValue))
        #expect(o["dns"] != nil)
        switch v {
        case .v0_1_0, .v0_2_0:
            #expect(o["interfaces"] == nil && o["ips"] == nil)
            #expect(o["ip4"]?.objectValue?["ip"] == .string("10.1.0.5/24"))
            #expect(o["ip6"]?.objectValue?["routes"]?.arrayValue?.count == 1)
            #expect(back.ips.map(\.interface) == [nil, nil])
        case .v0_3_0, .v0_3_1, .v0_4_0:
            #expect(o["ips"]?.arrayValue?.first?.objectValue?["version"] == .string("4"))
            #expect(o["interfaces"]?.arrayValue?.last?.objectValue?["mtu"] == nil)
            #expect(o["routes"]?.arrayValue?.first?.objectValue?["priority"] == nil)
        case .v1_0_0:
            #expect(o["ips"]?.arrayValue?.first?.objectValue?["version"] == nil)
            #expect(o["interfaces"]?.arrayValue?.last?.objectValue?["pciID"] == nil)
        case .v1_1_0:
            #expect(back == Golden.dual)
            #expect(o["interfaces"]?.arrayValue?.last?.objectValue?["pciID"] == .string("0000:00:01.0"))
            #expect(o["routes"]?.arrayValue?.last?.objectValue?["table"] == .int(100))
        }
    }

    @Test(arguments: CNIVersion.allSupported, CNIVersion.allSupported)
    func convertsBetweenAnyTwoVersions(_ from: CNIVersion, _ to: CNIVersion) throws {
        let source = try Golden.dual.json(version: from)
        let converted = try CNIResult.convert(source, to: to)
        #expect(converted.objectValue?["cniVersion"] == .string(to.rawValue))
        let r = try CNIResult(json: converted)
        #expect(r.ips.map(\.address.description) == ["10.1.0.5/24", "2001:db8::5/64"])
        #expect(r.routes.map(\.dst.description) == ["0.0.0.0/0", "::/0"])
        #expect(r.dns == Golden.dual.dns)
        // Interfaces survive unless either end is 0.1.0/0.2.0.
        let legacy: Set<CNIVersion> = [.v0_1_0, .v0_2_0]
        #expect(r.interfaces.count == (legacy.contains(from) || legacy.contains(to) ? 0 : 2))
    }

    @Test(arguments: [CNIVersion.v0_1_0, .v0_2_0])
    func twoAddressesOfAFamilyCannotBeExpressedInLegacyVersions(_ v: CNIVersion) throws {
        var r = Golden.dual
        r.ips.append(.init(address: IPPrefix("10.1.0.6/24")!, interface: 1))
        let err = try #require(throws: CNIError.self) { try r.json(version: v) }
        #expect(err.code == .incompatibleVersion)
        #expect(err.msg == "CNI version \(v) does not support more than 1 address per family")
        // Every later version can.
        for later in CNIVersion.allSupported where later > .v0_2_0 {
            #expect((try? r.json(version: later)) != nil)
        }
    }

    @Test func upConversionFromLegacyCollectsRoutesByFamily() throws {
        let r = try CNIResult(
            json: json(
                #"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/8","routes":[{"dst":"10.0.0.0/8","gw":"10.0.0.1"}]},"ip6":{"ip":"fd00::2/64","gateway":"fd00::1"},"dns":{"nameservers":["1.1.1.1"]}}"#
            ))
        #expect(
            try r.json(version: .v1_0_0).serialized()
                == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8"},{"address":"fd00::2/64","gateway":"fd00::1"}],"routes":[{"dst":"10.0.0.0/8","gw":"10.0.0.1"}],"dns":{"nameservers":["1.1.1.1"]}}"#
        )
    }

    @Test func badResultsAreDecodingErrorsNamingTheField() throws {
        let cases: [(String, CNIErrorCode, String)] = [
            (#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#, .invalidNetworkConfig, "result.ips[0].address"),
            (#"{"cniVersion":"1.0.0","ips":[{"address":5}]}"#, .decodingFailure, "result.ips[0].address"),
            (#"{"cniVersion":"1.0.0","ips":[{}]}"#, .decodingFailure, "result.ips[0].address"),
            (#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.2/24"}]}"#, .invalidNetworkConfig, "version"),
            (#"{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]}"#, .invalidNetworkConfig, "gw"),
            (#"{"cniVersion":"9.9.9"}"#, .incompatibleVersion, "9.9.9"),
            (#"{"cniVersion":"1.0.0","interfaces":"eth0"}"#, .decodingFailure, "result.interfaces"),
        ]
        for (text, code, mention) in cases {
            let err = try #require(throws: CNIError.self) { try CNIResult(json: json(text)) }
            #expect(err.code == code, "\(text)")
            #expect((err.msg + err.details).contains(mention), "\(err)")
        }
    }

    @Test func routeDestinationIsMaskedAndIPv6PrintsCanonically() throws {
        let r = try CNIResult(json: json(#"{"cniVersion":"1.1.0","routes":[{"dst":"10.1.2.3/8"},{"dst":"2001:0db8:0000::/32"}]}"#))
        #expect(r.routes.map(\.dst.description) == ["10.0.0.0/8", "2001:db8::/32"])
    }
}

/// The identity every plugin puts on a container's state across its attachments.
@Suite struct AttachmentTests {
    @Test func interfaceOrdinalOrdersTheWayRuntimesNameInterfaces() {
        #expect(["eth0", "eth1", "net1", "eth10", "foo", "", "eth99999999999"].map { InterfaceName.ordinal($0) } == [0, 1, 1, 10, 0, 0, 100_000])
    }

    @Test func theContainerTagIsTheSameOnEveryInterfaceAndNetwork() {
        let a = Attachment(containerID: "c1", ifName: "eth0"), b = Attachment(containerID: "c1", ifName: "eth1")
        #expect(a.containerTag == b.containerTag && a.containerTag.count == 16)
        #expect(a.containerTag != Attachment(containerID: "c2", ifName: "eth0").containerTag)
        #expect(a.ownerTag(network: "n") != b.ownerTag(network: "n"))
    }
}
