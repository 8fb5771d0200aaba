import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// An etcd endpoint: `http://HOST:PORT` or `https://HOST:PORT` (HOST a name, an IPv4 address or
/// a bracketed IPv6 address; the port defaults to 80 or 443 as in a URL).
struct EtcdEndpoint: Sendable, CustomStringConvertible {
    let tls: Bool
    let host: String
    let port: Int
    let description: String

    init(_ text: String) throws {
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        let rest: Substring
        if trimmed.hasPrefix("http://") {
            tls = false
            rest = trimmed.dropFirst(7)
        } else if trimmed.hasPrefix("https://") {
            tls = true
            rest = trimmed.dropFirst(8)
        } else {
            throw EtcdError("etcd endpoint \(text): must start with http:// or https://")
        }
        var host = Substring(rest)
        var port = tls ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw EtcdError("etcd endpoint \(text): no ] after the IPv6 address") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { throw EtcdError("etcd endpoint \(text): invalid port") }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]) else { throw EtcdError("etcd endpoint \(text): invalid port") }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, !host.contains("/"), (1...65535).contains(port) else {
            throw EtcdError("etcd endpoint \(text): must be http(s)://HOST:PORT")
        }
        self.host = String(host)
        self.port = port
        description = trimmed
    }

    /// The name the server's certificate is checked against: nil for an address literal, whose
    /// check is against the certificate's IP addresses.
    var serverHostname: String? {
        let isIPv4 = host.split(separator: ".").count == 4 && host.allSatisfy { $0 == "." || $0.isNumber }
        return isIPv4 || host.contains(":") ? nil : host
    }
}

/// An answer of etcd's gateway: the status, and the body as it arrives (a watch's never ends
/// until it is cancelled).
struct EtcdHTTPResponse: Sendable {
    let status: HTTPResponseStatus
    let body: AsyncThrowingStream<[UInt8], Error>

    /// The whole body; more than `limit` bytes is an error.
    func whole(upTo limit: Int) async throws -> [UInt8] {
        var all: [UInt8] = []
        for try await chunk in body {
            all += chunk
            if all.count > limit { throw EtcdError("an answer of more than \(limit) bytes") }
        }
        return all
    }
}

/// HTTP/1.1 POSTs to the gateway over SwiftNIO (TLS through NIOSSL), one connection per request:
/// a watch holds its own for as long as it lasts, a call's ends with its answer. No Foundation.
final class EtcdTransport: Sendable {
    private let sslContext: NIOSSLContext?
    private let connectTimeout: TimeAmount
    /// The connections open now, closed together by ``closeAll()``.
    private let open = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    init(tls: TLSConfiguration?, connectTimeout: TimeAmount) throws {
        sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        self.connectTimeout = connectTimeout
    }

    /// POSTs `body` (JSON) to `path` of `endpoint`; the answer's head once it arrived, its body
    /// streaming. Past `deadline` the connection is closed and the request fails.
    func post(_ endpoint: EtcdEndpoint, path: String, body: [UInt8], deadline: NIODeadline) async throws -> EtcdHTTPResponse {
        if endpoint.tls && sslContext == nil {
            throw EtcdError("\(endpoint): https needs TLS settings (a CA at least)")
        }
        let (stream, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream()
        let head = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: HTTPResponseHead.self)
        var request = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        request.headers.add(name: "Host", value: endpoint.port == (endpoint.tls ? 443 : 80) ? endpoint.host : "\(endpoint.host):\(endpoint.port)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Content-Length", value: String(body.count))
        let requestHead = request
        let ssl = endpoint.tls ? sslContext : nil
        let hostname = endpoint.serverHostname
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(connectTimeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let ssl { try sync.addHandler(try NIOSSLClientHandler(context: ssl, serverHostname: hostname)) }
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(EtcdResponseHandler(request: requestHead, body: body, head: head, body: continuation))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            head.fail(error)
            continuation.finish(throwing: error)
            throw EtcdError("\(endpoint): connect: \(error)")
        }
        let id = ObjectIdentifier(channel)
        open.withLockedValue { $0[id] = channel }
        let timer: Scheduled<Void>? =
            deadline == .distantFuture
            ? nil
            : channel.eventLoop.scheduleTask(deadline: deadline) {
                channel.pipeline.fireErrorCaught(EtcdError("\(endpoint)\(path): no answer in time"))
            }
        channel.closeFuture.whenComplete { [open] _ in
            timer?.cancel()
            open.withLockedValue { _ = $0.removeValue(forKey: id) }
        }
        continuation.onTermination = { _ in channel.close(promise: nil) }
        let answer = try await withTaskCancellationHandler {
            try await head.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        return EtcdHTTPResponse(status: answer.status, body: stream)
    }

    /// Closes every connection open now (and so ends every watch).
    func closeAll() {
        for channel in open.withLockedValue({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// Writes the request once the connection is up, then hands the answer on: its head to a
/// promise, its body to a stream. A connection lost or an error before the end fails both.
private final class EtcdResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let request: HTTPRequestHead
    private let body: [UInt8]
    private let head: EventLoopPromise<HTTPResponseHead>
    private let stream: AsyncThrowingStream<[UInt8], Error>.Continuation
    private var ended = false
    private var answered = false

    init(
        request: HTTPRequestHead, body: [UInt8], head: EventLoopPromise<HTTPResponseHead>,
        body stream: AsyncThrowingStream<[UInt8], Error>.Continuation
    ) {
        self.request = request
        self.body = body
        self.head = head
        self.stream = stream
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(request)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            answered = true
            head.succeed(h)
        case .body(let buffer):
            stream.yield(Array(buffer: buffer))
        case .end:
            ended = true
            stream.finish()
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(EtcdError("the connection closed before the answer ended"))
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        guard !ended else { return }
        ended = true
        if !answered { head.fail(error) }
        stream.finish(throwing: error)
    }
}
