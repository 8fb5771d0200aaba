import Base
import Etcd
import Netlink
import Overlay

#if canImport(Glibc)
    import Glibc
#endif

/// What wakes the etcd loop.
enum Wake: Sendable {
    case listed([EtcdKeyValue])
    case watched(EtcdWatchResponse)
    case keepAlive
    case resync
}

/// The etcd store's loop: this host's lease kept alive, the peers from a listing and the watch
/// after it, programmed on every change, every link or address change and every resync.
@MainActor final class EtcdAgent {
    let agent: Agent
    let client: EtcdClient
    let store: EtcdLeaseStore
    let ttl: Int
    var host: HostSide { agent.host }

    var lease: NodeLease?
    /// etcd key -> lease, from the listing and the watch.
    var peers: [String: NodeLease] = [:]
    var keepAliveFailed = false
    var lastKeepAlive: ContinuousClock.Instant?

    init(_ agent: Agent, endpoints: [String], prefix: String, ttl: Int, tls files: EtcdTLSFiles) {
        self.agent = agent
        self.ttl = ttl
        let tls = EtcdTLS(caFile: files.ca, certFile: files.cert, keyFile: files.key)
        do { client = try EtcdClient(endpoints: endpoints, tls: tls == EtcdTLS() ? nil : tls) } catch { Agent.fail("\(error)") }
        store = EtcdLeaseStore(client: client, prefix: prefix, network: agent.host.network, node: agent.host.node, ttl: ttl)
    }

    func run() async -> Never {
        if agent.once { await runOnce() }
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self)
        startStopper()
        startWatch(wake)
        startTicks(wake)
        startMonitor(wake)
        await claim()
        for await w in wakes {
            switch w {
            case .listed(let kvs): await listed(kvs)
            case .watched(let r): await watched(r)
            case .keepAlive: await keepAlive()
            case .resync: await resync()
            }
        }
        exit(0)
    }

    /// `--once`: claim, program from one listing, exit.
    func runOnce() async -> Never {
        await claim()
        guard let lease else { Agent.fail("no lease") }
        do {
            let (list, _) = try await store.list()
            try host.program(lease, leases: list)
        } catch { Agent.fail("\(error)") }
        exit(0)
    }

    /// Claims (or keeps) the subnet with the underlay's address now; programs the host.
    func claim() async {
        do {
            let under = try host.underlay()
            let preferred = lease?.subnet ?? (try? NodeFile.read(host.nodeFilePath))?.flatMap { $0.lease.node == host.node ? $0.lease.subnet : nil }
            let l = try await store.claim(vtep: under.address, preferred: preferred)
            if l != lease { Agent.log("lease \(l.subnet) vtep \(l.vtep)") }
            lease = l
            try host.program(l, leases: Array(peers.values), underlay: under)
        } catch {
            Agent.log("claim: \(error)")
        }
    }

    func program() {
        guard let lease else { return }
        do { try host.program(lease, leases: Array(peers.values)) } catch { Agent.log("\(error)") }
    }

    // MARK: The wakes

    func listed(_ kvs: [EtcdKeyValue]) async {
        peers = [:]
        for kv in kvs { peers[kv.keyString] = store.lease(kv) }
        // This host's own key missing (it expired while etcd was out of reach): claim again.
        if lease == nil || !peers.values.contains(where: { $0.node == host.node }) { await claim() } else { program() }
    }

    func watched(_ r: EtcdWatchResponse) async {
        for e in r.events {
            switch e {
            case .put(let kv):
                peers[kv.keyString] = store.lease(kv)
            case .delete(let key, _):
                let k = String(decoding: key, as: UTF8.self)
                // This host's own key gone (revoked or expired): claim again.
                if peers[k]?.node == host.node { lease = nil }
                peers[k] = nil
            }
        }
        if lease == nil { await claim() } else { program() }
    }

    func keepAlive() async {
        // Ticks that queued up while a request waited for an unreachable etcd count once: one
        // soon after the end of the last renewal is skipped.
        if let last = lastKeepAlive, ContinuousClock.now - last < .milliseconds(ttl * 1000 / 3) / 2 { return }
        defer { lastKeepAlive = ContinuousClock.now }
        // Not claimed yet (etcd was out of reach): try again at this pace, not the resync's.
        guard lease != nil else { return await claim() }
        do {
            if try await !store.keepAlive() {
                Agent.log("the etcd lease is gone (expired or revoked): claiming again")
                await claim()
            }
            if keepAliveFailed {
                // etcd was out of reach: a watch on a connection that died silently (its host
                // gone, no reset) would never end by itself; start over.
                keepAliveFailed = false
                await client.reconnect()
            }
        } catch {
            Agent.log("keepalive: \(error)")
            keepAliveFailed = true
        }
    }

    /// Follows an underlay address change (a new VTEP address, the same subnet) and re-makes a
    /// deleted VTEP.
    func resync() async {
        if let l = lease, let (_, local) = try? host.underlay(), local != l.vtep {
            Agent.log("underlay address \(l.vtep) -> \(local)")
            // Connections from the old address are dead: new ones, the watch listed again.
            await client.reconnect()
            await claim()
        } else if lease == nil {
            await claim()
        } else {
            program()
        }
    }

    // MARK: What wakes the loop

    /// The stop: on a thread of its own, so a loop waiting on an unreachable etcd does not hold it
    /// up; the release gets 3 seconds, then the agent exits anyway (the lease then expires).
    func startStopper() {
        let fd = agent.stopFD, release = agent.releaseOnExit, nodeFile = host.nodeFilePath, subnetFile = host.subnetFilePath, store = store
        DetachedThread.start {
            var b: UInt8 = 0
            while read(fd, &b, 1) < 0 && errno == EINTR {}
            Task.detached {
                try? await Task.sleep(for: .seconds(3))
                Agent.log("the release did not finish in 3 s: exiting; the lease expires in its TTL")
                exit(0)
            }
            Task.detached {
                if release {
                    do { try await store.release() } catch { Agent.log("release: \(error)") }
                    HostSide.removeFiles(node: nodeFile, subnet: subnetFile)
                }
                exit(0)
            }
        }
    }

    /// The watch: list, then watch from the next revision; listed again when the watch ends (a
    /// compacted revision, etcd restarted, the connection lost).
    func startWatch(_ wake: AsyncStream<Wake>.Continuation) {
        let prefix = store.subnetsPrefix, client = client
        Task.detached {
            while true {
                do {
                    let (kvs, revision) = try await client.range(prefix: prefix)
                    wake.yield(.listed(kvs))
                    for try await w in client.watch(prefix: prefix, from: revision + 1) {
                        if w.canceled {
                            Agent.log("watch cancelled at compacted revision \(w.compactRevision) \(w.cancelReason): listing again")
                            break
                        }
                        if !w.events.isEmpty { wake.yield(.watched(w)) }
                    }
                } catch {
                    Agent.log("watch: \(error)")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// The keepalive ticks (three per TTL) and the resync ticks.
    func startTicks(_ wake: AsyncStream<Wake>.Continuation) {
        let ttl = ttl, resyncSeconds = Int(agent.resync)
        Task.detached {
            while true {
                try? await Task.sleep(for: .milliseconds(ttl * 1000 / 3))
                wake.yield(.keepAlive)
            }
        }
        Task.detached {
            while true {
                try? await Task.sleep(for: .seconds(resyncSeconds))
                wake.yield(.resync)
            }
        }
    }

    /// Links and addresses: a change (the VTEP deleted or flapped, the underlay's address) is
    /// looked at at once; what comes within 100 ms is gathered into one resync.
    func startMonitor(_ wake: AsyncStream<Wake>.Continuation) {
        let monitor: NetlinkMonitor
        do { monitor = try NetlinkMonitor() } catch { Agent.fail("\(error)") }
        DetachedThread.start {
            while true {
                guard monitor.wait(milliseconds: -1) else { continue }
                while monitor.drain() && monitor.wait(milliseconds: 100) {}
                wake.yield(.resync)
            }
        }
    }
}
