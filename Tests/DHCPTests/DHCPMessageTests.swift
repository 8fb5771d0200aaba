import Base
import DHCP
import Testing

/// The DHCPv4 codec: what servers send, byte for byte from the RFCs' examples, and what a
/// hostile or broken server sends, refused with the field named, never a crash.
@Suite struct DHCPMessageTests {
    let mac: [UInt8] = [0x02, 0x42, 0xAC, 0x11, 0x00, 0x02]

    /// An ACK as a server writes it.
    func ack(_ options: [(UInt8, [UInt8])]) -> DHCPMessage {
        var m = DHCPMessage(op: 2, xid: 0x1234_5678, chaddr: mac)
        m.yiaddr = IPAddress("192.168.10.57")!
        for (c, d) in [(DHCPOption.messageType, [DHCPMessageType.ack.rawValue])] + options { m.set(c, d) }
        return m
    }

    @Test func aRequestRoundTripsWithItsHeaderAndOptionsInOrder() throws {
        var m = DHCPMessage(op: 1, xid: 0xDEAD_BEEF, chaddr: mac)
        m.broadcast = true
        m.secs = 3
        m.set(DHCPOption.messageType, [DHCPMessageType.request.rawValue])
        m.set(DHCPOption.requestedAddress, [192, 168, 10, 57])
        m.set(DHCPOption.parameterRequestList, [1, 3, 6, 15, 119, 121])
        m.set(DHCPOption.hostName, Array("web".utf8))
        let bytes = m.encoded()
        #expect(bytes.count == 300, "padded to the BOOTP minimum")
        #expect(Array(bytes[0..<4]) == [1, 1, 6, 0] && Array(bytes[4..<8]) == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(bytes[10] == 0x80, "the broadcast flag")
        #expect(Array(bytes[236..<240]) == [99, 130, 83, 99])
        let back = try DHCPMessage(parsing: bytes)
        #expect(back == m && back.type == .request)
    }

    @Test func aLongOptionIsSplitAndJoined() throws {
        var m = DHCPMessage(op: 2, xid: 1, chaddr: mac)
        let long = (0..<600).map { UInt8($0 % 251) }
        m.set(DHCPOption.classlessRoutes, long)
        let bytes = m.encoded()
        #expect(Array(bytes[240..<242]) == [121, 255] && bytes[240 + 257] == 121, "RFC 3396: consecutive instances of 255 bytes")
        #expect(try DHCPMessage(parsing: bytes).option(DHCPOption.classlessRoutes) == long)
    }

    @Test func aLeaseWithEveryOptionTheResultNeeds() throws {
        let routes = ClasslessRoutes.encode([
            DHCPRoute(destination: IPPrefix("10.0.0.0/8")!, router: IPAddress("192.168.10.1")!),
            DHCPRoute(destination: IPPrefix("192.168.20.0/24")!, router: IPAddress("0.0.0.0")!),
            DHCPRoute(destination: IPPrefix("0.0.0.0/0")!, router: IPAddress("192.168.10.254")!),
        ])
        // RFC 3442's own encoding: 8 10 / 24 192 168 20 / 0 (no octets) then each router.
        #expect(routes == [8, 10, 192, 168, 10, 1, 24, 192, 168, 20, 0, 0, 0, 0, 0, 192, 168, 10, 254])
        let m = ack([
            (DHCPOption.subnetMask, [255, 255, 255, 0]), (DHCPOption.routers, [192, 168, 10, 1, 192, 168, 10, 2]),
            (DHCPOption.dnsServers, [192, 168, 10, 1, 9, 9, 9, 9]), (DHCPOption.domainName, Array("lan.example".utf8)),
            (DHCPOption.domainSearch, DomainList.encode(["lan.example", "example"])), (DHCPOption.classlessRoutes, routes),
            (DHCPOption.staticRoutes, [10, 0, 0, 0, 192, 168, 10, 9]), (DHCPOption.serverID, [192, 168, 10, 1]),
            (DHCPOption.leaseTime, [0, 0, 0x0E, 0x10]),
        ])
        let l = try DHCPLease(DHCPMessage(parsing: m.encoded()))
        #expect(l.address == IPPrefix("192.168.10.57/24") && l.gateway == IPAddress("192.168.10.1") && l.serverID == IPAddress("192.168.10.1"))
        #expect(l.dnsServers.map(\.description) == ["192.168.10.1", "9.9.9.9"] && l.domain == "lan.example" && l.search == ["lan.example", "example"])
        #expect(l.routes.count == 3 && l.routes[1].onLink && !l.routes[0].onLink, "option 121 wins over option 33")
        #expect(l.leaseTime == 3600 && l.renewalTime == 1800 && l.rebindingTime == 3150, "T1 and T2 default to 1/2 and 7/8")
    }

    @Test func classfulStaticRoutesWhenThereIsNoOption121() throws {
        let l = try DHCPLease(ack([(DHCPOption.staticRoutes, [10, 0, 0, 0, 192, 168, 10, 9, 172, 16, 5, 0, 192, 168, 10, 9])]))
        #expect(l.routes.map(\.destination.description) == ["10.0.0.0/8", "172.16.5.0/32"], "class A net; a class B address with host bits: a host route")
        #expect(l.address.length == 32 && l.leaseTime == .max, "no mask: the address alone; no lease time: infinite")
    }

    /// RFC 3397's example: "eng.apple.com." and "marketing.apple.com." with a pointer to "apple.com".
    @Test func aCompressedSearchList() throws {
        let b: [UInt8] = [3] + Array("eng".utf8) + [5] + Array("apple".utf8) + [3] + Array("com".utf8) + [0, 9] + Array("marketing".utf8) + [0xC0, 4]
        #expect(try DomainList.decode(b) == ["eng.apple.com", "marketing.apple.com"])
        #expect(throws: DHCPError.self) { try DomainList.decode([0xC0, 0]) }  // a pointer to itself
        #expect(throws: DHCPError.self) { try DomainList.decode([3, 0x61, 0x62]) }  // a label past the end
    }

    @Test func brokenMessagesAreRefusedNamingWhat() {
        let good = ack([(DHCPOption.subnetMask, [255, 255, 255, 0])]).encoded()
        func reason(_ bytes: [UInt8]) -> String {
            do {
                _ = try DHCPLease(DHCPMessage(parsing: bytes))
                return "accepted"
            } catch { return error.description }
        }
        #expect(reason(Array(good.prefix(200))).contains("shorter than a BOOTP header"))
        var noCookie = good
        noCookie[236] = 0
        #expect(reason(noCookie).contains("cookie"))
        var overrun = Array(good.prefix(240)) + [DHCPOption.dnsServers, 8, 1, 2, 3, 4]
        #expect(reason(overrun).contains("option 6") && reason(overrun).contains("runs past"))
        overrun = Array(good.prefix(240)) + [DHCPOption.subnetMask, 4, 255, 0, 255, 0, 255]
        #expect(reason(overrun).contains("not a mask"))
        let badRoute = Array(good.prefix(240)) + [DHCPOption.classlessRoutes, 2, 33, 10, 255]
        #expect(reason(badRoute).contains("option 121"))
        let oddDNS = Array(good.prefix(240)) + [DHCPOption.dnsServers, 3, 1, 2, 3, 255]
        #expect(reason(oddDNS).contains("option 6"))
        // Every prefix of a good message is read or refused, never a crash.
        for n in 0..<good.count { _ = reason(Array(good.prefix(n))) }
    }
}
