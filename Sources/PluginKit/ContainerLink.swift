import Base
import CNI
import Netlink

extension NetlinkSocket {
    /// Refuses, with code 107 (conflict), a CNI_IFNAME the container already has.
    public func requireFree(_ ifName: String, in netns: String) throws {
        if try link(named: ifName) != nil {
            throw CNIError(
                .conflict, "container interface \"\(ifName)\" already exists",
                details: "in \(netns); DEL the attachment first or choose another CNI_IFNAME")
        }
    }
}

extension AddSteps {
    /// Makes the container's interface through `create`, which makes it in the container under
    /// the temporary name it is given (`prefix` and eight random hex digits, never a host
    /// interface's name), registers its deletion as an undo step and renames it CNI_IFNAME: a
    /// crash never leaves a half-made link on the host. `what` names the link in the error
    /// (`macvlan "eth0" on "ens3"`).
    public func makeInContainer(_ cnl: NetlinkSocket, prefix: String, what: String, _ create: (String) throws -> Void) throws -> Link {
        let ifName = ctx.args.ifName
        do {
            let temporary = prefix + String(UInt32.random(in: 0...UInt32.max), radix: 16)
            try create(temporary)
            let made = try cnl.requireLink(temporary)
            undo("delete \(ifName) in the container") { try? cnl.deleteLink(made.index) }
            try cnl.rename(made.index, to: ifName)
            return made
        } catch let e as CNIError {
            throw e
        } catch {
            throw CNIError(.kernelOperationFailed, "failed to create \(what)", details: "\(error)")
        }
    }
}

extension CNIResult {
    /// The result's only interface: `index` as the container's socket `cnl` reads it now, in
    /// CNI_NETNS.
    public mutating func list(containerInterface index: Int32, _ cnl: NetlinkSocket, _ ctx: PluginContext) throws {
        guard let now = try cnl.link(index: index) else {
            throw CNIError(.kernelOperationFailed, "\(ctx.args.ifName) vanished from \(ctx.args.netns) during ADD")
        }
        interfaces = [.init(name: now.name, mac: now.mac.description, mtu: now.mtu, sandbox: ctx.args.netns)]
    }
}
