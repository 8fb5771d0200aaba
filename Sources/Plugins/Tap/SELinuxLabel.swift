import Base
import CNI
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// `selinuxContext`: the tap is made by a process running in that context, since the kernel
/// labels a tun device with the context of the task that makes it. The plugin sets the context
/// its next exec runs in (/proc/thread-self/attr/exec), on a thread inside the container's
/// namespace, and executes itself there (``helper``, no `ip`): the child makes the tap in the
/// namespace it inherits, in the context SELinux moved it to.
public enum SELinuxLabel {
    /// The argument the multi-call binary takes as "make this tap and exit".
    public static let helper = "--make-tap"

    /// The context as a value: non-empty, printable, at most 4095 bytes (a page with its NUL).
    static func validate(_ label: String) throws(CNIError) {
        guard label.utf8.count < 4096, label.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw Fields.invalid("selinuxContext", .string(label), "must be an SELinux context (user:role:type:level)")
        }
    }

    /// SELinux runs on this host (selinuxfs mounted with its `enforce` file).
    static var enabled: Bool { System.exists("/sys/fs/selinux/enforce") }

    /// Makes the tap `name` in `container` by the plugin's own binary executed in context `label`.
    /// Code 7 on a host without SELinux (the reference fails there too, less clearly).
    static func createTap(name: String, conf: TapPlugin.Config, in container: NetworkNamespace, label: String) throws {
        guard enabled else {
            throw CNIError(
                .invalidNetworkConfig, "tap: selinuxContext \"\(label)\" needs SELinux, which this host does not run",
                details: "no /sys/fs/selinux/enforce; leave selinuxContext out on hosts without SELinux")
        }
        let arguments = [helper, name, conf.multiQueue ? "1" : "0", conf.owner.map(String.init) ?? "-", conf.group.map(String.init) ?? "-"]
        let output: ProcessOutput = try container.perform {
            let attr = "/proc/thread-self/attr/exec"
            if let e = write(attr, label) {
                throw CNIError(.invalidNetworkConfig, "tap: SELinux refuses the context \"\(label)\" for the plugin's next exec", details: e)
            }
            // The thread ends with perform; clear it anyway so nothing else it runs changes context.
            defer { _ = write(attr, "") }
            return try Subprocess.run("/proc/self/exe", arguments: arguments, environment: [:], argv0: "cni-plugins")
        }
        guard output.succeeded else {
            throw CNIError(
                .kernelOperationFailed, "tap: the helper in context \"\(label)\" could not make \(name) (\(output.termination))",
                details: String(decoding: output.stderr.prefix(1000), as: UTF8.self))
        }
    }

    /// Writes `text` to the /proc file `path`; the failure's description, or nil.
    static func write(_ path: String, _ text: String) -> String? {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? nil : "write \(path): \(String(cString: strerror(errno)))"
    }

    /// The helper: `--make-tap NAME MULTIQUEUE OWNER|- GROUP|-` makes the tap in this process's
    /// namespace; exit status 0, or 1 with the failure on standard error.
    public static func runHelper(_ arguments: [String]) -> Int32 {
        guard arguments.count == 4 else {
            System.logError("usage: cni-plugins \(helper) NAME 0|1 OWNER|- GROUP|-\n")
            return 2
        }
        do {
            try TapDevice.create(
                name: arguments[0], multiQueue: arguments[1] == "1", owner: UInt32(arguments[2]), group: UInt32(arguments[3]))
            return 0
        } catch {
            System.logError("\(error)\n")
            return 1
        }
    }
}
