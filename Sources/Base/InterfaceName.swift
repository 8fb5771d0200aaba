/// Interface names, as runtimes give them (CNI_IFNAME) and the kernel takes them.
public enum InterfaceName {
    /// The number `ifName` ends with (eth0 0, eth1 1, net2 2; none: 0; at most 100,000): the
    /// order of a container's interfaces, as runtimes name them (the first network's is eth0).
    public static func ordinal(_ ifName: String) -> UInt32 {
        let digits = String(ifName.reversed().prefix { $0.isASCII && $0.isNumber }.reversed())
        if digits.isEmpty { return 0 }
        return digits.count > 6 ? 100_000 : min(UInt32(digits)!, 100_000)
    }
}
