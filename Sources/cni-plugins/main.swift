import BandwidthPlugin
import BridgePlugin
import Base
import CNI
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

#if canImport(Glibc)
    import Glibc
#endif

// The multi-call plugin binary: the CNI `type` is the name it was started as (a symlink in
// /opt/cni/bin), or the first argument when started as `cni-plugins <type>`.

/// Only plugins that really work are listed here.
let plugins: [String: any CNIPlugin] = [
    BandwidthPlugin.type: BandwidthPlugin(),
    BridgePlugin.type: BridgePlugin(),
    DNSNamePlugin.type: DNSNamePlugin(),
    DummyPlugin.type: DummyPlugin(),
    FirewallPlugin.type: FirewallPlugin(),
    FlannelPlugin.type: FlannelPlugin(),
    HostDevicePlugin.type: HostDevicePlugin(),
    HostLocalPlugin.type: HostLocalPlugin(),
    IpvlanPlugin.type: IpvlanPlugin(),
    LoopbackPlugin.type: LoopbackPlugin(),
    MacvlanPlugin.type: MacvlanPlugin(),
    PortmapPlugin.type: PortmapPlugin(),
    PtpPlugin.type: PtpPlugin(),
    StaticPlugin.type: StaticPlugin(),
    SbrPlugin.type: SbrPlugin(),
    TapPlugin.type: TapPlugin(),
    TuningPlugin.type: TuningPlugin(),
    VlanPlugin.type: VlanPlugin(),
    VrfPlugin.type: VrfPlugin(),
    VxlanPlugin.type: VxlanPlugin(),
]

var argv0 = CommandLine.arguments.first ?? "cni-plugins"
if let slash = argv0.lastIndex(of: "/") { argv0 = String(argv0[argv0.index(after: slash)...]) }
var name = argv0
if name == "cni-plugins", CommandLine.arguments.count > 1 { name = CommandLine.arguments[1] }
if name == "--list" {
    for p in plugins.keys.sorted() { print(p) }
    exit(0)
}

// The tap plugin's helper, executed by the plugin itself in an SELinux context (selinuxContext).
if name == SELinuxLabel.helper { exit(SELinuxLabel.runHelper(Array(CommandLine.arguments.drop { $0 != name }.dropFirst()))) }

guard let plugin = plugins[name] else {
    let list = plugins.keys.sorted().joined(separator: ", ")
    System.logError(
        """
        usage: cni-plugins <type>, or a symlink named after the type, run by a CNI runtime
        with CNI_COMMAND and the other CNI_* variables set and the network configuration on stdin.
        plugins in this binary: \(list.isEmpty ? "(none yet)" : list)

        """)
    let e = CNIError(.unknownPlugin, "unknown plugin \"\(name)\"", details: "this binary provides: \(list)")
    try? System.writeAll(fd: 1, Array((e.json(version: .latest).serialized() + "\n").utf8))
    exit(1)
}

let outcome = PluginMain.run(
    plugin, environment: System.environment(), stdinIsTerminal: isatty(0) == 1,
    readStdin: { try System.readAll(fd: 0, limit: NetConf.maximumSize) },
    log: { System.logError($0.hasSuffix("\n") ? $0 : $0 + "\n") }, inProcess: plugins)
try? System.writeAll(fd: 1, Array(outcome.stdout.utf8))
exit(outcome.exitCode)
