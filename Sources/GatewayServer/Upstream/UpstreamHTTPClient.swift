import AsyncHTTPClient
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Why an upstream exchange ended without a whole answer.
enum UpstreamClientError: Error, Sendable, Equatable {
    /// The worker closed the connection before its answer ended.
    case remoteClosed
    /// The request's deadline passed.
    case deadlineExceeded
    /// The answer is longer than the reader accepts.
    case bodyTooLarge(limit: Int)
}

/// The gateway's HTTP/1.1 client for inference calls to plain-HTTP workers.
///
/// Each event loop keeps its own pool of keep-alive connections per worker. An exchange
/// runs on the caller's loop when the caller is on one, else on the group's next loop.
///
/// The request goes out in one flush (head and body); the answer streams back with
/// backpressure (reading pauses while the consumer is behind). A connection returns to
/// its pool only after a complete keep-alive answer; an answer abandoned halfway closes it.
final class UpstreamHTTPClient: Sendable {
    struct Request: Sendable {
        /// Host as the socket needs it (IPv6 without brackets).
        var host: String
        var port: Int
        /// The `Host` header's value.
        var authority: String
        var path: String
        var headers: HTTPHeaders
        var body: ByteBuffer
        /// An answer that is not an event stream and announces at most this many bytes is
        /// handed over whole, once its last byte is in (one wake-up of the caller instead
        /// of one for the head and more for the body). 0: always stream.
        var wholeAnswerLimit = 0

        /// The pool key of the worker it goes to.
        var poolKey: UpstreamConnectionPool.Key { .init(host: host, port: port) }
    }

    private let group: any EventLoopGroup
    private let pools: [ObjectIdentifier: UpstreamConnectionPool]

    init(group: MultiThreadedEventLoopGroup = .singleton, connectTimeout: TimeAmount = .seconds(5), idleTimeout: TimeAmount = .seconds(60), maxIdlePerWorker: Int = 512) {
        self.group = group
        var pools: [ObjectIdentifier: UpstreamConnectionPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamConnectionPool(
                loop: loop, connectTimeout: connectTimeout, idleTimeout: idleTimeout, maxIdlePerKey: maxIdlePerWorker
            )
        }
        self.pools = pools
    }

    /// Sends `request` (a POST) and returns once the answer's head arrives; its body
    /// streams from ``UpstreamResponse/body``. Cancelling the task closes the connection.
    func execute(_ request: Request, deadline: NIODeadline) async throws -> UpstreamResponse {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop.flatMap { pools[ObjectIdentifier($0)] != nil ? $0 : nil } ?? group.any()
        guard let pool = pools[ObjectIdentifier(loop)] else { preconditionFailure("an event loop outside the client's group") }
        let exchange = UpstreamExchange(loop: loop, request: request)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UpstreamResponse, any Error>) in
                loop.executeNow {
                    exchange.start(continuation, deadline: deadline, pool: pool)
                }
            }
        } onCancel: {
            loop.executeNow { exchange.cancel() }
        }
    }

    /// POSTs `body` to `path` on a worker: plain HTTP through this client, HTTPS through
    /// `fallback` (AsyncHTTPClient, which brings TLS).
    func post(
        _ url: WorkerURL, path: String, headers: HTTPHeaders, body: ByteBuffer, deadline: NIODeadline, wholeAnswerLimit: Int = 0,
        fallback: HTTPClient
    ) async throws -> UpstreamResponse {
        guard url.scheme == .http else {
            var request = HTTPClientRequest(url: url.appending(path))
            request.method = .POST
            request.headers = headers
            request.body = .bytes(body)
            let response = try await fallback.execute(request, deadline: deadline)
            return UpstreamResponse(status: response.status, headers: response.headers, body: UpstreamBody(backing: .client(response.body)))
        }
        let host = url.host.hasPrefix("[") ? String(url.host.dropFirst().dropLast()) : url.host
        let authority = url.port.map { "\(url.host):\($0)" } ?? url.host
        let request = Request(
            host: host, port: url.effectivePort, authority: authority, path: url.path + (path.hasPrefix("/") ? path : "/" + path),
            headers: headers, body: body, wholeAnswerLimit: wholeAnswerLimit
        )
        return try await execute(request, deadline: deadline)
    }

    /// Closes every idle connection.
    func shutdown() {
        for pool in pools.values {
            pool.loop.executeNow { pool.closeAll() }
        }
    }
}

extension HTTPHeaders {
    /// Whether the answer is a server-sent event stream.
    var isEventStream: Bool {
        first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
    }
}

extension EventLoop {
    /// Runs `body` at once when on this loop, else enqueues it.
    func executeNow(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop { body() } else { execute(body) }
    }
}

/// A worker's answer: status and headers now, the body as it arrives.
struct UpstreamResponse: Sendable {
    let status: HTTPResponseStatus
    let headers: HTTPHeaders
    let body: UpstreamBody
    /// The announced `Content-Length` (nil: none, or not a number).
    let contentLength: Int?
    /// Whether the answer is a server-sent event stream.
    let isEventStream: Bool

    /// `contentLength` and `isEventStream` as `headers` say.
    init(status: HTTPResponseStatus, headers: HTTPHeaders, body: UpstreamBody) {
        self.init(status: status, headers: headers, body: body, contentLength: headers.first(name: "content-length").flatMap(Int.init), isEventStream: headers.isEventStream)
    }

    init(status: HTTPResponseStatus, headers: HTTPHeaders, body: UpstreamBody, contentLength: Int?, isEventStream: Bool) {
        self.status = status
        self.headers = headers
        self.body = body
        self.contentLength = contentLength
        self.isEventStream = isEventStream
    }
}

/// The chunks of an answer's body, with backpressure.
struct UpstreamBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, UpstreamExchange.BodyDelegate
    >

    enum Backing: Sendable {
        /// From ``UpstreamHTTPClient``.
        case producer(Producer)
        /// From AsyncHTTPClient (HTTPS workers).
        case client(HTTPClientResponse.Body)
        /// Already complete (``UpstreamHTTPClient/Request/wholeAnswerLimit``).
        case whole(ByteBuffer)
    }

    let backing: Backing

    struct AsyncIterator: AsyncIteratorProtocol {
        enum Inner {
            case producer(Producer.AsyncIterator)
            case client(HTTPClientResponse.Body.AsyncIterator)
            case whole(ByteBuffer?)
        }

        var inner: Inner

        mutating func next() async throws -> ByteBuffer? {
            switch inner {
            case .producer(let iterator):
                // A reference to the sequence's shared state: nothing to store back.
                return try await iterator.next()
            case .client(var iterator):
                let chunk = try await iterator.next()
                inner = .client(iterator)
                return chunk
            case .whole(let buffer):
                inner = .whole(nil)
                return buffer
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        switch backing {
        case .producer(let producer): AsyncIterator(inner: .producer(producer.makeAsyncIterator()))
        case .client(let body): AsyncIterator(inner: .client(body.makeAsyncIterator()))
        case .whole(let buffer): AsyncIterator(inner: .whole(buffer.readableBytes > 0 ? buffer : nil))
        }
    }

    /// The whole body; throws ``UpstreamClientError/bodyTooLarge(limit:)`` past `limit` bytes.
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        if case .whole(let buffer) = backing {
            guard buffer.readableBytes <= limit else { throw UpstreamClientError.bodyTooLarge(limit: limit) }
            return buffer
        }
        var iterator = makeAsyncIterator()
        guard var whole = try await iterator.next() else { return ByteBuffer() }
        guard whole.readableBytes <= limit else { throw UpstreamClientError.bodyTooLarge(limit: limit) }
        while var chunk = try await iterator.next() {
            guard whole.readableBytes + chunk.readableBytes <= limit else { throw UpstreamClientError.bodyTooLarge(limit: limit) }
            whole.writeBuffer(&chunk)
        }
        return whole
    }
}

/// One request and its answer. Confined to its event loop, except the continuation
/// (resumed once) and the body delegate (which hops to the loop).
final class UpstreamExchange: @unchecked Sendable {
    let loop: any EventLoop
    let request: UpstreamHTTPClient.Request
    private var continuation: CheckedContinuation<UpstreamResponse, any Error>?
    private var source: UpstreamBody.Producer.Source?
    private var deadlineTask: Scheduled<Void>?
    private var connection: UpstreamConnectionHandler?
    private(set) var isDone = false
    /// Whether any byte of the answer arrived (then a failure cannot be retried).
    private(set) var receivedAnswer = false
    /// Whether the consumer wants more of the body (backpressure).
    private(set) var wantsMore = true
    /// A whole answer being gathered: its head and the body so far.
    private var held: (head: HTTPResponseHead, body: ByteBuffer)?

    init(loop: any EventLoop, request: UpstreamHTTPClient.Request) {
        self.loop = loop
        self.request = request
    }

    func start(_ continuation: CheckedContinuation<UpstreamResponse, any Error>, deadline: NIODeadline, pool: UpstreamConnectionPool) {
        guard !isDone else {
            // Cancelled before it started (the cancellation handler ran first).
            continuation.resume(throwing: CancellationError())
            return
        }
        self.continuation = continuation
        deadlineTask = loop.scheduleTask(deadline: deadline) { [self] in
            fail(UpstreamClientError.deadlineExceeded)
        }
        pool.run(self)
    }

    func attach(_ connection: UpstreamConnectionHandler) {
        self.connection = connection
    }

    func receivedHead(_ head: HTTPResponseHead) {
        receivedAnswer = true
        guard !isDone, continuation != nil else { return }
        let length = head.headers.first(name: "content-length").flatMap(Int.init)
        let isEventStream = head.headers.isEventStream
        if request.wholeAnswerLimit > 0, let length, length <= request.wholeAnswerLimit, !isEventStream {
            // Handed over at the end, whole.
            var body = ByteBuffer()
            body.reserveCapacity(length)
            held = (head, body)
            return
        }
        deliver(head, length: length, isEventStream: isEventStream, body: nil)
    }

    /// Resumes the caller with the head, and the body: whole, or as a stream to follow.
    private func deliver(_ head: HTTPResponseHead, length: Int?, isEventStream: Bool, body whole: ByteBuffer?) {
        guard let continuation else { return }
        self.continuation = nil
        let body: UpstreamBody
        if let whole {
            body = UpstreamBody(backing: .whole(whole))
        } else {
            let sequence = UpstreamBody.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 16),
                finishOnDeinit: true,
                delegate: BodyDelegate(exchange: self)
            )
            source = sequence.source
            body = UpstreamBody(backing: .producer(sequence.sequence))
        }
        continuation.resume(
            returning: UpstreamResponse(status: head.status, headers: head.headers, body: body, contentLength: length, isEventStream: isEventStream)
        )
    }

    func receivedBody(_ buffer: ByteBuffer) {
        if held != nil {
            var buffer = buffer
            held?.body.writeBuffer(&buffer)
            return
        }
        guard !isDone, let source else { return }
        switch source.yield(buffer) {
        case .produceMore: wantsMore = true
        case .stopProducing: wantsMore = false
        case .dropped: cancel()
        }
    }

    /// The answer ended well.
    func receivedEnd() {
        guard !isDone else { return }
        if let whole = held {
            held = nil
            // Complete: as long as announced.
            deliver(whole.head, length: whole.body.readableBytes, isEventStream: false, body: whole.body)
        }
        isDone = true
        deadlineTask?.cancel()
        connection = nil
        source?.finish()
        source = nil
    }

    /// Ends the exchange with `error` and closes its connection (unless already done).
    func fail(_ error: any Error) {
        guard !isDone else { return }
        isDone = true
        deadlineTask?.cancel()
        if let continuation {
            self.continuation = nil
            continuation.resume(throwing: error)
        }
        source?.finish(error)
        source = nil
        let connection = self.connection
        self.connection = nil
        connection?.abort(self)
    }

    /// The caller was cancelled, or dropped the body before its end.
    func cancel() {
        fail(CancellationError())
    }

    fileprivate func consumerWantsMore() {
        wantsMore = true
        connection?.resumeReading()
    }

    struct BodyDelegate: NIOAsyncSequenceProducerDelegate {
        let exchange: UpstreamExchange

        func produceMore() {
            exchange.loop.executeNow { exchange.consumerWantsMore() }
        }

        func didTerminate() {
            exchange.loop.executeNow { exchange.cancel() }
        }
    }
}

/// Idle keep-alive connections of one event loop, per worker address. Loop-confined.
final class UpstreamConnectionPool: @unchecked Sendable {
    struct Key: Hashable {
        let host: String
        let port: Int
    }

    struct Idle {
        let handler: UpstreamConnectionHandler
        let since: NIODeadline
    }

    let loop: any EventLoop
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxIdlePerKey: Int
    private var idle: [Key: [Idle]] = [:]

    init(loop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount, maxIdlePerKey: Int) {
        self.loop = loop
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxIdlePerKey = maxIdlePerKey
    }

    /// Sends the exchange's request on an idle connection, or a new one.
    func run(_ exchange: UpstreamExchange) {
        guard !exchange.isDone else { return }
        let key = exchange.request.poolKey
        if let handler = takeIdle(key) {
            handler.send(exchange, reused: true)
        } else {
            connect(exchange, key: key)
        }
    }

    /// A reused connection failed before any answer: the worker had closed it while it
    /// sat idle. The request goes once more, on a new connection.
    func retryOnNewConnection(_ exchange: UpstreamExchange) {
        guard !exchange.isDone else { return }
        connect(exchange, key: exchange.request.poolKey)
    }

    private func connect(_ exchange: UpstreamExchange, key: Key) {
        let handler = UpstreamConnectionHandler(pool: self, key: key)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let connecting: EventLoopFuture<any Channel>
        if let address = try? SocketAddress(ipAddress: key.host, port: key.port) {
            connecting = bootstrap.connect(to: address)
        } else {
            connecting = bootstrap.connect(host: key.host, port: key.port)
        }
        connecting.whenComplete { result in
            switch result {
            case .success:
                handler.send(exchange, reused: false)
            case .failure(let error):
                exchange.fail(error)
            }
        }
    }

    private func takeIdle(_ key: Key) -> UpstreamConnectionHandler? {
        let now = NIODeadline.now()
        // In place: a copy of the list would be copied again on every pop.
        while let last = idle[key]?.popLast() {
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if last.handler.isUsable, now - last.since < idleTimeout { return last.handler }
            last.handler.close()
        }
        return nil
    }

    /// A connection finished a keep-alive exchange.
    func release(_ handler: UpstreamConnectionHandler) {
        let now = NIODeadline.now()
        var expired: [UpstreamConnectionHandler] = []
        idle[handler.key, default: []].dropExpired(now: now, timeout: idleTimeout, limit: maxIdlePerKey) { expired.append($0) }
        idle[handler.key, default: []].append(Idle(handler: handler, since: now))
        for old in expired { old.close() }
    }

    /// An idle connection closed (the worker ended it).
    func remove(_ handler: UpstreamConnectionHandler) {
        guard var list = idle[handler.key], let index = list.firstIndex(where: { $0.handler === handler }) else { return }
        list.remove(at: index)
        idle[handler.key] = list.isEmpty ? nil : list
    }

    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for entry in all { entry.handler.close() }
    }
}

extension Array where Element == UpstreamConnectionPool.Idle {
    /// Drops (oldest first) connections idle past `timeout`, and more while the list is at `limit`.
    fileprivate mutating func dropExpired(
        now: NIODeadline, timeout: TimeAmount, limit: Int, _ dropped: (UpstreamConnectionHandler) -> Void
    ) {
        var drop = 0
        while drop < count, now - self[drop].since >= timeout || count - drop >= limit {
            dropped(self[drop].handler)
            drop += 1
        }
        if drop > 0 { removeFirst(drop) }
    }
}

/// One upstream connection: sends an exchange's request, feeds the answer back.
final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let key: UpstreamConnectionPool.Key
    private let pool: UpstreamConnectionPool
    private var context: ChannelHandlerContext?
    private var exchange: UpstreamExchange?
    private var reused = false
    private var keepAlive = false
    private var pendingRead = false
    private var closed = false

    init(pool: UpstreamConnectionPool, key: UpstreamConnectionPool.Key) {
        self.pool = pool
        self.key = key
    }

    var isUsable: Bool { !closed && (context?.channel.isActive ?? false) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func send(_ exchange: UpstreamExchange, reused: Bool) {
        guard !exchange.isDone else {
            if reused { pool.release(self) } else { close() }
            return
        }
        self.exchange = exchange
        self.reused = reused
        self.keepAlive = false
        exchange.attach(self)
        guard let context, !closed else {
            connectionEnded(error: UpstreamClientError.remoteClosed)
            return
        }
        let request = exchange.request
        var headers = request.headers
        if !headers.contains(name: "host") { headers.add(name: "Host", value: request.authority) }
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: request.path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else {
            // An answer nobody asked for: the connection is out of step.
            close()
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            exchange.receivedHead(head)
        case .body(let buffer):
            exchange.receivedBody(buffer)
        case .end:
            self.exchange = nil
            exchange.receivedEnd()
            if keepAlive && !closed {
                pool.release(self)
            } else {
                close()
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if let exchange, !exchange.wantsMore {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parse = error as? HTTPParserError, parse == .invalidEOFState {
            // The worker closed the connection mid-answer.
            connectionEnded(error: UpstreamClientError.remoteClosed, mayRetry: false)
        } else {
            // A socket error on a reused connection may be a stale keep-alive; a parse error is the worker's answer.
            connectionEnded(error: error, mayRetry: error is IOError)
        }
        close()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        connectionEnded(error: UpstreamClientError.remoteClosed)
        pool.remove(self)
        context.fireChannelInactive()
    }

    /// The connection can carry no more: fail the exchange on it, or send it again on a
    /// new connection when this one was reused and nothing of the answer came.
    private func connectionEnded(error: any Error, mayRetry: Bool = true) {
        guard let exchange else { return }
        self.exchange = nil
        if mayRetry && reused && !exchange.receivedAnswer && !exchange.isDone {
            pool.retryOnNewConnection(exchange)
        } else {
            exchange.fail(error)
        }
    }

    /// The exchange gave up (cancelled, timed out, body dropped): this connection is
    /// mid-answer and cannot be reused.
    func abort(_ exchange: UpstreamExchange) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}
