import Base
import CNI
import PluginKit

/// The host-device plugin's configuration (the reference's keys), decoded and validated with no
/// kernel call: which host device moves into the container.
public struct HostDeviceConfig: MainPluginConfig {
    /// How the device is named: the first of `device`, `hwaddr`, `kernelpath`, `pciBusID` (or
    /// runtimeConfig `deviceID`, which replaces `pciBusID`) that is given.
    enum Selector: Equatable, CustomStringConvertible {
        case name(String)
        case mac([UInt8])
        case kernelPath(String)
        /// A PCI address (`0000:03:00.0`) or, from `deviceID`, an auxiliary-bus device name.
        case busDevice(String, fromDeviceID: Bool)

        var description: String {
            switch self {
            case .name(let n): return "device \"\(n)\""
            case .mac(let m): return "hwaddr \(MACAddress(bytes: m))"
            case .kernelPath(let p): return "kernelpath \"\(p)\""
            case .busDevice(let d, let fromDeviceID): return "\(fromDeviceID ? "runtimeConfig.deviceID" : "pciBusID") \"\(d)\""
            }
        }
    }
    /// nil only for DEL, CHECK, GC and STATUS, which need no device (DEL finds the device in the
    /// container by CNI_IFNAME and its original name in its alias).
    var selector: Selector?
    /// runtimeConfig `deviceID` (the device plugin's), which must exist on the PCI or auxiliary
    /// bus even when another key names the device (as the reference).
    var deviceID: String?
    /// The IPAM plugin; nil for a device without addresses.
    public internal(set) var ipam: String?
    /// `dns`, which replaces IPAM's in the result.
    public internal(set) var dns: CNIResult.DNS?

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        ipam = conf.ipamPlugin
        dns = conf.dns
        selector = try Self.selector(f, runtimeConfig: conf.runtimeConfig)
        deviceID = try conf.runtimeConfig.string("deviceID").flatMap { $0.isEmpty ? nil : $0 }
        guard forAdd else { return }
        if selector == nil {
            throw CNIError(
                .invalidNetworkConfig, "host-device needs the device to move",
                details: "specify either \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\" (or runtimeConfig \"deviceID\")")
        }
        try args.checkCNIArgs(known: ["IP"])
    }

    /// The device's selector as the reference orders them: `device`, `hwaddr`, `kernelpath`, then
    /// `deviceID` (the runtime's, from a device plugin) in the place of `pciBusID`.
    static func selector(_ f: Fields, runtimeConfig: Fields) throws(CNIError) -> Selector? {
        let id = try runtimeConfig.string("deviceID").flatMap { $0.isEmpty ? nil : $0 }
        if let id { try checkBusAddress(id, field: "runtimeConfig.deviceID") }
        if let d = try f.interfaceName("device") { return .name(d) }
        if let m = try f.string("hwaddr"), !m.isEmpty { return .mac(try parseMACAddress(m, field: "hwaddr")) }
        if let p = try f.string("kernelpath"), !p.isEmpty { return .kernelPath(try kernelPath(p)) }
        if let id { return .busDevice(id, fromDeviceID: true) }
        if let a = try f.string("pciBusID"), !a.isEmpty {
            try checkBusAddress(a, field: "pciBusID")
            return .busDevice(a, fromDeviceID: false)
        }
        return nil
    }

    /// An absolute path under /sys/devices without `..` (it is read, and names what is moved).
    static func kernelPath(_ p: String) throws(CNIError) -> String {
        let parts = p.split(separator: "/", omittingEmptySubsequences: true)
        guard p.hasPrefix("/sys/devices/"), !parts.contains(".."), !parts.contains(".") else {
            throw Fields.invalid("kernelpath", .string(p), "must be an absolute path that begins with /sys/devices/")
        }
        return p
    }

    /// A bus device's name as sysfs lists it: one path component (a PCI address such as
    /// `0000:03:00.0`, or an auxiliary device such as `mlx5_core.sf.4`).
    static func checkBusAddress(_ a: String, field: String) throws(CNIError) {
        let allowed = a.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x3a || c == 0x2e || c == 0x5f || c == 0x2d
        }
        guard allowed, a != ".", a != "..", a.utf8.count <= 64 else {
            throw Fields.invalid(field, .string(a), "must be a bus device's name such as 0000:03:00.0")
        }
    }
}
