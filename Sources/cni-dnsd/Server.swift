import Base
import CNI
import DNS
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The responder: listeners per gateway address (UDP and TCP), the zones, forwarding.
final class Server: @unchecked Sendable {
    let dir: String
    let port: Int
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let log: (String) -> Void
    private let state = NIOLockedValueBox(State())
    let forwarder: Forwarder
    let stats = Stats()
    /// UDP: its own loop (UDPLoop); TCP and control: the event loop group.
    private(set) var udp: UDPLoop!
    /// Touched only on the UDP loop's thread.
    private var limiter: RateLimiter

    /// A listen address: its UDP socket (served by `udp`) and its TCP channel.
    struct Listener {
        var udp: Int32
        var tcp: Channel
    }

    struct State {
        var zones = Zones([], generation: 0)
        var listeners: [IPAddress: Listener] = [:]
        var tcpConnections = 0
        var tcpBySource: [IPAddress: Int] = [:]
    }

    /// TCP: at most this many connections, per source and in all; idle ones close after 10 s.
    static let maxTCP = 256
    static let maxTCPPerSource = 16

    init(dir: String, port: Int, rateLimit: Int, log: @escaping (String) -> Void) {
        self.dir = dir
        self.port = port
        self.log = log
        limiter = RateLimiter(rate: rateLimit)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        forwarder = Forwarder(log: log)
    }

    /// Starts the UDP loop (once, before the first reload).
    func start() throws {
        let loop = group.next()
        udp = try UDPLoop { [unowned self] message, source, listener, replyTo in
            guard admitUDP(source, listener: listener) else { return nil }
            return handle(message, source: source, listener: listener, overTCP: false, on: loop, later: { { replyTo.send($0) } })
        }
    }

    var zones: Zones { state.withLockedValue { $0.zones } }

    /// Reads every network file of the directory.
    func load() -> [NetworkRecords] {
        let files = (try? System.listDirectory(dir)) ?? []
        var out: [NetworkRecords] = []
        for f in files.sorted() where f.hasSuffix(".net") {
            guard let text = try? String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8) else { continue }
            var problems: [String] = []
            if let r = NetworkRecords(network: String(f.dropLast(4)), text: text, problems: &problems) { out.append(r) }
            problems.forEach(log)
        }
        return out
    }

    /// Re-reads the records and swaps them in; binds the listen addresses that are new, closes
    /// those that are gone. Returns the new generation, or throws naming what could not be bound.
    func reload() throws -> (generation: UInt64, networks: Int) {
        let records = load()
        let wanted = Set(records.flatMap(\.listen))
        let have = state.withLockedValue { Set($0.listeners.keys) }
        var opened: [IPAddress: Listener] = [:]
        do {
            for a in wanted.subtracting(have).sorted() { opened[a] = try bind(a) }
        } catch {
            for l in opened.values {
                close(l.udp)
                try? l.tcp.close().wait()
            }
            throw error
        }
        var closing: [Listener] = []
        let (generation, count) = state.withLockedValue { s -> (UInt64, Int) in
            s.zones = Zones(records, generation: s.zones.generation + 1)
            for (a, l) in opened { s.listeners[a] = l }
            for a in have.subtracting(wanted) { if let l = s.listeners.removeValue(forKey: a) { closing.append(l) } }
            return (s.zones.generation, records.count)
        }
        for (a, l) in opened { udp.add(l.udp, listener: a) }
        for l in closing {
            udp.remove(l.udp)
            try? l.tcp.close().wait()
        }
        stats.keep(only: Set(records.map(\.network)))
        // Upstreams from the host's resolv.conf, for networks that name none.
        forwarder.reloadResolvConf()
        return (generation, count)
    }

    func bind(_ a: IPAddress) throws -> Listener {
        let host = a.description
        let udpFD = try UDPLoop.bind(a, port: port)
        do {
            let tcp = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 128)
                .childChannelInitializer { ch in
                    guard let src = ch.remoteAddress.flatMap(IPAddress.init(socket:)), self.admitTCP(src) else {
                        return ch.close()
                    }
                    ch.closeFuture.whenComplete { _ in self.releaseTCP(src) }
                    return ch.pipeline.addHandlers([
                        IdleStateHandler(readTimeout: .seconds(10)),
                        ByteToMessageHandler(LengthFrameDecoder()),
                        TCPHandler(server: self, listener: a, source: src),
                    ])
                }
                .bind(host: host, port: port).wait()
            return Listener(udp: udpFD, tcp: tcp)
        } catch {
            close(udpFD)
            throw error
        }
    }

    func admitTCP(_ src: IPAddress) -> Bool {
        state.withLockedValue { s in
            guard s.tcpConnections < Server.maxTCP, (s.tcpBySource[src] ?? 0) < Server.maxTCPPerSource else { return false }
            s.tcpConnections += 1
            s.tcpBySource[src, default: 0] += 1
            return true
        }
    }

    func releaseTCP(_ src: IPAddress) {
        state.withLockedValue { s in
            s.tcpConnections -= 1
            s.tcpBySource[src, default: 1] -= 1
            if s.tcpBySource[src] == 0 { s.tcpBySource[src] = nil }
        }
    }

    /// The per-source UDP rate limit (on the event loop); a refused query is counted.
    func admitUDP(_ source: IPAddress, listener: IPAddress) -> Bool {
        if limiter.admit(source, now: RateLimiter.now()) { return true }
        let net = zones.networkName(listening: listener) ?? "-"
        stats.update(net) {
            $0.queries += 1
            $0.rateLimited += 1
        }
        return false
    }

    /// Answers `message`: the reply at once, or nil (dropped, or forwarded: `later` gets the
    /// upstream's answer on the channel's event loop). Counted for the listener's network.
    func handle(
        _ message: [UInt8], source: IPAddress, listener: IPAddress, overTCP: Bool, on loop: EventLoop,
        later makeLater: () -> @Sendable ([UInt8]) -> Void
    ) -> [UInt8]? {
        let z = zones
        let net = z.networkName(listening: listener) ?? "-"
        switch Responder.respond(message, source: source, listener: listener, overTCP: overTCP, zones: z) {
        case .reply(let b):
            stats.update(net) {
                $0.queries += 1
                $0.rcodes[Int(b[3] & 0xF)] += 1
            }
            return b
        case .drop:
            stats.update(net) {
                $0.queries += 1
                $0.dropped += 1
            }
            return nil
        case .forward(let q, let upstreams, let servFail):
            guard forwarder.begin() else {
                stats.update(net) {
                    $0.queries += 1
                    $0.rcodes[2] += 1
                }
                return servFail
            }
            stats.update(net) {
                $0.queries += 1
                $0.forwarded += 1
            }
            let ups = upstreams.isEmpty ? forwarder.hostUpstreams : upstreams
            let later = makeLater()  // made only here: answering locally allocates no closure
            pool.runIfActive(eventLoop: loop) { [forwarder, stats] in
                defer { forwarder.end() }
                guard let answer = forwarder.exchange(message, id: q.id, upstreams: ups, overTCP: overTCP) else {
                    stats.update(net) {
                        $0.upstreamFailures += 1
                        $0.rcodes[2] += 1
                    }
                    return servFail
                }
                stats.update(net) { $0.rcodes[Int(answer.count > 3 ? answer[3] & 0xF : 2)] += 1 }
                return answer
            }.whenSuccess { later($0) }
            return nil
        }
    }

    func closeAll() {
        let all = state.withLockedValue { s -> [Listener] in
            let ls = Array(s.listeners.values)
            s.listeners = [:]
            return ls
        }
        for l in all {
            udp.remove(l.udp)
            try? l.tcp.close().wait()
        }
    }
}

extension IPAddress {
    init?(socket: SocketAddress) {
        switch socket {
        case .v4(let a):
            var s = a.address.sin_addr
            self.init(networkBytes: withUnsafeBytes(of: &s) { Array($0) })
        case .v6(let a):
            var s = a.address.sin6_addr
            let b = withUnsafeBytes(of: &s) { Array($0) }
            // An IPv4-mapped source is the IPv4 client.
            if b.prefix(10).allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                self.init(networkBytes: Array(b.suffix(4)))
            } else {
                self.init(networkBytes: b)
            }
        default:
            return nil
        }
    }
}

/// RFC 1035 4.2.2 framing: a two-byte length, then the message. A zero length closes.
struct LengthFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let len = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) else { return .needMoreData }
        if len == 0 {
            context.close(promise: nil)
            return .needMoreData
        }
        guard buffer.readableBytes >= 2 + Int(len) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(len))!))
        return .continue
    }
}

final class TCPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let server: Server
    let listener: IPAddress
    let source: IPAddress
    init(server: Server, listener: IPAddress, source: IPAddress) {
        self.server = server
        self.listener = listener
        self.source = source
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let msg = Array(unwrapInboundIn(data).readableBytesView)
        let channel = context.channel
        // Pipelined queries are answered as they come, each independently (RFC 7766).
        @Sendable func frame(_ reply: [UInt8]) -> ByteBuffer {
            var b = channel.allocator.buffer(capacity: reply.count + 2)
            b.writeInteger(UInt16(reply.count))
            b.writeBytes(reply)
            return b
        }
        let reply = server.handle(msg, source: source, listener: listener, overTCP: true, on: context.eventLoop) {
            { late in channel.writeAndFlush(frame(late), promise: nil) }
        }
        if let reply { context.write(wrapOutboundOut(frame(reply)), promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
