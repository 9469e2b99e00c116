import GatewayCore
import Logging
import Synchronization

/// The gateway's metric families (all named `smg_…`, as the reference gateway's).
///
/// Request-path recording is one atomic operation on a series held by the caller,
/// or a short table lookup for the request counter (its status and model labels
/// are known only at the end). Per-worker state (health, load, breaker) is read
/// from the worker registry at scrape time, so a removed worker's series disappear
/// with it; the per-worker upstream histograms are pruned at the same moment.
public final class GatewayMetrics: Sendable {
    /// Seconds; the reference gateway's default buckets (1 ms to 240 s).
    public static let durationBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 240]
    /// The route label of a request whose path matches no route.
    public static let unmatchedRoute = "unmatched"
    /// The model label of a request naming a model no registered worker serves (or none).
    public static let otherModel = "other"

    public let registry = MetricsRegistry()
    public let requests: CounterFamily
    public let requestDuration: HistogramFamily
    public let timeToFirstByte: HistogramFamily
    public let requestsActive: Gauge
    public let upstreamDuration: HistogramFamily
    public let retries: CounterFamily
    public let binaryConnections: Gauge
    public let binaryStreamsActive: Gauge
    public let binaryStreams: Counter

    private let workers: WorkerRegistry
    private let admission = Mutex<AdmissionController?>(nil)
    private let routingStatistics = Mutex<(@Sendable () -> BlockCacheAwarePolicy.Stats)?>(nil)

    public init(workers: WorkerRegistry) {
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
                + Self.collectRouting(self.routingStatistics.withLock { $0 }?())
        }
    }

    /// Where the routing decisions' counts come from (`cache_aware_blocks`), read at scrape time.
    public func setRoutingStatistics(_ source: @escaping @Sendable () -> BlockCacheAwarePolicy.Stats) {
        routingStatistics.withLock { $0 = source }
    }

    private static func collectRouting(_ stats: BlockCacheAwarePolicy.Stats?) -> [CollectedFamily] {
        guard let stats else { return [] }
        var decisions = CollectedFamily(
            name: "smg_router_decisions_total", help: "Routing picks by the rule that decided (cache, affinity, warmup, load, no_text, single).",
            kind: .counter, labelNames: ["rule"]
        )
        for rule in BlockCacheAwarePolicy.Rule.allCases { decisions.add([rule.rawValue], Double(stats.decisions[rule] ?? 0)) }
        var blocks = CollectedFamily(
            name: "smg_router_prefix_blocks_total",
            help: "Prompt blocks routed (kind=prompt) and those the chosen worker was believed to hold (kind=matched); their rates' ratio is the match ratio.",
            kind: .counter, labelNames: ["kind"]
        )
        blocks.add(["prompt"], Double(stats.promptBlocks))
        blocks.add(["matched"], Double(stats.matchedBlocks))
        return [decisions, blocks]
    }

    /// The admission controller of the running gateway (its queue is shown at scrape time).
    public func setAdmission(_ controller: AdmissionController?) {
        admission.withLock { $0 = controller }
    }

    /// The Prometheus text of every family.
    public func render() -> String { registry.render() }

    /// The content type of `render()`'s text.
    public static let contentType = MetricsRegistry.contentType

    /// The model label for `model`: itself when a registered worker serves it, else "other".
    public func modelLabel(_ model: String?) -> String {
        guard let model, workers.routingSnapshot.knownModels.contains(model) else { return Self.otherModel }
        return model
    }

    /// Per-route series, looked up once and held by the responder.
    public func route(_ name: String) -> RouteMetrics {
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
        // One series per worker, labelled with its status (a draining worker is listed until removed).
        var status = CollectedFamily(
            name: "smg_worker_status", help: "1 for each worker, labelled with its status (pending, ready, not_ready, failed, draining).",
            kind: .gauge, labelNames: ["worker_id", "status"]
        )
        var byStatus = CollectedFamily(name: "smg_workers", help: "Workers registered, by status.", kind: .gauge, labelNames: ["status"])
        var statusCounts: [WorkerStatus: Int] = [:]
        let now = ContinuousClock.now
        for worker in all {
            let id = worker.id.description
            let current = worker.status
            status.add([id, current.rawValue], 1)
            statusCounts[current, default: 0] += 1
            health.add([id], worker.isHealthy(at: now) ? 1 : 0)
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
        for value in WorkerStatus.allCases { byStatus.add([value.rawValue], Double(statusCounts[value] ?? 0)) }
        return [pool, byStatus, status, health, load, breaker, transitions]
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
public struct RouteMetrics: Sendable {
    public let name: String
    public let duration: Histogram
    public let timeToFirstByte: Histogram
}

/// One request's record: the request counter, both duration histograms, the
/// in-flight gauge and the log line, filled in by whoever answers the request (the
/// inference core knows the model, the worker and the retries; a door knows the rest)
/// and written once when its last byte is out.
///
/// A value held by the request's owner, never shared: recording costs a few atomic
/// operations and, at the log level that shows it, one buffered log entry.
public struct RequestRecord: Sendable {
    public let route: RouteMetrics
    public let started: ContinuousClock.Instant
    public var requestID: String?
    /// Already bounded (a served model, or "other").
    public var model: String?
    public var workerID: String?
    public var retries = 0
    /// Inference requests log at info, everything else at debug.
    public var isInference: Bool
    private var firstByteSeen = false
    public private(set) var isFinished = false

    /// Starts the record (the in-flight gauge counts it from now).
    public init(route: RouteMetrics, metrics: GatewayMetrics, isInference: Bool = false, started: ContinuousClock.Instant = .now) {
        self.route = route
        self.started = started
        self.isInference = isInference
        metrics.requestsActive.add()
    }

    /// The first byte of the answer is leaving (only the first call counts).
    public mutating func firstByte(at now: ContinuousClock.Instant = .now) {
        guard !firstByteSeen else { return }
        firstByteSeen = true
        route.timeToFirstByte.observe(now - started)
    }

    /// The answer is complete (or was cut off: `aborted`); only the first call counts.
    public mutating func finish(status: Int, aborted: Bool = false, metrics: GatewayMetrics, logger: Logger) {
        guard !isFinished else { return }
        isFinished = true
        firstByte()
        let elapsed = ContinuousClock.now - started
        metrics.requestsActive.sub()
        route.duration.observe(elapsed)
        metrics.requests.labels(route.name, Self.statusLabel(status), isInference ? (model ?? GatewayMetrics.otherModel) : "").increment()

        let level: Logger.Level = isInference ? .info : .debug
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "route": .string(route.name),
            "status": .stringConvertible(status),
            "latency_ms": .stringConvertible(Self.milliseconds(elapsed)),
        ]
        if let requestID { metadata["request_id"] = .string(requestID) }
        if isInference {
            metadata["model"] = .string(model ?? GatewayMetrics.otherModel)
            metadata["worker_id"] = .string(workerID ?? "")
            metadata["retries"] = .stringConvertible(retries)
        }
        if aborted { metadata["aborted"] = .stringConvertible(true) }
        logger.log(level: level, "request", metadata: metadata)
    }

    /// A status code as a label: the code itself, bounded to what HTTP defines.
    public static func statusLabel(_ status: Int) -> String {
        (100...599).contains(status) ? String(status) : "other"
    }

    /// Milliseconds with one decimal, e.g. 12.3.
    public static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) * 1e-15
        return (ms * 10).rounded() / 10
    }
}
