import Base
import CNI
import Netlink

/// The tuning plugin's configuration (the keys podman's generated conflists and the reference
/// plugin use), decoded and validated with no I/O.
struct TuningConfig {
    /// `sysctl`: network sysctls of the container's namespace, in the order given, as /proc/sys
    /// path components.
    var sysctls: [(key: String, path: [String], value: String)] = []
    var mac: [UInt8]?
    var mtu: Int?
    var promisc: Bool?
    var allmulti: Bool?
    var txQLen: Int?
    var dataDir = "/run/cni/tuning"

    init(_ conf: NetConf, args: CommandArgs, forAdd: Bool = true) throws(CNIError) {
        let f = conf.fields
        if let s = try f.object("sysctl") {
            for (key, v) in s.object {
                let value = try v.string(at: s.pathOf(key))
                sysctls.append((key, try TuningConfig.sysctlPath(key), value))
            }
        }
        if let m = try f.string("mac") { mac = try parseMACAddress(m, field: "mac") }
        if let m = args.cniArg("MAC") { mac = try parseMACAddress(m, field: "CNI_ARGS MAC") }
        if let m = try conf.runtimeConfig.string("mac") { mac = try parseMACAddress(m, field: "runtimeConfig.mac") }
        if let m = mac, m[0] & 1 == 1 { throw Fields.invalid("mac", .string(MACAddress(bytes: m).description), "a multicast address cannot be an interface's") }
        mtu = try f.int("mtu", in: 68...65535)
        promisc = try f.bool("promisc")
        allmulti = try f.bool("allmulti")
        txQLen = try f.int("txQLen", in: 0...Int(Int32.max))
        if let d = try f.string("dataDir"), !d.isEmpty {
            guard d.hasPrefix("/") else { throw Fields.invalid("dataDir", .string(d), "must be an absolute path") }
            dataDir = d
        }
        if forAdd { try args.checkCNIArgs(known: ["MAC"]) }
    }

    /// `net.ipv4.conf.eth0.rp_filter` or `net/ipv4/conf/eth0.100/rp_filter` (slashes when a
    /// component has a dot) -> path components under /proc/sys. Only `net.*` (the sysctls of a
    /// network namespace), no empty, `.` or `..` component.
    static func sysctlPath(_ key: String) throws(CNIError) -> [String] {
        let parts =
            (key.contains("/") ? key.split(separator: "/", omittingEmptySubsequences: false) : key.split(separator: ".", omittingEmptySubsequences: false)).map(
                String.init)
        guard parts.count >= 2, parts[0] == "net" else {
            throw Fields.invalid("sysctl", .string(key), "only network sysctls (net.*) belong to a container's namespace")
        }
        for p in parts where p.isEmpty || p == "." || p == ".." || p.contains(where: { $0 == "\0" }) {
            throw Fields.invalid("sysctl", .string(key), "not a sysctl name")
        }
        return parts
    }

    /// Whether ADD changes the link (and so saves what it was for DEL).
    var changesLink: Bool { mac != nil || mtu != nil || promisc != nil || allmulti != nil || txQLen != nil }
}
