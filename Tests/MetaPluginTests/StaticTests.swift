import Base
import CNI
import Testing

@testable import StaticPlugin

@Suite struct StaticConfigTests {
    let base =
        #"{"cniVersion":"1.1.0","name":"n","type":"bridge","ipam":{"type":"static","addresses":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"#
        + #""routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.1"]}}"#

    func conf(_ tail: String = "}", args: [(key: String, value: String)] = []) throws -> StaticConfig {
        try StaticConfig(netconf(base + tail), args: CommandArgs(command: .add, cniArgs: args))
    }

    @Test func theConfigurationsAddressesRoutesAndDNS() throws {
        let c = try conf()
        #expect(c.addresses.map(\.address.description) == ["10.1.0.5/24"] && c.addresses[0].gateway == IPAddress("10.1.0.1"))
        #expect(c.routes.map(\.dst.description) == ["0.0.0.0/0"] && c.dns.nameservers == ["10.1.0.1"])
    }

    @Test func cniArgsIPIsAppendedAndGatewayGoesToTheAddressesItsSubnetHolds() throws {
        let c = try conf(args: [("IP", "10.2.0.7/24, fd00::7/64"), ("GATEWAY", "10.2.0.1")])
        #expect(c.addresses.map(\.address.description) == ["10.1.0.5/24", "10.2.0.7/24", "fd00::7/64"])
        #expect(c.addresses.map { $0.gateway?.description ?? "-" } == ["10.1.0.1", "10.2.0.1", "-"])
    }

    @Test func argsThenRuntimeConfigReplaceTheAddresses() throws {
        #expect(try conf(#","args":{"cni":{"ips":["10.3.0.3/24"]}}}"#).addresses.map(\.address.description) == ["10.3.0.3/24"])
        let both = try conf(#","args":{"cni":{"ips":["10.3.0.3/24"]}},"runtimeConfig":{"ips":["10.4.0.4/24"]}}"#)
        #expect(both.addresses.map(\.address.description) == ["10.4.0.4/24"], "the ips capability wins")
    }

    @Test func anUnknownCNIArgIsRefusedUnlessIgnoreUnknown() throws {
        #expect(throws: CNIError.self) { _ = try conf(args: [("COLOR", "blue")]) }
        #expect(try conf(args: [("IgnoreUnknown", "1"), ("COLOR", "blue")]).addresses.count == 1)
    }
}
