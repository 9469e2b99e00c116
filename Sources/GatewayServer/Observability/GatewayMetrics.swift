import GatewayCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The gateway's metric families (all named `smg_…`, as the reference gateway's).
///
/// Request-path recording is one atomic operation on a series held by the caller,
/// or a short table lookup for the request counter (its status and model labels
/// are known only at the end). Per-worker state (health, load, breaker) is read
/// from the worker registry at scrape time, so a removed worker's series disappear
/// with it; the per-worker upstream histograms are pruned at the same moment.
final class GatewayMetrics: Sendable {
    /// Seconds; the reference gateway's default buckets (1 ms to 240 s).
    static let durationBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 240]
    /// The route label of a request whose path matches no route.
    static let unmatchedRoute = "unmatched"
    /// The model label of a request naming a model no registered worker serves (or none).
    static let otherModel = "other"

    let registry = MetricsRegistry()
    let requests: CounterFamily
    let requestDuration: HistogramFamily
    let timeToFirstByte: HistogramFamily
    let requestsActive: Gauge
    let upstreamDuration: HistogramFamily
    let retries: CounterFamily
    let binaryConnections: Gauge
    let binaryStreamsActive: Gauge
    let binaryStreams: Counter

    private let workers: WorkerRegistry
    private let admission = Mutex<AdmissionController?>(nil)

    init(workers: WorkerRegistry) {
        self.workers = workers
        requests = registry.counter(
            "smg_http_requests_total", help: "Requests answered, by route pattern, status code and model (binary calls as route binary:<call>).",
            labels: ["route", "status_code", "model"]
        )
        requestDuration = registry.histogram(
            "smg_http_request_duration_seconds", help: "Time from a request's arrival to its answer's last byte.", labels: ["route"],
            buckets: Self.durationBuckets
        )
        timeToFirstByte = registry.histogram(
            "smg_http_time_to_first_byte_seconds", help: "Time from a request's arrival to the first byte of its answer's body.",
            labels: ["route"], buckets: Self.durationBuckets
        )
        requestsActive = registry.gauge("smg_http_requests_active", help: "Requests (REST and binary calls) being answered now.").labels()
        upstreamDuration = registry.histogram(
            "smg_worker_request_duration_seconds", help: "Time a worker took for one attempt, from sending the request to its last byte or failure.",
            labels: ["worker_id"], buckets: Self.durationBuckets
        )
        retries = registry.counter(
            "smg_router_retries_total", help: "Attempts made on another worker after a failed attempt, by inference route.", labels: ["route"]
        )
        binaryConnections = registry.gauge("smg_binary_connections_active", help: "Open binary-protocol connections.").labels()
        binaryStreamsActive = registry.gauge("smg_binary_streams_active", help: "Binary-protocol calls running now.").labels()
        binaryStreams = registry.counter("smg_binary_streams_total", help: "Binary-protocol calls started.").labels()

        registry.addCollector { [weak self] in
            guard let self else { return [] }
            return Self.collectWorkers(self.workers, upstreamDuration: self.upstreamDuration)
                + Self.collectAdmission(self.admission.withLock { $0 })
        }
    }

    /// The admission controller of the running gateway (its queue is shown at scrape time).
    func setAdmission(_ controller: AdmissionController?) {
        admission.withLock { $0 = controller }
    }

    /// The Prometheus text of every family.
    func render() -> String { registry.render() }

    /// The answer of `GET /metrics`.
    func response() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = MetricsRegistry.contentType
        return Response.inMemory(status: .ok, headers: headers, body: ByteBuffer(string: render()))
    }

    /// The model label for `model`: itself when a registered worker serves it, else "other".
    func modelLabel(_ model: String?) -> String {
        guard let model, workers.routingSnapshot.knownModels.contains(model) else { return Self.otherModel }
        return model
    }

    /// Per-route series, looked up once and held by the responder.
    func route(_ name: String) -> RouteMetrics {
        RouteMetrics(name: name, duration: requestDuration.labels(name), timeToFirstByte: timeToFirstByte.labels(name))
    }

    // MARK: Scrape-time families

    private static func collectWorkers(_ registry: WorkerRegistry, upstreamDuration: HistogramFamily) -> [CollectedFamily] {
        let all = registry.workers()
        let ids = Set(all.map(\.id.description))
        // Series of workers that are gone go with them.
        upstreamDuration.table.removeAll { !ids.contains($0[0]) }

        var pool = CollectedFamily(name: "smg_worker_pool_size", help: "Workers registered (any state).", kind: .gauge)
        pool.add(Double(all.count))
        var health = CollectedFamily(name: "smg_worker_health", help: "1 when a worker is healthy, else 0.", kind: .gauge, labelNames: ["worker_id"])
        var load = CollectedFamily(
            name: "smg_worker_requests_active", help: "Requests in flight on a worker (its load).", kind: .gauge, labelNames: ["worker_id"]
        )
        var breaker = CollectedFamily(
            name: "smg_worker_cb_state", help: "A worker's circuit breaker: 0 closed, 1 open, 2 half-open.", kind: .gauge, labelNames: ["worker_id"]
        )
        var transitions = CollectedFamily(
            name: "smg_worker_cb_transitions_total", help: "Circuit breaker transitions, by the state entered.", kind: .counter,
            labelNames: ["worker_id", "to"]
        )
        let now = ContinuousClock.now
        for worker in all {
            let id = worker.id.description
            health.add([id], worker.isHealthy ? 1 : 0)
            load.add([id], Double(worker.load))
            let state: Double =
                switch worker.handle.breakerState(at: now) {
                case .closed: 0
                case .open: 1
                case .halfOpen: 2
                }
            breaker.add([id], state)
            let counts = worker.handle.breakerTransitions
            transitions.add([id, "open"], Double(counts.opened))
            transitions.add([id, "half_open"], Double(counts.halfOpened))
            transitions.add([id, "closed"], Double(counts.closed))
        }
        return [pool, health, load, breaker, transitions]
    }

    private static func collectAdmission(_ admission: AdmissionController?) -> [CollectedFamily] {
        guard let admission else { return [] }
        var running = CollectedFamily(
            name: "smg_admission_requests_running", help: "Inference requests holding an admission slot (--max-concurrent-requests).", kind: .gauge
        )
        running.add(Double(admission.running))
        var queued = CollectedFamily(name: "smg_admission_queue_depth", help: "Inference requests waiting for an admission slot.", kind: .gauge)
        queued.add(Double(admission.queued))
        var limit = CollectedFamily(name: "smg_admission_max_concurrent", help: "The --max-concurrent-requests limit.", kind: .gauge)
        limit.add(Double(admission.configuration.maxConcurrent))
        return [running, queued, limit]
    }
}

/// The series of one route, held for the life of the gateway.
struct RouteMetrics: Sendable {
    let name: String
    let duration: Histogram
    let timeToFirstByte: Histogram
}

/// What handling one request learnt that its metrics and log line need, filled in
/// by the inference proxy through a task local.
final class RequestObservation: Sendable {
    @TaskLocal static var current: RequestObservation?

    struct Fields: Sendable {
        var requestID: String?
        /// Already bounded (a served model, or "other").
        var model: String?
        var workerID: String?
        var retries = 0
        /// Inference requests log at info, everything else at debug.
        var isInference = false
        /// The body length of an answer built whole in memory (``Response/inMemory(status:headers:body:)``).
        var inMemoryBodyLength: Int?
    }

    private let fields = Mutex(Fields())

    init() {}

    func update(_ change: (inout Fields) -> Void) {
        fields.withLock { change(&$0) }
    }

    var snapshot: Fields { fields.withLock { $0 } }

    /// ``Fields/inMemoryBodyLength`` alone (no copy of the rest).
    var inMemoryBodyLength: Int? { fields.withLock { $0.inMemoryBodyLength } }
}

/// Records one request once: the counter, both histograms and the log line.
final class RequestRecorder: Sendable {
    private let metrics: GatewayMetrics
    private let route: RouteMetrics
    let observation: RequestObservation
    private let logger: Logger
    private let started: ContinuousClock.Instant
    private let firstByteSeen = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    init(metrics: GatewayMetrics, route: RouteMetrics, observation: RequestObservation, logger: Logger, started: ContinuousClock.Instant = .now) {
        self.metrics = metrics
        self.route = route
        self.observation = observation
        self.logger = logger
        self.started = started
        metrics.requestsActive.add()
    }

    /// The first byte of the answer is leaving (only the first call counts).
    func firstByte() {
        guard !firstByteSeen.exchange(true, ordering: .relaxed) else { return }
        route.timeToFirstByte.observe(ContinuousClock.now - started)
    }

    /// The answer is complete (or was cut off: `aborted`); only the first call counts.
    func finish(status: Int, aborted: Bool = false) {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let elapsed = ContinuousClock.now - started
        metrics.requestsActive.sub()
        route.duration.observe(elapsed)
        let fields = observation.snapshot
        metrics.requests.labels(route.name, Self.statusLabel(status), fields.isInference ? (fields.model ?? GatewayMetrics.otherModel) : "").increment()

        let level: Logger.Level = fields.isInference ? .info : .debug
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "route": .string(route.name),
            "status": .stringConvertible(status),
            "latency_ms": .stringConvertible(Self.milliseconds(elapsed)),
        ]
        if let requestID = fields.requestID { metadata["request_id"] = .string(requestID) }
        if fields.isInference {
            metadata["model"] = .string(fields.model ?? GatewayMetrics.otherModel)
            metadata["worker_id"] = .string(fields.workerID ?? "")
            metadata["retries"] = .stringConvertible(fields.retries)
        }
        if aborted { metadata["aborted"] = .stringConvertible(true) }
        logger.log(level: level, "request", metadata: metadata)
    }

    /// A status code as a label: the code itself, bounded to what HTTP defines.
    static func statusLabel(_ status: Int) -> String {
        (100...599).contains(status) ? String(status) : "other"
    }

    /// Milliseconds with one decimal, e.g. 12.3.
    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) * 1e-15
        return (ms * 10).rounded() / 10
    }

    deinit {
        // A response dropped before it was written still leaves the in-flight gauge.
        if !finished.load(ordering: .relaxed) { metrics.requestsActive.sub() }
    }

    /// `response` with its body observed: time to first byte, and the record at its end.
    ///
    /// An answer built whole in memory is recorded now, as it is handed to the server:
    /// wrapping its body would make the server write head, body and end one by one
    /// (three hand-offs to the event loop) where it otherwise writes them at once.
    static func observing(_ response: Response, with recorder: RequestRecorder) -> Response {
        if let length = recorder.observation.inMemoryBodyLength, response.body.contentLength == length {
            recorder.firstByte()
            recorder.finish(status: response.status.code)
            return response
        }
        var response = response
        let body = response.body
        let status = response.status.code
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(ObservingBodyWriter(inner: writer, recorder: recorder))
            } catch {
                recorder.finish(status: status, aborted: true)
                throw error
            }
            recorder.finish(status: status)
        }
        return response
    }
}

extension Response {
    /// A response whose body is all in memory, marked as such on the current request's
    /// observation (see ``RequestRecorder/observing(_:with:)``).
    static func inMemory(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer) -> Response {
        RequestObservation.current?.update { $0.inMemoryBodyLength = body.readableBytes }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
    }
}

/// Passes writes through, telling the recorder when the first byte leaves.
struct ObservingBodyWriter: ResponseBodyWriter {
    var inner: any ResponseBodyWriter
    let recorder: RequestRecorder

    mutating func write(_ buffer: ByteBuffer) async throws {
        recorder.firstByte()
        try await inner.write(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        recorder.firstByte()
        try await inner.finish(trailingHeaders)
    }
}

/// The responder of the `--prometheus-port` listener: `GET /metrics`, nothing else.
struct MetricsResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let metrics: GatewayMetrics

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.uri.path == "/metrics" else {
            return GatewayError.routeNotFound(method: request.method.rawValue, path: request.uri.path, style: .control).makeResponse()
        }
        switch request.method {
        case .get:
            return metrics.response()
        case .head:
            let response = metrics.response()
            return Response(status: response.status, headers: response.headers)
        default:
            return GatewayError.methodNotAllowed(method: request.method.rawValue, path: "/metrics", allowed: ["GET", "HEAD"], style: .control)
                .makeResponse()
        }
    }
}
