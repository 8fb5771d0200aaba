import Base
import CNI
import NIOCore
import NIOHTTP1
import NIOPosix

/// The opt-in Prometheus endpoint: `GET /metrics` on one address (`--metrics`), the counters of
/// ``Stats`` in the text format; anything else is 404 (405 for other methods).
enum MetricsServer {
    /// `1.2.3.4:9153` or `[::1]:9153` -> host text and port.
    static func parse(_ s: String) -> (host: String, port: Int)? {
        IPAddress.parseHostPort(s).map { ($0.host.description, $0.port) }
    }

    static func start(host: String, port: Int, group: EventLoopGroup, stats: Stats) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.pipeline.configureHTTPServerPipeline().flatMap { ch.pipeline.addHandler(MetricsHandler(stats: stats)) }
            }
            .bind(host: host, port: port).wait()
    }
}

final class MetricsHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let stats: Stats
    var head: HTTPRequestHead?

    init(stats: Stats) { self.stats = stats }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            let (status, body): (HTTPResponseStatus, String)
            if h.method != .GET && h.method != .HEAD {
                (status, body) = (.methodNotAllowed, "only GET\n")
            } else if h.uri.split(separator: "?").first == "/metrics" {
                (status, body) = (.ok, stats.prometheus())
            } else {
                (status, body) = (.notFound, "see /metrics\n")
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
            if h.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            }
            let keepAlive = h.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
