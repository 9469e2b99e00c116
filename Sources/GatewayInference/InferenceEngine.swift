import GatewayCore
import GatewayObservability
import GatewayOpenAI
import GatewayUpstream
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The one inference core both doors use: an ``InferenceCall`` goes in, an
/// ``InferenceAnswer`` (whole, or a stream of events) comes out to its receiver.
///
/// Per call: the rate limit and an admission slot, the routing fields (scanned from a
/// body, or read from a typed request), then attempts on workers as the
/// ``AttemptStateMachine`` decides, each through the ``WorkerTransport`` on the
/// caller's event loop. A call runs entirely on that loop, with no task and no thread
/// hand-off. Its record (request counter, durations, log line), its admission permit
/// and its worker's load are released from the answer itself, when its last part is
/// handed to the door (or the door cancels).
public final class InferenceEngine: Sendable {
    public struct Configuration: Sendable {
        public var attempts: AttemptStateMachine.Configuration
        /// First attempt to last byte.
        public var requestTimeout: Duration
        /// The largest answer translated for `/generate` on an OpenAI-only worker.
        public var maxTranslatedAnswerBytes: Int
        /// Whether routing looks at the prompt (cache-aware), and how much of it.
        public var wantsRoutingText: Bool
        public var maxRoutingTextBytes: Int
        /// The gateway checks keys of its own: the client's `Authorization` carries that key
        /// and is never forwarded.
        public var gatewayChecksKeys: Bool
        /// A failing answer kept for the client (a retryable status) is read up to this size.
        public var maxKeptAnswerBytes: Int
        /// Add `X-Gateway-Route` (why the worker was chosen, when the policy explains its
        /// picks) to inference answers.
        public var explainRouting: Bool

        public init(
            attempts: AttemptStateMachine.Configuration = .init(), requestTimeout: Duration = .seconds(1800),
            maxTranslatedAnswerBytes: Int = 512 * 1024 * 1024, wantsRoutingText: Bool = true, maxRoutingTextBytes: Int = 16 * 1024,
            gatewayChecksKeys: Bool = false, maxKeptAnswerBytes: Int = 1 << 20, explainRouting: Bool = false
        ) {
            self.explainRouting = explainRouting
            self.attempts = attempts
            self.requestTimeout = requestTimeout
            self.maxTranslatedAnswerBytes = maxTranslatedAnswerBytes
            self.wantsRoutingText = wantsRoutingText
            self.maxRoutingTextBytes = maxRoutingTextBytes
            self.gatewayChecksKeys = gatewayChecksKeys
            self.maxKeptAnswerBytes = maxKeptAnswerBytes
        }
    }

    let configuration: Configuration
    let registry: WorkerRegistry
    let selector: WorkerSelector
    let transport: WorkerTransport
    let metrics: GatewayMetrics
    let logger: Logger
    public let admission: AdmissionController?
    let rateLimiter: RateLimiter?

    public init(
        configuration: Configuration, registry: WorkerRegistry, selector: WorkerSelector, transport: WorkerTransport,
        metrics: GatewayMetrics, logger: Logger, admission: AdmissionController? = nil, rateLimiter: RateLimiter? = nil
    ) {
        self.configuration = configuration
        self.registry = registry
        self.selector = selector
        self.transport = transport
        self.metrics = metrics
        self.logger = logger
        self.admission = admission
        self.rateLimiter = rateLimiter
    }

    /// Starts `call` on `loop` (the current event loop, one of the transport's group);
    /// its answer goes to `receiver`, its record to the metrics of `route`.
    ///
    /// - Parameter arrived: when the request arrived (its durations count from then).
    public func start(
        _ call: InferenceCall, on loop: any EventLoop, route: RouteMetrics, arrived: ContinuousClock.Instant = .now,
        receiver: any InferenceReceiver
    ) -> InferenceTask {
        let driver = CallDriver(engine: self, call: call, loop: loop, route: route, arrived: arrived, receiver: receiver)
        driver.start()
        return InferenceTask(driver: driver)
    }

    /// The error a call that cannot be admitted gets.
    func refusal(_ error: AdmissionController.Refusal) -> GatewayError {
        switch error {
        case .queueFull:
            GatewayError.openAI(429, "queue_full", "the gateway is at capacity and its queue is full; retry later").retrying(after: 1)
        case .timedOut:
            GatewayError.openAI(408, "queue_timeout", "no capacity became free within \(admission?.configuration.queueTimeout ?? .zero)").retrying(after: 1)
        }
    }
}

/// A running call, for its door: cancel it (the client went away), pause and resume
/// it (the client is not keeping up). Confined to the call's event loop.
public struct InferenceTask {
    let driver: CallDriver

    public func cancel() { driver.cancel() }
    public func pause() { driver.pause() }
    public func resume() { driver.resume() }
}

/// The headers of the gateway's calls to workers.
public enum ForwardedHeaders {
    /// Client headers worth passing to a worker (the door copies them into the call).
    public static let passed = ["traceparent", "tracestate", "accept", "content-type"]

    /// The request's headers for the worker: the client's passed-on headers, the request
    /// id and routing key, `Content-Type` when the client gave none, and the client's
    /// `Authorization` unless the gateway checks its own key or the worker has a key (the
    /// transport sends that one).
    static func make(for call: InferenceCall, workerHasKey: Bool, gatewayChecksKeys: Bool) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(call.forwardedHeaders.count + 3)
        var hasContentType = false
        for (name, value) in call.forwardedHeaders {
            if name.lowercased() == "authorization" {
                if gatewayChecksKeys || workerHasKey { continue }
            } else if name.lowercased() == "content-type" {
                hasContentType = true
            }
            headers.add(name: name, value: value)
        }
        if !hasContentType { headers.add(name: "Content-Type", value: "application/json") }
        headers.add(name: "X-Request-Id", value: call.requestID)
        if let key = call.routingKey { headers.add(name: "X-SMG-Routing-Key", value: key) }
        return headers
    }

    /// Headers of a worker's answer that never reach the client (hop-by-hop, and those
    /// the gateway sets itself).
    public static let notRelayed: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length", "host", "date", "server",
    ]
}

/// New request ids: `gw-` and 24 hex digits, a random prefix drawn once per process
/// followed by a counter. Unique within a process and across restarts (the prefix),
/// without a system call per request (ids need to be unique, not unpredictable).
public enum RequestIDs {
    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return "gw-" + hex(generator.next() as UInt64 >> 16)
    }()
    private static let counter = Atomic<UInt64>(0)

    public static func next() -> String {
        prefix + hex(counter.wrappingAdd(1, ordering: .relaxed).newValue & 0xFFFF_FFFF_FFFF)
    }

    /// The client's id when it is usable (non-empty, at most 256 bytes), else a new one.
    public static func accept(_ clientID: String?) -> String {
        if let clientID, !clientID.isEmpty, clientID.utf8.count <= 256 { return clientID }
        return next()
    }

    /// 48 bits as 12 hex digits.
    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return digits.count >= 12 ? digits : String(repeating: "0", count: 12 - digits.count) + digits
    }
}
