import BandwidthPlugin
import BridgePlugin
import Base
import CNI
import CNIRuntime
import FuzzSupport
import DNSNamePlugin
import DummyPlugin
import FirewallPlugin
import FlannelPlugin
import HostDevicePlugin
import HostLocalPlugin
import IpvlanPlugin
import LoopbackPlugin
import MacvlanPlugin
import PortmapPlugin
import PtpPlugin
import StaticPlugin
import SbrPlugin
import TapPlugin
import TuningPlugin
import VlanPlugin
import VrfPlugin
import VxlanPlugin

// Configuration decoding under libFuzzer (Scripts/fuzz-config builds this target with
// -sanitize=fuzzer -DFUZZING). An input is `CNI_ARGS \0 stdin` (no NUL: all of it is stdin). It
// goes through what a plugin does with its input before touching the system: CNI_ARGS, the
// network configuration (prevResult included) and every plugin's validation, the conflist
// reader, results in every spec version. Errors are fine; a crash, a trap or a broken invariant
// is a finding. Built plainly (as `swift build` does), it replays the files given as arguments.

let plugins: [any CNIPlugin.Type] = [
    BandwidthPlugin.self, BridgePlugin.self, DNSNamePlugin.self, FirewallPlugin.self, FlannelPlugin.self, HostLocalPlugin.self, LoopbackPlugin.self,
    MacvlanPlugin.self,
    PortmapPlugin.self, PtpPlugin.self, StaticPlugin.self,
    TuningPlugin.self, VxlanPlugin.self, IpvlanPlugin.self, VlanPlugin.self, DummyPlugin.self, HostDevicePlugin.self, SbrPlugin.self, TapPlugin.self,
    VrfPlugin.self,
]

func check(_ bytes: [UInt8]) {
    var argsText = ""
    var stdin = bytes[...]
    if let nul = bytes.firstIndex(of: 0) {
        argsText = String(decoding: bytes[..<nul], as: UTF8.self)
        stdin = bytes[(nul + 1)...]
    }
    let input = Array(stdin)

    // JSON: whatever parses serializes to text that parses to the same value.
    if let v = try? JSONValue.parse(input) {
        let again = try? JSONValue.parse(Array(v.serialized().utf8))
        precondition(again == v, "JSON round trip changed the value")
    }

    var env = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "fuzz", "CNI_NETNS": "/run/netns/fuzz", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"]
    env["CNI_ARGS"] = argsText
    let args = try? CommandArgs.parse(env)

    if let conf = try? NetConf(decoding: input) {
        if let args {
            for p in plugins {
                do { try p.validate(conf, args: args) } catch {
                    precondition(!error.msg.isEmpty, "an error without a message")
                }
            }
        }
        // A prevResult is printable in every version the config may carry, and reads back.
        if let prev = conf.prevResult {
            for v in CNIVersion.allSupported {
                guard let json = try? prev.json(version: v) else { continue }
                precondition((try? JSONValue.parse(Array(json.serialized().utf8))) != nil, "result in \(v) is not JSON")
            }
        }
    }
    _ = try? NetworkConfigList(bytes: input)
}

/// libFuzzer's entry: decodes one input as every plugin's configuration; never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    check(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// The fuzz binary's main: hands argv to libFuzzer with ``fuzzOne(_:_:)`` as the target.
#if FUZZING
    @_cdecl("config_fuzz_main")
    public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        runFuzzer(argc, argv, fuzzOne)
    }
#else
    @main
    struct Replay {
        static func main() { replayArguments(fuzzOne) }
    }
#endif
