import Base
import CNI
import Testing

@Suite struct JSONTests {
    /// Keys match as Go's encoding/json matches them: exactly first, else ignoring case (go-cni
    /// sends `{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}`).
    @Test func fieldKeysFallBackToACaseInsensitiveMatchAsGoDoes() throws {
        let o = try #require(try JSONValue.parse(Array(#"{"HostPort":8080,"hostIP":"x","HostIP":"y","Protocol":null}"#.utf8)).objectValue)
        let f = Fields(o, path: "m")
        #expect(try f.int("hostPort", in: 1...65535) == 8080)
        #expect(try f.string("hostIP") == "x", "an exact match wins")
        #expect(try f.string("protocol") == nil, "null reads as absent")
        #expect(try f.string("containerPort") == nil)
    }

    @Test func roundTripKeepsKeyOrderAndNumbers() throws {
        let text = #"{"z":1,"a":[true,false,null],"n":-1.5e+300,"s":"a\"b\\c\n\u0001é","o":{}}"#
        let v = try JSONValue.parse(text)
        #expect(v.objectValue?.keys == ["z", "a", "n", "s", "o"])
        #expect(v.serialized() == #"{"z":1,"a":[true,false,null],"n":-1.5e+300,"s":"a\"b\\c\n\u0001é","o":{}}"#)
    }

    @Test func unicodeEscapesAndSurrogates() throws {
        #expect(try JSONValue.parse(#""\u00e9\ud83d\ude00""#) == .string("é😀"))
        #expect(try JSONValue.parse(#""\ud800x""#) == .string("\u{FFFD}x"))
    }

    @Test(arguments: [
        "", " ", "{", "[1,]", "{\"a\":}", "01", "1.", "-", "tru", "\"abc", "{\"a\" 1}", "[1 2]", "{} x",
        "\"\u{01}\"", "{'a':1}", "nul", "[\"\\x\"]",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect((try? JSONValue.parse(ok)) != nil)
    }

    @Test func objectEqualityIgnoresOrderAndSetReplacesInPlace() {
        var a: JSONObject = ["x": .int(1), "y": .string("b")]
        let b: JSONObject = ["y": .string("b"), "x": .int(1)]
        #expect(a == b)
        a["x"] = .int(2)
        #expect(a.keys == ["x", "y"])
        a["x"] = nil
        #expect(a.keys == ["y"])
    }

    @Test func prettyPrintIndentsFourSpaces() {
        let v = json(#"{"a":[1],"b":{}}"#)
        #expect(v.serialized(pretty: true) == "{\n    \"a\": [\n        1\n    ],\n    \"b\": {}\n}")
    }
}

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("10.0.0.1", "10.0.0.1"), ("::", "::"), ("::1", "::1"), ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"), ("fe80::1:2", "fe80::1:2"), ("1::", "1::"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), ("::ffff:10.1.2.3", "::ffff:10.1.2.3"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
    func parsesAndPrintsCanonically(_ input: String, _ expected: String) {
        #expect(IPAddress(input)?.description == expected)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3",
        "12345::", "g::", ":1", "1:", "fe80::1%eth0", "1.2.3.4/24",
    ])
    func rejectsInvalid(_ input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func prefixesContainAndOverlap() throws {
        let p = try #require(IPPrefix("10.1.2.3/24"))
        #expect(p.network.description == "10.1.2.0/24")
        #expect(p.lastAddress.description == "10.1.2.255")
        #expect(p.contains(IPAddress("10.1.2.200")!))
        #expect(!p.contains(IPAddress("10.1.3.1")!))
        #expect(p.overlaps(IPPrefix("10.1.0.0/16")!))
        #expect(!p.overlaps(IPPrefix("10.2.0.0/16")!))
        #expect(IPPrefix("2001:db8::5/64")?.network.description == "2001:db8::/64")
        #expect(IPPrefix("10.0.0.0/33") == nil)
        #expect(IPPrefix("10.0.0.0/") == nil)
        #expect(IPPrefix("10.0.0.0/-1") == nil)
        #expect(IPAddress("10.0.0.255")!.advanced(by: 1).description == "10.0.1.0")
        #expect(IPAddress("255.255.255.255")!.advanced(by: 1).description == "0.0.0.0")
        #expect(IPAddress("::1")!.advanced(by: -2).description == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    }
}

@Suite struct SHA512Tests {
    @Test func knownVectors() {
        #expect(
            SHA512.hex(SHA512.hash(Array("abc".utf8)))
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        #expect(SHA512.hex(SHA512.hash([UInt8]())).hasPrefix("cf83e1357eefb8bdf1542850d66d8007"))
        // Two blocks: 112 bytes of input crosses the padding boundary.
        let long = Array(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)
        #expect(
            SHA512.hex(SHA512.hash(long))
                == "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
    }
}
