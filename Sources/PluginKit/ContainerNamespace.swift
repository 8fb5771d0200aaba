import Base
import CNI
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

extension NetworkNamespace {
    /// CNI_NETNS opened for a plugin: code 3 when it does not exist, 4 when it is not a network
    /// namespace, or is the plugin's own and CNI_NETNS_OVERRIDE (1/true) is not set.
    public static func container(_ path: String, environment: [String: String]) throws(CNIError) -> NetworkNamespace {
        do {
            let ns = try NetworkNamespace(path: path)
            let override = environment["CNI_NETNS_OVERRIDE"].map { $0 == "1" || $0.lowercased() == "true" } ?? false
            if ns.isCurrent && !override {
                throw CNIError(
                    .invalidEnvironment, "invalid CNI_NETNS \"\(path)\"",
                    details: "it is the plugin's own network namespace (set CNI_NETNS_OVERRIDE=1 to allow)")
            }
            return ns
        } catch let e as NetlinkError {
            if e.errno == ENOENT { throw CNIError(.unknownContainer, "network namespace \"\(path)\" does not exist") }
            throw CNIError(.invalidEnvironment, "invalid CNI_NETNS \"\(path)\"", details: e.description)
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "cannot open \(path)", details: "\(error)")
        }
    }
}

extension NetworkNamespace {
    /// DEL's interface step: deletes `ifName` in the namespace at `path`; a namespace or interface
    /// that is already gone is success. Equivalent to `ip -n <ns> link del <ifName>`.
    public static func deleteInterface(_ ifName: String, inNamespaceAt path: String) throws {
        do {
            let nl = try NetworkNamespace(path: path).netlink()
            if let l = try nl.link(named: ifName) { try nl.deleteLink(l.index) }
        } catch let e as NetlinkError where e.errno == ENOENT || e.errno == ENODEV {
            // Already gone.
        }
    }
}

/// An exclusive lock on a network namespace's file (`flock`, the reference's meta plugins'
/// lock): plugins that choose something per namespace (a routing table, a VRF) hold it, so two
/// attachments of one container never choose the same.
public enum NamespaceLock {
    /// Runs `body` holding the lock on the namespace file `path` (waiting for it). Code 4 when
    /// the file cannot be opened.
    public static func hold<T>(_ path: String, plugin: String, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CNIError(.invalidEnvironment, "\(plugin): cannot open CNI_NETNS \(path)", details: String(cString: strerror(errno))) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            throw CNIError(.kernelOperationFailed, "\(plugin): cannot lock \(path)", details: String(cString: strerror(errno)))
        }
        return try body()
    }
}
