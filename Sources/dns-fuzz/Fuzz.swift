import Base
import CNI
import FuzzSupport
import DNS

#if canImport(Glibc)
    import Glibc
#endif

// The DNS parser and answering logic under libFuzzer (Scripts/fuzz-dns builds this target with
// -sanitize=fuzzer -DFUZZING). Built plainly (as `swift build` does), it replays the files given
// as arguments: a found crash stays a regression check.

let fuzzZones: Zones = {
    var r = NetworkRecords(network: "web")
    r.listen = [IPAddress("10.88.0.1")!]
    r.upstreams = [IPAddress("192.0.2.53")!]
    r.entries = [
        .init(owner: "t1", v4: [IPAddress("10.88.0.5")!], v6: [IPAddress("fd00:88::5")!], names: ["web", "alias"]),
        .init(owner: "t2", v4: (0..<60).map { IPAddress("10.88.1.\($0)")! }, v6: [], names: ["many"]),
    ]
    return Zones([r], generation: 1)
}()

/// libFuzzer's entry: parses one input as a DNS message and answers it; never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    for tcp in [false, true] {
        let out = Responder.respond(bytes, source: IPAddress("10.88.0.5")!, listener: IPAddress("10.88.0.1")!, overTCP: tcp, zones: fuzzZones)
        if case .reply(let r) = out {
            // Every answer is a well-formed header that fits the transport.
            precondition(r.count >= 12 && r.count <= (tcp ? 65535 : 1232), "answer of \(r.count) bytes")
            precondition(r[2] & 0x80 != 0, "answer without QR")
        }
    }
    return 0
}

/// The fuzz binary's main: hands argv to libFuzzer with ``fuzzOne(_:_:)`` as the target.
#if FUZZING
    @_cdecl("dns_fuzz_main")
    public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        runFuzzer(argc, argv, fuzzOne)
    }
#else
    @main
    struct Replay {
        static func main() { replayArguments(fuzzOne) }
    }
#endif
