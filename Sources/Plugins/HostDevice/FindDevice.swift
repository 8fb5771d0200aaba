import Base
import CNI
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// Finding the host device in sysfs and moving it back.
enum HostDevice {
    static let pciDevices = "/sys/bus/pci/devices"
    static let auxiliaryDevices = "/sys/bus/auxiliary/devices"
    /// The drivers that bind a NIC to userspace (DPDK): no kernel interface exists to move.
    static let userspaceDrivers: Set<String> = ["vfio-pci", "uio_pci_generic", "igb_uio"]

    /// The host link `selector` names; nil for a PCI device bound to a userspace driver. Code 7
    /// naming the selector when there is none.
    static func find(_ selector: HostDeviceConfig.Selector, _ nl: NetlinkSocket) throws -> Link? {
        func missing(_ why: String) -> CNIError {
            CNIError(
                .invalidNetworkConfig, "\(selector) not found on the host",
                details: why + "; host-device moves a device into the container: if another attachment holds it, DEL that one first")
        }
        switch selector {
        case .name(let n):
            guard let l = try nl.link(named: n) else { throw missing("no link of that name on the host") }
            return l
        case .mac(let m):
            guard let l = try nl.links().first(where: { $0.mac.bytes == m && !$0.isLoopback }) else {
                throw missing("no link on the host has that MAC address")
            }
            return l
        case .kernelPath(let p):
            return try hostLink(try netDeviceName(in: p, missing), nl, missing)
        case .busDevice(let a, let fromDeviceID):
            var dir = pciDevices + "/" + a
            if fromDeviceID, !System.exists(dir) {
                dir = auxiliaryDevices + "/" + a
                guard System.exists(dir) else { throw missing("the runtime's deviceID is on neither the PCI nor the auxiliary bus") }
            } else if !System.exists(dir) {
                throw missing("no such PCI device (\(dir))")
            }
            if !fromDeviceID || dir.hasPrefix(pciDevices), userspaceDriver(pci: a) != nil { return nil }
            return try hostLink(try netDeviceName(in: dir, missing), nl, missing)
        }
    }

    /// The link sysfs named, which must be in the plugin's namespace (sysfs shows the devices of
    /// the namespace it was mounted in).
    static func hostLink(_ named: String, _ nl: NetlinkSocket, _ missing: (String) -> CNIError) throws -> Link {
        guard let l = try nl.link(named: named) else { throw missing("sysfs names \"\(named)\", which is not in the plugin's network namespace") }
        return l
    }

    /// The network device of a sysfs device directory: the first entry of its `net` directory (or
    /// of `virtio*/net` for a virtio PCI function); a directory that is itself a network device
    /// (`/sys/devices/virtual/net/veth0`: it has an `ifindex`) names itself.
    static func netDeviceName(in dir: String, _ missing: (String) -> CNIError) throws(CNIError) -> String {
        if System.exists(dir + "/ifindex"), let last = dir.split(separator: "/").last { return String(last) }
        var candidates = [dir + "/net"]
        if let entries = try? System.listDirectory(dir) {
            candidates += entries.filter { $0.hasPrefix("virtio") }.sorted().map { dir + "/" + $0 + "/net" }
        }
        for c in candidates {
            if let names = try? System.listDirectory(c), let first = names.sorted().first { return first }
        }
        throw missing("\(dir) has no network device (no net directory, or an empty one)")
    }

    /// The userspace driver a PCI device is bound to (vfio-pci, uio_pci_generic, igb_uio), nil
    /// for a kernel driver or none.
    static func userspaceDriver(pci address: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let n = readlink(pciDevices + "/" + address + "/driver", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let driver = target.split(separator: "/").last.map(String.init) ?? ""
        return userspaceDrivers.contains(driver) ? driver : nil
    }

    /// Moves `ifName` from the container back to the host under the name its alias keeps, the
    /// alias cleared, in one request; up again when `up`. Nothing to do when the interface is
    /// gone. Refused, with nothing changed, when the alias is missing (not a moved device) or the
    /// host has a device of that name.
    static func moveBack(_ ifName: String, _ cnl: NetlinkSocket, to host: NetworkNamespace, _ hostNL: NetlinkSocket, up: Bool) throws {
        guard let l = try cnl.link(named: ifName) else { return }
        guard let original = l.alias else {
            throw CNIError(
                .kernelOperationFailed, "\(ifName) has no alias naming its host device",
                details: "it was not moved into the container by host-device, so it stays there")
        }
        if try hostNL.link(named: original) != nil {
            throw CNIError(
                .kernelOperationFailed, "cannot move \(ifName) back to the host as \"\(original)\"",
                details: "the host has another device of that name now; rename it, then DEL again")
        }
        try cnl.move(l.index, to: host, name: original, alias: "")
        if up, let back = try hostNL.link(named: original) { try hostNL.setUp(back.index) }
    }
}
