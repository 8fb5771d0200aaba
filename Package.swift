// swift-tools-version:6.1
// swift-cni: CNI plugins for Linux. Module map and the imports it allows: docs/architecture.md.
import PackageDescription

let package = Package(
    name: "swift-cni",
    platforms: [.macOS(.v13)],
    products: [
        // One multi-call binary: bridge, host-local, ... are symlinks to it (dispatch on argv[0]).
        .executable(name: "cni-plugins", targets: ["cni-plugins"]),
        .executable(name: "cnictl", targets: ["cnictl"]),
        .executable(name: "cni-dnsd", targets: ["cni-dnsd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
    ],
    targets: [
        // C shims: system libraries and kernel headers only.
        .systemLibrary(
            name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(
            name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev"])]),
        .target(
            name: "CLinux",
            cSettings: [.define("_GNU_SOURCE")]),

        // The value types and system calls every module shares: IP addresses and prefixes, MAC
        // addresses, IP protocols, JSON, SHA-512, files, processes, Unix sockets, threads.
        .target(name: "Base", dependencies: ["CLinux"]),

        // The CNI protocol: environment, configuration, results in every version, errors,
        // dispatch, delegation.
        .target(name: "CNI", dependencies: ["Base", "CLinux"]),

        // The runtime side, for cnictl: conflist loading, running a list's plugins, libcni's
        // result cache. No plugin imports it.
        .target(name: "CNIRuntime", dependencies: ["Base", "CNI"]),

        // rtnetlink: links, addresses, routes, namespaces, sysctl.
        .target(name: "Netlink", dependencies: ["Base", "CLinux", "CMnl"]),

        // nftables, the mechanism: tables, chains, rules, maps and their elements with owner tags,
        // atomic batches built with libnftnl and rendered as nft text, listings. The layouts of
        // ipMasq, macspoofchk, portmap and firewall live beside their plugins.
        .target(name: "NFTables", dependencies: ["Base", "CLinux", "CNftnl"]),

        // Address allocation: ranges, allocator, the on-disk store.
        .target(name: "IPAM", dependencies: ["Base"]),

        // The VXLAN overlay's model: leases, the file store, the node file, the desired-vs-actual
        // planner. Pure: no kernel calls.
        .target(name: "Overlay", dependencies: ["Base"]),

        // The VXLAN device and its peers (FDB, neighbours, routes) as the overlay's plans say,
        // through Netlink: what the vxlan plugin and cni-overlayd program.
        .target(name: "VXLAN", dependencies: ["Base", "Netlink", "Overlay"]),

        // DNS: the wire format (a hardened parser), the records files, the answering logic.
        // No I/O and no Foundation: cni-dnsd serves it, the dnsname plugin writes the records.
        .target(name: "DNS", dependencies: ["Base"]),
        .target(name: "DHCP", dependencies: ["Base"]),

        // The glue main plugins share: the container's namespace from CNI_NETNS, an interface
        // configured from a result (addresses, routes with their metrics), CHECK of it, DEL of it.
        .target(name: "PluginKit", dependencies: ["Base", "CNI", "Netlink", "NFTables"]),

        // Plugins: one folder each.
        .target(name: "HostLocalPlugin", dependencies: ["Base", "CNI", "IPAM"], path: "Sources/Plugins/HostLocal"),
        .target(name: "BridgePlugin", dependencies: ["Base", "CNI", "Netlink", "NFTables", "PluginKit"], path: "Sources/Plugins/Bridge"),
        .target(name: "MacvlanPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Macvlan"),
        .target(name: "LoopbackPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Loopback"),
        .target(name: "TuningPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Tuning"),
        .target(name: "BandwidthPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Bandwidth"),
        .target(name: "FlannelPlugin", dependencies: ["Base", "CNI", "PluginKit"], path: "Sources/Plugins/Flannel"),
        .target(name: "StaticPlugin", dependencies: ["Base", "CNI", "PluginKit"], path: "Sources/Plugins/Static"),
        .target(name: "PtpPlugin", dependencies: ["Base", "CNI", "Netlink", "NFTables", "PluginKit"], path: "Sources/Plugins/Ptp"),
        .target(name: "IpvlanPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Ipvlan"),
        .target(name: "VlanPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Vlan"),
        .target(name: "DummyPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Dummy"),
        .target(name: "SbrPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Sbr"),
        .target(name: "TapPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Tap"),
        .target(name: "VrfPlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/Vrf"),
        .target(name: "HostDevicePlugin", dependencies: ["Base", "CNI", "Netlink", "PluginKit"], path: "Sources/Plugins/HostDevice"),
        .target(name: "FirewallPlugin", dependencies: ["Base", "CNI", "NFTables", "PluginKit"], path: "Sources/Plugins/Firewall"),
        .target(name: "VxlanPlugin", dependencies: ["Base", "CNI", "Netlink", "Overlay", "VXLAN", "PluginKit"], path: "Sources/Plugins/Vxlan"),
        .target(name: "DNSNamePlugin", dependencies: ["Base", "CNI", "CLinux", "DNS", "PluginKit"], path: "Sources/Plugins/DNSName"),
        .target(name: "PortmapPlugin", dependencies: ["Base", "CNI", "CLinux", "Netlink", "NFTables", "PluginKit"], path: "Sources/Plugins/Portmap"),

        // The multi-call plugin binary: no Foundation, no SwiftNIO (start-up cost).
        .executableTarget(
            name: "cni-plugins",
            dependencies: [
                "Base", "CNI", "BandwidthPlugin", "BridgePlugin", "DNSNamePlugin", "FirewallPlugin", "FlannelPlugin", "HostLocalPlugin",
                "LoopbackPlugin", "MacvlanPlugin", "PortmapPlugin", "PtpPlugin", "StaticPlugin", "TuningPlugin", "VxlanPlugin",
                "IpvlanPlugin", "VlanPlugin", "DummyPlugin", "HostDevicePlugin", "SbrPlugin", "TapPlugin", "VrfPlugin",
            ]),

        // The DNS responder daemon the dnsname plugin starts: SwiftNIO, UDP and TCP on the gateways.
        .executableTarget(
            name: "cni-dnsd",
            dependencies: [
                "Base", "CNI", "CLinux", "DNS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // libFuzzer target for the DNS parser and answers (Scripts/fuzz-dns); plainly built, a replayer.
        .target(name: "FuzzSupport", dependencies: ["Base", "CNI"]),
        .executableTarget(name: "dns-fuzz", dependencies: ["Base", "CNI", "DNS", "FuzzSupport"]),
        // Configuration decoding under libFuzzer (Scripts/fuzz-config); a replayer otherwise.
        .executableTarget(
            name: "config-fuzz",
            dependencies: [
                "Base", "CNI", "CNIRuntime", "FuzzSupport", "BandwidthPlugin", "BridgePlugin", "DNSNamePlugin", "FirewallPlugin",
                "FlannelPlugin", "HostLocalPlugin", "LoopbackPlugin", "MacvlanPlugin", "PortmapPlugin", "PtpPlugin", "StaticPlugin",
                "TuningPlugin", "VxlanPlugin", "IpvlanPlugin", "VlanPlugin", "DummyPlugin", "HostDevicePlugin", "SbrPlugin", "TapPlugin", "VrfPlugin",
            ]),

        // etcd v3 over its JSON gateway (AsyncHTTPClient, TLS): leases, CAS transactions, watches;
        // and the overlay's lease store on it.
        .target(
            name: "Etcd",
            dependencies: [
                "Base", "Overlay",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),

        // The overlay's agent: holds the lease (file store or etcd), writes the node file, keeps
        // the VTEP and the peers reconciled.
        .executableTarget(
            name: "cni-overlayd",
            dependencies: [
                "Base", "CLinux", "Netlink", "Overlay", "VXLAN", "Etcd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // cnitool-compatible client.
        .executableTarget(
            name: "cnictl",
            dependencies: [
                "Base", "CNI", "CNIRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Helpers shared by the test targets (running commands, reading `ip -j`).
        .target(name: "TestSupport", dependencies: ["Base", "CNI"], path: "Tests/TestSupport"),
        .testTarget(
            name: "CNITests",
            dependencies: ["Base", "CNI", "CNIRuntime", "PluginKit", "CLinux", "CMnl", "CNftnl"]),
        .testTarget(
            name: "NetlinkTests",
            dependencies: ["Netlink", "CLinux", "TestSupport"]),
        .testTarget(
            name: "NFTablesTests",
            dependencies: ["Base", "CNI", "CLinux", "NFTables", "Netlink", "PluginKit", "BridgePlugin", "FirewallPlugin", "PortmapPlugin", "TestSupport"]),
        .testTarget(
            name: "BridgeTests",
            dependencies: ["Base", "CNI", "Netlink", "NFTables", "PluginKit", "BridgePlugin", "TestSupport"]),
        .testTarget(
            name: "MacvlanTests",
            dependencies: ["Base", "CNI", "Netlink", "MacvlanPlugin", "TestSupport"]),
        .testTarget(
            name: "LinkPluginTests",
            dependencies: ["Base", "CNI", "Netlink", "IpvlanPlugin", "VlanPlugin", "DummyPlugin", "VrfPlugin", "TestSupport"]),
        .testTarget(
            name: "LoopbackTests",
            dependencies: ["Base", "CNI", "Netlink", "LoopbackPlugin", "TestSupport"]),
        .testTarget(
            name: "TuningTests",
            dependencies: ["Base", "CNI", "Netlink", "TuningPlugin", "TestSupport"]),
        .testTarget(name: "MetaPluginTests", dependencies: ["Base", "CNI", "Netlink", "BandwidthPlugin", "FlannelPlugin", "StaticPlugin"]),
        .testTarget(name: "OverlayTests", dependencies: ["Base", "CNI", "Netlink", "Overlay", "VXLAN", "Etcd", "TestSupport"]),
        .testTarget(
            name: "FirewallTests",
            dependencies: ["Base", "CNI", "NFTables", "Netlink", "FirewallPlugin", "TestSupport"]),
        .testTarget(name: "DHCPTests", dependencies: ["Base", "DHCP"]),
        .testTarget(
            name: "DNSTests",
            dependencies: ["Base", "CNI", "DNS", "DNSNamePlugin", "TestSupport"]),
        .testTarget(
            name: "PortmapTests",
            dependencies: ["Base", "CNI", "Netlink", "PortmapPlugin", "TestSupport"]),
        .testTarget(
            name: "HostLocalTests",
            dependencies: ["Base", "CNI", "IPAM", "HostLocalPlugin"]),
    ]
)
