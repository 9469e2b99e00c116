import GatewayCore
import GatewayOpenAI
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A call to a worker.
public struct WorkerRequest: Sendable {
    public var method: HTTPMethod
    /// The worker's base URL; `path` is appended to its path.
    public var url: WorkerURL
    public var path: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer?
    /// Sent as `Authorization: Bearer …` (the one place a worker's key is added).
    public var apiKey: String?
    /// An answer of known length up to this many bytes that is not an event stream is
    /// handed over whole, with its head (0: always in parts).
    public var wholeAnswerLimit: Int
    /// An event-stream answer is handed over as decoded events (else as bytes).
    public var decodesEventStream: Bool

    public init(
        method: HTTPMethod, url: WorkerURL, path: String, headers: HTTPHeaders = [:], body: ByteBuffer? = nil, apiKey: String? = nil,
        wholeAnswerLimit: Int = 0, decodesEventStream: Bool = true
    ) {
        self.method = method
        self.url = url
        self.path = path
        self.headers = headers
        self.body = body
        self.apiKey = apiKey
        self.wholeAnswerLimit = wholeAnswerLimit
        self.decodesEventStream = decodesEventStream
    }
}

/// An answer's status and headers, and what they say about its body.
public struct WorkerAnswerHead: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    /// The announced `Content-Length` (nil: none, or not a number).
    public let contentLength: Int?
    /// Whether the answer is a server-sent event stream.
    public let isEventStream: Bool

    public init(status: Int, headers: HTTPHeaders) {
        self.status = status
        self.headers = headers
        self.contentLength = headers.first(name: "content-length").flatMap(Int.init)
        self.isEventStream = headers.first(name: "content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
    }
}

/// A piece of an answer's body: bytes, or one event of an event stream.
public enum WorkerAnswerPart: Sendable {
    case bytes(ByteBuffer)
    case event(ServerSentEvent)
}

/// Receives one exchange's answer, on the exchange's event loop, in this order: one
/// `workerAnswered` (with the whole body when it was gathered), then parts, then
/// `workerFinished`; or `workerFailed` at any point. Nothing arrives after the exchange
/// was cancelled.
public protocol WorkerAnswerReceiver: AnyObject {
    func workerAnswered(_ head: WorkerAnswerHead, whole: ByteBuffer?)
    func workerSent(_ part: WorkerAnswerPart)
    func workerFinished()
    /// `afterHead`: the head (and possibly parts) had been handed over.
    func workerFailed(_ failure: WorkerFailure, afterHead: Bool)
}

/// A whole answer, for callers that read it at once (probes, info routes, the CLI).
public struct WorkerAnswer: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    public let body: ByteBuffer
}

/// The one transport for every call the gateway makes to a worker: inference, registration
/// probes, health checks, info and cache flush.
///
/// HTTP/1.1 over keep-alive connections, plain or TLS (swift-nio-ssl), pooled per event
/// loop and worker. An exchange runs on the event loop of its caller (a client's
/// connection), where its worker connection lives too, so a proxied request never changes
/// threads. One pool policy for all calls:
/// - an idle connection is reused only within `idleTimeout` (workers such as uvicorn and
///   llama.cpp close theirs after 5 s) and closed once it is past it;
/// - at most `maxConnectionsPerWorker` connections per worker (split evenly among the
///   event loops); an exchange beyond that waits, in order, for one to free up;
/// - a connection whose answer was abandoned (client gone, deadline, cancel) is closed,
///   never reused; one reused from the pool that fails before any byte of the answer is
///   retried once on a new connection.
/// Failures are classified once (`WorkerFailure`), and the worker's API key is added here.
public final class WorkerTransport: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: Duration
        /// Idle connections older than this are closed instead of reused.
        public var idleTimeout: Duration
        /// Connections open per worker, over all event loops (more exchanges wait).
        public var maxConnectionsPerWorker: Int
        /// Idle connections kept per worker and event loop.
        public var maxIdlePerWorker: Int
        /// How HTTPS workers are called (nil: system trust roots, no client certificate).
        public var tls: TLSConfiguration?

        public init(
            connectTimeout: Duration = .seconds(5), idleTimeout: Duration = .seconds(4), maxConnectionsPerWorker: Int = 1024,
            maxIdlePerWorker: Int = 256, tls: TLSConfiguration? = nil
        ) {
            self.connectTimeout = connectTimeout
            self.idleTimeout = idleTimeout
            self.maxConnectionsPerWorker = max(maxConnectionsPerWorker, 1)
            self.maxIdlePerWorker = max(maxIdlePerWorker, 0)
            self.tls = tls
        }
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let pools: [ObjectIdentifier: NIOLoopBoundBox<ConnectionPool>]
    let statistics = PoolStatistics()

    /// - Throws: when the TLS configuration cannot be loaded (a certificate file, say).
    public init(group: MultiThreadedEventLoopGroup = .singleton, configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        self.group = group
        let tls = try NIOSSLContext(configuration: configuration.tls ?? TLSConfiguration.makeClientConfiguration())
        let loops = Array(group.makeIterator())
        let perLoop = max(1, (configuration.maxConnectionsPerWorker + loops.count - 1) / loops.count)
        var pools: [ObjectIdentifier: NIOLoopBoundBox<ConnectionPool>] = [:]
        let statistics = self.statistics
        for loop in loops {
            let settings = ConnectionPool.Settings(
                connectTimeout: TimeAmount(configuration.connectTimeout), idleTimeout: TimeAmount(configuration.idleTimeout),
                maxConnectionsPerKey: perLoop, maxIdlePerKey: configuration.maxIdlePerWorker, tls: tls
            )
            pools[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(
                ConnectionPool(loop: loop, settings: settings, statistics: statistics), as: ConnectionPool.self, eventLoop: loop
            )
        }
        self.pools = pools
    }

    /// An event loop of the transport's group (the caller's own when it runs on one).
    public func eventLoop() -> any EventLoop {
        if let current = MultiThreadedEventLoopGroup.currentEventLoop, pools[ObjectIdentifier(current)] != nil { return current }
        return group.any()
    }

    /// Starts an exchange on `loop`, which must be the current event loop and one of the
    /// transport's group; the answer goes to `receiver`. The returned exchange can be
    /// cancelled and paused (backpressure).
    public func start(_ request: WorkerRequest, on loop: any EventLoop, deadline: NIODeadline, receiver: any WorkerAnswerReceiver) -> Exchange {
        loop.preconditionInEventLoop()
        guard let pool = pools[ObjectIdentifier(loop)]?.value else {
            preconditionFailure("an event loop outside the transport's group")
        }
        let exchange = Exchange(request: request, pool: pool, receiver: receiver)
        exchange.start(deadline: deadline)
        return exchange
    }

    /// Sends `request` and reads the whole answer (at most `bodyLimit` bytes) within `timeout`.
    /// Cancelling the task abandons the exchange.
    public func send(_ request: WorkerRequest, timeout: Duration, bodyLimit: Int = 1 << 20) async throws(WorkerFailure) -> WorkerAnswer {
        let loop = eventLoop()
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: AnswerCollector.self, eventLoop: loop)
        let result: Result<WorkerAnswer, WorkerFailure> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<WorkerAnswer, WorkerFailure>, Never>) in
                loop.execute { [self] in
                    let collector = box.value ?? AnswerCollector(limit: bodyLimit)
                    box.value = collector
                    collector.continuation = continuation
                    if collector.cancelled {
                        collector.complete(.failure(.broken("cancelled")))
                        return
                    }
                    var request = request
                    request.wholeAnswerLimit = bodyLimit
                    request.decodesEventStream = false
                    collector.exchange = start(request, on: loop, deadline: .now() + TimeAmount(timeout), receiver: collector)
                }
            }
        } onCancel: {
            loop.execute {
                let collector = box.value ?? AnswerCollector(limit: bodyLimit)
                box.value = collector
                collector.cancelled = true
                collector.exchange?.cancel()
                collector.complete(.failure(.broken("cancelled")))
            }
        }
        return try result.get()
    }

    /// Connections open now and exchanges waiting for one, for the worker at `url`.
    public func connections(to url: WorkerURL) -> (open: Int, waiting: Int) {
        statistics.counts(for: ConnectionPool.Key(url))
    }

    /// Exchanges that had to wait for a connection so far (all workers).
    public var waitedTotal: Int { statistics.waitedTotal }

    /// Closes every idle connection; exchanges under way run to their end.
    public func shutdown() {
        for pool in pools.values {
            pool.eventLoop.execute { pool.value.closeAll() }
        }
    }
}

/// Gathers one answer for ``WorkerTransport/send(_:timeout:bodyLimit:)``. Loop-confined.
final class AnswerCollector: WorkerAnswerReceiver {
    let limit: Int
    var continuation: CheckedContinuation<Result<WorkerAnswer, WorkerFailure>, Never>?
    var exchange: Exchange?
    var cancelled = false
    private var head: WorkerAnswerHead?
    private var body = ByteBuffer()

    init(limit: Int) {
        self.limit = limit
    }

    func complete(_ result: Result<WorkerAnswer, WorkerFailure>) {
        exchange = nil
        continuation?.resume(returning: result)
        continuation = nil
    }

    func workerAnswered(_ head: WorkerAnswerHead, whole: ByteBuffer?) {
        if let whole {
            complete(.success(WorkerAnswer(status: head.status, headers: head.headers, body: whole)))
            return
        }
        if let length = head.contentLength, length > limit {
            exchange?.cancel()
            complete(.failure(WorkerFailure(TransportError.bodyTooLarge(limit: limit))))
            return
        }
        self.head = head
    }

    func workerSent(_ part: WorkerAnswerPart) {
        guard case .bytes(let bytes) = part else { return }
        guard body.readableBytes + bytes.readableBytes <= limit else {
            exchange?.cancel()
            complete(.failure(WorkerFailure(TransportError.bodyTooLarge(limit: limit))))
            return
        }
        body.writeImmutableBuffer(bytes)
    }

    func workerFinished() {
        guard let head else { return }
        complete(.success(WorkerAnswer(status: head.status, headers: head.headers, body: body)))
    }

    func workerFailed(_ failure: WorkerFailure, afterHead: Bool) {
        complete(.failure(failure))
    }
}

/// Connections and waiting exchanges per worker, over all event loops (for metrics).
final class PoolStatistics: Sendable {
    private struct Counts {
        var open = 0
        var waiting = 0
    }

    private let table = Mutex<[ConnectionPool.Key: Counts]>([:])
    private let waited = Atomic<Int>(0)

    func opened(_ key: ConnectionPool.Key) { change(key) { $0.open += 1 } }
    func closed(_ key: ConnectionPool.Key) { change(key) { $0.open -= 1 } }

    func startedWaiting(_ key: ConnectionPool.Key) {
        waited.add(1, ordering: .relaxed)
        change(key) { $0.waiting += 1 }
    }

    func stoppedWaiting(_ key: ConnectionPool.Key) { change(key) { $0.waiting -= 1 } }

    var waitedTotal: Int { waited.load(ordering: .relaxed) }

    func counts(for key: ConnectionPool.Key) -> (open: Int, waiting: Int) {
        table.withLock { table in
            let counts = table[key] ?? Counts()
            return (counts.open, counts.waiting)
        }
    }

    private func change(_ key: ConnectionPool.Key, _ body: (inout Counts) -> Void) {
        table.withLock { table in
            var counts = table[key] ?? Counts()
            body(&counts)
            if counts.open == 0 && counts.waiting == 0 {
                table.removeValue(forKey: key)
            } else {
                table[key] = counts
            }
        }
    }
}

extension WorkerTransport {
    /// The parts of a streamed answer, with backpressure: reading from the worker pauses
    /// while the consumer is behind.
    public typealias AnswerParts = NIOThrowingAsyncSequenceProducer<
        WorkerAnswerPart, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, StreamForwarder.Demand
    >

    /// Sends `request` and returns the answer's head once it arrives, with its body as
    /// parts (events, for an event stream) as they come. For clients that read a stream
    /// with `for try await` (the CLI, tests); the gateway's own request path uses `start`.
    /// Dropping the sequence before its end abandons the exchange.
    public func stream(_ request: WorkerRequest, timeout: Duration) async throws(WorkerFailure) -> (WorkerAnswerHead, AnswerParts) {
        let loop = eventLoop()
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: StreamForwarder.self, eventLoop: loop)
        let producer = AnswerParts.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 16), finishOnDeinit: true,
            delegate: StreamForwarder.Demand(box: box)
        )
        let head: Result<WorkerAnswerHead, WorkerFailure> = await withCheckedContinuation { (continuation: CheckedContinuation<Result<WorkerAnswerHead, WorkerFailure>, Never>) in
            loop.execute { [self] in
                let forwarder = StreamForwarder(head: continuation, source: producer.source)
                box.value = forwarder
                var request = request
                request.wholeAnswerLimit = 0
                forwarder.exchange = start(request, on: loop, deadline: .now() + TimeAmount(timeout), receiver: forwarder)
            }
        }
        return (try head.get(), producer.sequence)
    }
}

/// Hands an exchange's answer to an async sequence, pausing the exchange while the
/// consumer is behind. Loop-confined.
public final class StreamForwarder: WorkerAnswerReceiver {
    /// The consumer's demand, carried to the exchange on its loop.
    public struct Demand: NIOAsyncSequenceProducerDelegate {
        let box: NIOLoopBoundBox<StreamForwarder?>

        public func produceMore() {
            box.eventLoop.execute { box.value?.exchange?.resume() }
        }

        public func didTerminate() {
            box.eventLoop.execute {
                box.value?.exchange?.cancel()
                box.value?.exchange = nil
            }
        }
    }

    private var head: CheckedContinuation<Result<WorkerAnswerHead, WorkerFailure>, Never>?
    private let source: WorkerTransport.AnswerParts.Source
    var exchange: Exchange?

    init(head: CheckedContinuation<Result<WorkerAnswerHead, WorkerFailure>, Never>, source: WorkerTransport.AnswerParts.Source) {
        self.head = head
        self.source = source
    }

    public func workerAnswered(_ head: WorkerAnswerHead, whole: ByteBuffer?) {
        self.head?.resume(returning: .success(head))
        self.head = nil
    }

    public func workerSent(_ part: WorkerAnswerPart) {
        switch source.yield(part) {
        case .produceMore: break
        case .stopProducing: exchange?.pause()
        case .dropped: exchange?.cancel()
        }
    }

    public func workerFinished() {
        exchange = nil
        source.finish()
    }

    public func workerFailed(_ failure: WorkerFailure, afterHead: Bool) {
        exchange = nil
        if let head {
            head.resume(returning: .failure(failure))
            self.head = nil
        }
        source.finish(failure)
    }
}
