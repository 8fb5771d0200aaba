import Base
import CNI
import Netlink
import PluginKit

#if canImport(Glibc)
    import Glibc
#endif

/// The `host-device` plugin: an existing host device (a NIC, an SR-IOV VF, a veth end, a CAN
/// device) moves into the container under CNI_IFNAME, its host name kept in its alias, and moves
/// back under that name on DEL. The move and the rename are one netlink request, so the device is
/// never renamed on the host (no race with udev or NetworkManager there) and a refused move
/// changes nothing. A PCI device bound to a userspace driver (vfio-pci, DPDK) has no kernel
/// interface to move: the result names it and IPAM's addresses go to the workload as data.
public struct HostDevicePlugin: MainPlugin {
    public static let type = "host-device"
    public static let summary = "host-device plugin (swift-cni): a host device moved into the container"

    /// The plugin; it keeps no state between invocations (the device's alias holds its name).
    public init() {}

    /// ``HostDeviceConfig``, decoded and validated.
    public static func decode(_ config: NetConf, args: CommandArgs, forAdd: Bool) throws(CNIError) -> HostDeviceConfig {
        try HostDeviceConfig(config, args: args, forAdd: forAdd)
    }

    /// What ADD found before any change: the namespaces, the device (nil for a userspace-driver
    /// PCI device, which stays where it is).
    public struct Prepared {
        let container: NetworkNamespace
        let cnl: NetlinkSocket
        let host: NetworkNamespace
        let hostNL: NetlinkSocket
        let device: Link?
    }

    /// The device found on the host and movable; CNI_IFNAME free in the container.
    public func prepare(_ conf: HostDeviceConfig, _ add: AddSteps) throws -> Prepared {
        let ctx = add.ctx
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let hostNL = try NetlinkSocket()
        guard let selector = conf.selector else { throw CNIError(.invalidNetworkConfig, "host-device needs the device to move") }
        if let id = conf.deviceID, !System.exists(HostDevice.pciDevices + "/" + id), !System.exists(HostDevice.auxiliaryDevices + "/" + id) {
            throw Fields.invalid("runtimeConfig.deviceID", .string(id), "is on neither the PCI nor the auxiliary bus")
        }
        let device = try HostDevice.find(selector, hostNL)
        if let device, device.isLoopback {
            throw CNIError(.invalidNetworkConfig, "\(selector) is the loopback, which cannot move")
        }
        if try cnl.link(named: ctx.args.ifName) != nil {
            throw CNIError(
                .conflict, "container interface \"\(ctx.args.ifName)\" already exists",
                details: "in \(ctx.args.netns); DEL the attachment first or choose another CNI_IFNAME")
        }
        return Prepared(container: container, cnl: cnl, host: try NetworkNamespace.current(), hostNL: hostNL, device: device)
    }

    /// The device in the container (nil for a userspace-driver device).
    public struct Made {
        let prepared: Prepared
        let link: Link?
    }

    /// Moves the device into the container as CNI_IFNAME with its host name as its alias, in one
    /// request; undone by the move back (and up again if it was up on the host).
    public func makeInterface(_ conf: HostDeviceConfig, _ p: Prepared, _ add: AddSteps) throws -> Made {
        guard let device = p.device else { return Made(prepared: p, link: nil) }
        let ifName = add.ctx.args.ifName
        do {
            try p.hostNL.move(device.index, to: p.container, name: ifName, alias: device.name)
        } catch {
            throw CNIError(
                .kernelOperationFailed, "failed to move host device \"\(device.name)\" into \(add.ctx.args.netns) as \(ifName)",
                details: "\(error)")
        }
        add.undo("move \(ifName) back to the host as \(device.name)") {
            try HostDevice.moveBack(ifName, p.cnl, to: p.host, p.hostNL, up: device.isUp)
        }
        return Made(prepared: p, link: try p.cnl.requireLink(ifName))
    }

    /// IPAM's addresses and routes on the device (or only the device up without IPAM).
    public func configure(_ conf: HostDeviceConfig, _ m: Made, ipam: CNIResult?, _ add: AddSteps) throws -> CNIResult {
        let ctx = add.ctx
        guard let link = m.link else {
            var result = ipam.map { CNIResult(addressesOf: $0, onInterface: 0) } ?? CNIResult()
            result.interfaces = [.init(name: ctx.args.ifName, sandbox: ctx.args.netns)]
            return result
        }
        return try add.address(link.index, in: m.prepared.container, m.prepared.cnl, with: ipam, arpNotify: false)
    }

    /// Moves the device back to the host under the name its alias keeps (left down, as the
    /// reference leaves it: its state before ADD is not known). Nothing to do with CNI_NETNS
    /// empty, the namespace gone (the kernel returns a physical device to the host by itself) or
    /// the interface gone.
    public func teardown(_ conf: HostDeviceConfig, _ ctx: PluginContext, _ failures: inout StepFailures) {
        guard !ctx.args.netns.isEmpty else { return }
        failures.run("move \(ctx.args.ifName) back to the host", code: .kernelOperationFailed) {
            let container: NetworkNamespace
            do {
                container = try NetworkNamespace(path: ctx.args.netns)
            } catch let e as NetlinkError where e.errno == ENOENT {
                return
            }
            try HostDevice.moveBack(ctx.args.ifName, try container.netlink(), to: try NetworkNamespace.current(), try NetlinkSocket(), up: false)
        }
    }

    /// The interface is in the container, moved there by host-device (its alias names its host
    /// device, the configured one when `device` is given), with prevResult's MAC, addresses and
    /// routes.
    public func verify(_ conf: HostDeviceConfig, _ prev: CNIResult, _ ctx: PluginContext) throws {
        func fail(_ m: String) -> CNIError { CNIError(.checkFailed, m) }
        let container = try NetworkNamespace.container(ctx.args.netns, environment: ctx.environment)
        let cnl = try container.netlink()
        let ifName = ctx.args.ifName
        guard let l = try cnl.link(named: ifName) else {
            // A userspace-driver device never was in the container.
            if case .busDevice(let a, _)? = conf.selector, HostDevice.userspaceDriver(pci: a) != nil { return }
            throw fail("interface \"\(ifName)\" is missing in \(ctx.args.netns)")
        }
        guard let original = l.alias else { throw fail("interface \"\(ifName)\" was not moved by host-device (it has no alias naming its host device)") }
        if case .name(let d)? = conf.selector, d != original {
            throw fail("interface \"\(ifName)\" is host device \"\(original)\", the configuration says \"\(d)\"")
        }
        try ContainerCheck.result(prev, l, cnl, ifName: ifName)
    }
}
