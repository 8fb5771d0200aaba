import CNI

extension NetConf {
    /// The container interface's MAC as the runtime asks for it: CNI_ARGS `MAC`, then
    /// `args.cni.mac`, then `runtimeConfig.mac` (the `mac` capability); the last one given wins,
    /// `configured` (the plugin's own `mac` key) when none is. Code 7 naming the source of a MAC
    /// that does not parse.
    public func requestedMAC(_ args: CommandArgs, configured: [UInt8]? = nil) throws(CNIError) -> [UInt8]? {
        var mac = configured
        if let m = args.cniArg("MAC") { mac = try parseMACAddress(m, field: "CNI_ARGS MAC") }
        if let m = try self.args.object("cni")?.string("mac") { mac = try parseMACAddress(m, field: "args.cni.mac") }
        if let m = try runtimeConfig.string("mac") { mac = try parseMACAddress(m, field: "runtimeConfig.mac") }
        return mac
    }
}
