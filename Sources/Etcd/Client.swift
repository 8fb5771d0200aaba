import Base
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// A failed etcd request: the endpoint, the call and what went wrong (an HTTP status with
/// etcd's own message, a transport error, or an answer that is not what etcd sends).
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// TLS for the etcd endpoints: a CA to verify the server with, and a client certificate and key
/// when etcd asks for one (`--client-cert-auth`). PEM files.
public struct EtcdTLS: Sendable, Equatable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    /// TLS with a CA to verify the server and, for client authentication, a certificate and key.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    func configuration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        if let certFile { tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) } }
        // Loaded here as PEM (a `.file` source guesses the format from the file's extension).
        if let keyFile { tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)) }
        return tls
    }
}

/// One key-value pair as etcd returns it.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var lease: Int64

    /// A key-value pair with its revisions and lease.
    public init(key: [UInt8], value: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0, lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.lease = lease
    }

    public var keyString: String { String(decoding: key, as: UTF8.self) }
}

/// A change seen by a watch.
public enum EtcdEvent: Sendable, Equatable {
    case put(EtcdKeyValue)
    case delete(key: [UInt8], modRevision: Int64)
}

/// One message of a watch stream.
public struct EtcdWatchResponse: Sendable, Equatable {
    public var revision: Int64
    public var created = false
    public var canceled = false
    /// Set when the watch asked for a revision already compacted: the caller lists again.
    public var compactRevision: Int64 = 0
    public var events: [EtcdEvent] = []
    public var cancelReason = ""
}

/// A condition of a transaction (the subset the overlay needs).
public enum EtcdCompare: Sendable {
    /// The key does not exist.
    case absent([UInt8])
    /// The key was last changed at this revision (nobody changed it since it was read).
    case modRevision([UInt8], Int64)
}

/// etcd v3 through its JSON gateway (`/v3/...`, grpc-gateway): ranges by prefix, puts attached
/// to leases, compare-and-swap transactions, leases (grant, keep-alive, revoke) and watches
/// streamed from a revision. Endpoints are tried in order; the first that answers is kept.
public final class EtcdClient: Sendable {
    /// The endpoints, as given (without a trailing slash).
    public let endpoints: [String]
    let parsed: [EtcdEndpoint]
    let transport: EtcdTransport
    let current = NIOLockedValueBox(0)
    /// Per request (a watch has none: it lasts until cancelled).
    let timeout: TimeAmount

    /// `endpoints`: `http://HOST:PORT` or `https://HOST:PORT`. Throws when the TLS files cannot be read.
    public init(endpoints: [String], tls: EtcdTLS? = nil, timeout: TimeAmount = .seconds(5)) throws {
        guard !endpoints.isEmpty else { throw EtcdError("no etcd endpoint") }
        parsed = try endpoints.map(EtcdEndpoint.init)
        self.endpoints = parsed.map(\.description)
        self.timeout = timeout
        let configuration: TLSConfiguration?
        do { configuration = try tls?.configuration() } catch { throw EtcdError("etcd TLS: \(error)") }
        do {
            transport = try EtcdTransport(tls: configuration, connectTimeout: .seconds(3))
        } catch {
            throw EtcdError("etcd TLS: \(error)")
        }
    }

    /// Closes every connection; a watch still running ends.
    public func shutdown() async { transport.closeAll() }

    /// Drops every connection (and so every watch): after this host's address changed, a
    /// connection from the old address would wait forever for its answers.
    public func reconnect() async { transport.closeAll() }

    // MARK: KV

    /// Every key under `prefix`, and the store's revision at the time of the read.
    public func range(prefix: [UInt8]) async throws -> (kvs: [EtcdKeyValue], revision: Int64) {
        let r = try await call("/v3/kv/range", ["key": b64(prefix), "range_end": b64(Self.rangeEnd(prefix))])
        let kvs = try (r["kvs"]?.arrayValue ?? []).map(Self.keyValue)
        return (kvs, Self.revision(r))
    }

    /// Puts `value` at `key` (attached to `lease` when given). Returns the new revision.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64? = nil) async throws -> Int64 {
        var body: JSONObject = ["key": b64(key), "value": b64(value)]
        if let lease { body["lease"] = .string(String(lease)) }
        return Self.revision(try await call("/v3/kv/put", body))
    }

    /// Puts `value` at `key` only if every comparison holds, atomically. True when it did.
    public func putIf(_ compares: [EtcdCompare], key: [UInt8], value: [UInt8], lease: Int64?) async throws -> Bool {
        var put: JSONObject = ["key": b64(key), "value": b64(value)]
        if let lease { put["lease"] = .string(String(lease)) }
        return try await transaction(compares, success: [.object(["request_put": .object(put)])])
    }

    /// Deletes `key` only if every comparison holds. True when it did.
    public func deleteIf(_ compares: [EtcdCompare], key: [UInt8]) async throws -> Bool {
        try await transaction(compares, success: [.object(["request_delete_range": .object(["key": b64(key)])])])
    }

    func transaction(_ compares: [EtcdCompare], success: [JSONValue]) async throws -> Bool {
        let c: [JSONValue] = compares.map {
            switch $0 {
            case .absent(let k):
                return .object(["key": b64(k), "result": .string("EQUAL"), "target": .string("CREATE"), "create_revision": .string("0")])
            case .modRevision(let k, let rev):
                return .object(["key": b64(k), "result": .string("EQUAL"), "target": .string("MOD"), "mod_revision": .string(String(rev))])
            }
        }
        let r = try await call("/v3/kv/txn", ["compare": .array(c), "success": .array(success)])
        // The gateway leaves false out (proto3 defaults are not written).
        return r["succeeded"] == .bool(true)
    }

    /// Compacts the history up to `revision` (tests; an operator's job otherwise).
    public func compact(_ revision: Int64) async throws {
        _ = try await call("/v3/kv/compaction", ["revision": .string(String(revision)), "physical": .bool(true)])
    }

    // MARK: Leases

    /// A lease of `ttl` seconds; its ID.
    public func grant(ttl: Int) async throws -> Int64 {
        let r = try await call("/v3/lease/grant", ["TTL": .string(String(ttl))])
        if let e = r["error"]?.stringValue, !e.isEmpty { throw EtcdError("lease grant: \(e)") }
        guard let id = r["ID"].flatMap(Self.int64), id != 0 else { throw EtcdError("lease grant: no ID in the answer") }
        return id
    }

    /// Renews `id`; the remaining TTL, 0 when the lease is gone (expired or revoked).
    public func keepAlive(_ id: Int64) async throws -> Int64 {
        // A bidirectional stream on the gateway: one request in the body, one result out.
        let r = try await call("/v3/lease/keepalive", ["ID": .string(String(id))])
        guard case .object(let result)? = r["result"] else {
            throw EtcdError("lease keepalive: \(r["error"].map { $0.serialized() } ?? "no result")")
        }
        return result["TTL"].flatMap(Self.int64) ?? 0
    }

    /// Revokes `id`: every key attached to it is deleted.
    public func revoke(_ id: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": .string(String(id))])
    }

    // MARK: Watch

    /// Every change under `prefix` from `revision` on, until the stream is cancelled or etcd ends
    /// it (a compacted start revision: `compactRevision` is set and `canceled` true).
    public func watch(prefix: [UInt8], from revision: Int64) -> AsyncThrowingStream<EtcdWatchResponse, Error> {
        let body: JSONObject = [
            "create_request": .object([
                "key": b64(prefix), "range_end": b64(Self.rangeEnd(prefix)), "start_revision": .string(String(revision)),
            ])
        ]
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await self.send("/v3/watch", body, deadline: .distantFuture)
                    var splitter = JSONStreamSplitter()
                    for try await chunk in response.body {
                        for message in try splitter.feed(chunk) {
                            continuation.yield(try Self.watchResponse(message))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Transport

    /// POSTs `body` to `path` on the current endpoint (the next ones on a transport error) and
    /// returns the answer's JSON object; etcd's errors (a non-200 status) become `EtcdError`.
    func call(_ path: String, _ body: JSONObject) async throws -> JSONObject {
        let response = try await send(path, body, deadline: .now() + timeout)
        let bytes: [UInt8]
        do { bytes = try await response.whole(upTo: 64 << 20) } catch { throw EtcdError("\(path): \(error)") }
        var splitter = JSONStreamSplitter()
        guard let first = try splitter.feed(bytes).first, case .object(let o) = first else {
            throw EtcdError("\(path): not a JSON object: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        guard response.status == .ok else {
            throw EtcdError("\(path): HTTP \(response.status.code): \(o["message"]?.stringValue ?? o["error"]?.stringValue ?? first.serialized())")
        }
        return o
    }

    func send(_ path: String, _ body: JSONObject, deadline: NIODeadline) async throws -> EtcdHTTPResponse {
        let start = current.withLockedValue { $0 }
        let bytes = Array(JSONValue.object(body).serialized().utf8)
        var failures: [String] = []
        for i in 0..<parsed.count {
            let n = (start + i) % parsed.count
            do {
                let response = try await transport.post(parsed[n], path: path, body: bytes, deadline: deadline)
                if n != start { current.withLockedValue { $0 = n } }
                return response
            } catch {
                if Task.isCancelled { throw error }
                failures.append("\(error)")
            }
        }
        throw EtcdError("\(path): no etcd endpoint answered (\(failures.joined(separator: "; ")))")
    }

    // MARK: Decoding (pure)

    func b64(_ bytes: [UInt8]) -> JSONValue { .string(Base64.encode(bytes)) }

    /// The end of the range of every key starting with `prefix` (the prefix + 1, as etcdctl).
    public static func rangeEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]  // every key
    }

    static func int64(_ v: JSONValue) -> Int64? {
        switch v {
        case .string(let s): return Int64(s)
        case .number(let n): return Int64(n.text)
        default: return nil
        }
    }

    static func revision(_ o: JSONObject) -> Int64 {
        guard case .object(let h)? = o["header"] else { return 0 }
        return h["revision"].flatMap(int64) ?? 0
    }

    static func bytes(_ v: JSONValue?) throws -> [UInt8] {
        guard let v else { return [] }
        guard let s = v.stringValue, let d = Base64.decode(s) else { throw EtcdError("not base64: \(v.serialized())") }
        return d
    }

    static func keyValue(_ v: JSONValue) throws -> EtcdKeyValue {
        guard case .object(let o) = v else { throw EtcdError("not a key-value: \(v.serialized())") }
        return EtcdKeyValue(
            key: try bytes(o["key"]), value: try bytes(o["value"]),
            createRevision: o["create_revision"].flatMap(int64) ?? 0, modRevision: o["mod_revision"].flatMap(int64) ?? 0,
            lease: o["lease"].flatMap(int64) ?? 0)
    }

    /// One `{"result": WatchResponse}` (or `{"error": ...}`) of the watch stream.
    public static func watchResponse(_ message: JSONValue) throws -> EtcdWatchResponse {
        guard case .object(let outer) = message else { throw EtcdError("watch: not an object") }
        guard case .object(let r)? = outer["result"] else {
            throw EtcdError("watch: \(outer["error"].map { $0.serialized() } ?? message.serialized())")
        }
        var w = EtcdWatchResponse(revision: revision(r))
        w.created = r["created"] == .bool(true)
        w.canceled = r["canceled"] == .bool(true)
        w.compactRevision = r["compact_revision"].flatMap(int64) ?? 0
        w.cancelReason = r["cancel_reason"]?.stringValue ?? ""
        for e in r["events"]?.arrayValue ?? [] {
            guard case .object(let eo) = e, let kvv = eo["kv"] else { continue }
            let kv = try keyValue(kvv)
            if eo["type"]?.stringValue == "DELETE" {
                w.events.append(.delete(key: kv.key, modRevision: kv.modRevision))
            } else {
                w.events.append(.put(kv))
            }
        }
        return w
    }
}

/// Splits a byte stream into top-level JSON values (the gateway writes one per message, with
/// or without a newline between them, split anywhere across chunks).
public struct JSONStreamSplitter: Sendable {
    var pending: [UInt8] = []
    var depth = 0
    var inString = false
    var escaped = false
    var scanned = 0
    /// A splitter with nothing read yet.
    public init() {}

    /// The complete JSON objects `bytes` finish, in order; the rest waits for more.
    public mutating func feed(_ bytes: [UInt8]) throws -> [JSONValue] {
        pending += bytes
        var out: [JSONValue] = []
        var start = 0
        var i = scanned
        while i < pending.count {
            let c = pending[i]
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                depth += 1
            } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                depth -= 1
                if depth < 0 { throw EtcdError("stream: unbalanced JSON") }
                if depth == 0 {
                    out.append(try JSONValue.parse(Array(pending[start...i])))
                    start = i + 1
                }
            } else if depth == 0, c != 0x20, c != 0x0A, c != 0x0D, c != 0x09 {
                throw EtcdError("stream: a byte outside any JSON value")
            } else if depth == 0 {
                start = i + 1
            }
            i += 1
        }
        pending.removeFirst(start)
        scanned = pending.count
        return out
    }
}
