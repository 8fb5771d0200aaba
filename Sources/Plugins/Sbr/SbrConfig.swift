import Base
import CNI

/// The sbr plugin's configuration (the reference's keys up to v1.9), decoded and validated with
/// no kernel call.
struct SbrConfig {
    /// The table the rules send the interface's addresses to; the plugin then leaves the routes
    /// alone. Nil: a free table (100 and up) per address, the interface's routes moved into it.
    var table: UInt32?
    /// One gateway per family for the default route of the tables, in place of prevResult's.
    var gateways: [IPFamily: IPAddress] = [:]
    /// Keep the subnet routes in the main table, with the address as their source hint.
    var addSourceHints = false

    init(_ conf: NetConf) throws(CNIError) {
        let f = conf.fields
        table = try f.int("table", in: 1...Int(UInt32.max)).map(UInt32.init)
        addSourceHints = try f.bool("addSourceHints") ?? false
        let list = try f.stringArray("gateways") ?? []
        if list.count > 2 {
            throw Fields.invalid("gateways", .array(list.map { .string($0) }), "holds at most one IPv4 and one IPv6 gateway")
        }
        for (i, text) in list.enumerated() {
            guard let gw = IPAddress(text) else { throw Fields.invalid("gateways[\(i)]", .string(text), "must be an IP address") }
            if let other = gateways[gw.family] {
                throw Fields.invalid("gateways[\(i)]", .string(text), "is a second \(gw.family) gateway (\(other) is the first)")
            }
            gateways[gw.family] = gw
        }
        if let t = table, !gateways.isEmpty || addSourceHints {
            let key = gateways.isEmpty ? "addSourceHints" : "gateways"
            throw CNIError(
                .invalidNetworkConfig, "sbr: \"\(key)\" has no effect with \"table\": \(t)",
                details: "with a table given, the plugin adds the rules only; the routes of table \(t) are the administrator's")
        }
    }
}
