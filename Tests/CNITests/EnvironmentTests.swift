import Base
import CNI
import Testing

@Suite struct EnvironmentTests {
    static let required: [(String, String)] = [
        ("ADD", "CNI_CONTAINERID"), ("ADD", "CNI_NETNS"), ("ADD", "CNI_IFNAME"),
        ("CHECK", "CNI_CONTAINERID"), ("CHECK", "CNI_NETNS"), ("CHECK", "CNI_IFNAME"),
        ("DEL", "CNI_CONTAINERID"), ("DEL", "CNI_IFNAME"), ("GC", "CNI_PATH"),
    ]

    @Test(arguments: required)
    func missingRequiredVariableIsCode4NamingIt(_ command: String, _ variable: String) throws {
        var e = env(command)
        e[variable] = nil
        let o = run(EchoPlugin(), e, conf("1.1.0"))
        let err = try #require(errorOf(o))
        #expect(err.code == .invalidEnvironment)
        #expect(err.msg.contains(variable))
        // An empty value counts as missing.
        e[variable] = ""
        #expect(errorOf(run(EchoPlugin(), e, conf("1.1.0")))?.msg.contains(variable) == true)
    }

    @Test func allMissingVariablesAreNamedAtOnce() throws {
        let o = run(EchoPlugin(), ["CNI_COMMAND": "ADD"], conf("1.1.0"))
        let err = try #require(errorOf(o))
        #expect(err.code == .invalidEnvironment)
        #expect(err.msg == "missing environment variables CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME")
    }

    @Test func lenientWhereTheSpecIs() {
        // DEL without CNI_NETNS, STATUS without CNI_PATH, VERSION with nothing.
        var e = env("DEL")
        e["CNI_NETNS"] = nil
        #expect(run(EchoPlugin(), e, conf("1.0.0")).exitCode == 0)
        #expect(run(EchoPlugin(), ["CNI_COMMAND": "STATUS"], conf("1.1.0")).exitCode == 0)
        #expect(run(EchoPlugin(), ["CNI_COMMAND": "VERSION"], []).exitCode == 0)
    }

    @Test func missingOrUnknownCommandIsCode4() throws {
        let none = try #require(errorOf(run(EchoPlugin(), [:], conf("1.1.0"))))
        #expect(none.code == .invalidEnvironment)
        #expect(none.msg.contains("CNI_COMMAND"))
        let bad = try #require(errorOf(run(EchoPlugin(), env("add"), conf("1.1.0"))))
        #expect(bad.code == .invalidEnvironment)
        #expect(bad.msg == "unknown CNI_COMMAND \"add\"")
    }

    @Test(arguments: ["-abc", "a b", "a/b", "ab:c", ".x", "ü", "a$"])
    func invalidContainerIDIsCode4(_ id: String) throws {
        let err = try #require(errorOf(run(EchoPlugin(), env("ADD", ["CNI_CONTAINERID": id]), conf("1.1.0"))))
        #expect(err.code == .invalidEnvironment)
        #expect(err.msg.contains("CNI_CONTAINERID"))
    }

    @Test(arguments: ["a", "Z9_.-x", "0123456789abcdef0123456789abcdef"])
    func validContainerIDs(_ id: String) {
        #expect(run(EchoPlugin(), env("ADD", ["CNI_CONTAINERID": id]), conf("1.1.0")).exitCode == 0)
    }

    @Test(arguments: [".", "..", "a/b", "a:b", "a b", "a\tb", "0123456789abcdef"])
    func invalidInterfaceNameIsCode4(_ name: String) throws {
        let err = try #require(errorOf(run(EchoPlugin(), env("ADD", ["CNI_IFNAME": name]), conf("1.1.0"))))
        #expect(err.code == .invalidEnvironment)
        #expect(err.msg.contains("CNI_IFNAME"))
    }

    @Test func fifteenByteInterfaceNameIsFine() {
        #expect(run(EchoPlugin(), env("ADD", ["CNI_IFNAME": "0123456789abcde"]), conf("1.1.0")).exitCode == 0)
    }

    @Test func cniArgsParsing() throws {
        let a = try CommandArgs.parse(env("ADD", ["CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5;;X=a=b"]))
        #expect(a.cniArg("K8S_POD_NAME") == "web")
        #expect(a.cniArg("X") == "a=b")
        #expect(a.ignoreUnknownArgs)
        #expect(throws: CNIError.self) { try CommandArgs.parse(env("ADD", ["CNI_ARGS": "novalue"])) }
        #expect(throws: CNIError.self) { try CommandArgs.parse(env("ADD", ["CNI_ARGS": "=v"])) }
        let strict = try CommandArgs.parse(env("ADD", ["CNI_ARGS": "FOO=1;K8S_POD_NAME=x"]))
        #expect(throws: CNIError.self) { try strict.checkCNIArgs(known: ["IP"]) }
        #expect(throws: Never.self) { try strict.checkCNIArgs(known: ["FOO"]) }
        // Convention keys a main plugin passes on to its IPAM are always fine.
        #expect(throws: Never.self) { try CommandArgs.parse(env("ADD", ["CNI_ARGS": "MAC=02:00:00:00:00:01;IP=10.0.0.5"])).checkCNIArgs(known: []) }
        #expect(try CommandArgs.parse(env("ADD", ["CNI_PATH": "/a::/b"])).path == ["/a", "/b"])
    }
}
