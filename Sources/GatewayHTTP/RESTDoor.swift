import GatewayCore
import GatewayInference
import GatewayObservability
import GatewayUpstream
import GatewayWorkers
import Logging
import NIOCore
import NIOHTTP1

/// The REST door: what every connection of the REST listener shares, and the answers
/// of its own routes (the inference routes go to the inference core).
public final class RESTDoor: Sendable {
    /// Limits and timeouts of REST connections.
    public struct Configuration: Sendable {
        /// Largest inference body (413 above).
        public var maxInferenceBodyBytes: Int
        /// Largest body on every other route.
        public var maxControlBodyBytes: Int
        /// An idle keep-alive connection is closed.
        public var idleTimeout: Duration
        /// A request's head must arrive within this long of its first byte.
        public var headerReadTimeout: Duration
        /// A request's body must arrive within this long of its head.
        public var bodyReadTimeout: Duration
        /// A client that accepts no byte of its answer for this long is cut off.
        public var sendTimeout: Duration
        /// The `Server` header.
        public var serverName: String

        public init(
            maxInferenceBodyBytes: Int = 512 * 1024 * 1024, maxControlBodyBytes: Int = 1 << 20, idleTimeout: Duration = .seconds(120),
            headerReadTimeout: Duration = .seconds(10), bodyReadTimeout: Duration = .seconds(60), sendTimeout: Duration = .seconds(60),
            serverName: String = "model-gateway"
        ) {
            self.maxInferenceBodyBytes = maxInferenceBodyBytes
            self.maxControlBodyBytes = maxControlBodyBytes
            self.idleTimeout = idleTimeout
            self.headerReadTimeout = headerReadTimeout
            self.bodyReadTimeout = bodyReadTimeout
            self.sendTimeout = sendTimeout
            self.serverName = serverName
        }
    }

    /// The routes a door serves.
    enum Scope: Sendable {
        /// The whole REST API.
        case api(engine: InferenceEngine, workers: WorkerRoutes, info: InfoRoutes)
        /// `GET /metrics` only (the `--prometheus-port` listener).
        case metricsOnly
    }

    let configuration: Configuration
    let scope: Scope
    let authorizer: Authorizer
    let metrics: GatewayMetrics
    let logger: Logger
    private let routeMetrics: [String: RouteMetrics]
    let unmatchedMetrics: RouteMetrics

    /// The whole REST API.
    public convenience init(
        configuration: Configuration, engine: InferenceEngine, workers: WorkerService, transport: WorkerTransport, lifecycle: LifecycleState,
        selector: WorkerSelector, facts: ServerFacts, startedAt: Int64, authorizer: Authorizer, metrics: GatewayMetrics, logger: Logger
    ) {
        let routes = WorkerRoutes(service: workers, registry: workers.registry, lifecycle: lifecycle)
        let info = InfoRoutes(workers: workers, registry: workers.registry, selector: selector, transport: transport, facts: facts, startedAt: startedAt)
        self.init(configuration: configuration, scope: .api(engine: engine, workers: routes, info: info), authorizer: authorizer, metrics: metrics, logger: logger)
    }

    /// `GET /metrics` only.
    public static func metricsOnly(configuration: Configuration, metrics: GatewayMetrics, logger: Logger) -> RESTDoor {
        RESTDoor(configuration: configuration, scope: .metricsOnly, authorizer: Authorizer(apiKey: nil, adminAPIKey: nil), metrics: metrics, logger: logger)
    }

    init(configuration: Configuration, scope: Scope, authorizer: Authorizer, metrics: GatewayMetrics, logger: Logger) {
        self.configuration = configuration
        self.scope = scope
        self.authorizer = authorizer
        self.metrics = metrics
        self.logger = logger
        var table: [String: RouteMetrics] = [:]
        for route in RESTRoute.allCases { table[route.pattern] = metrics.route(route.pattern) }
        self.routeMetrics = table
        self.unmatchedMetrics = metrics.route(GatewayMetrics.unmatchedRoute)
    }

    /// The series of `route` (nil: the unmatched series).
    func metrics(for route: RESTRoute?) -> RouteMetrics {
        route.flatMap { routeMetrics[$0.pattern] } ?? unmatchedMetrics
    }

    /// Whether requests to this door are counted in the request metrics and logged.
    var recordsRequests: Bool {
        if case .metricsOnly = scope { return false }
        return true
    }

    /// Whether this door serves `route` at all.
    func serves(_ route: RESTRoute) -> Bool {
        switch scope {
        case .api: true
        case .metricsOnly: route == .metrics
        }
    }

    var engine: InferenceEngine? {
        if case .api(let engine, _, _) = scope { return engine }
        return nil
    }

    /// The answer of `GET /metrics`.
    func metricsResponse() -> RESTResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: GatewayMetrics.contentType)
        return RESTResponse(headers: headers, body: .whole(ByteBuffer(string: metrics.render())))
    }

    /// The answer of a probe (on the event loop: a probe reads the registry, nothing more).
    func probe(_ route: RESTRoute) -> RESTResponse {
        switch (route, scope) {
        case (.readiness, .api(_, let workers, _)): workers.readiness()
        case (.metrics, _): metricsResponse()
        default: WorkerRoutes.liveness()
        }
    }

    /// The answer of a route that may take longer (worker management, info): run in a task.
    func answer(_ route: RESTRoute, method: HTTPMethod, workerID: String?, query: QueryParameters, body: ByteBuffer) async throws(GatewayError) -> RESTResponse {
        guard case .api(_, let workers, let info) = scope else { throw GatewayError.routeNotFound(method: method.rawValue, path: route.pattern) }
        switch (route, method) {
        case (.workers, .POST): return try await workers.addWorker(body)
        case (.workers, _): return try workers.listWorkers(query)
        case (.worker, .PUT): return try await workers.updateWorker(workerID ?? "", body)
        case (.worker, .PATCH): return try await workers.patchWorker(workerID ?? "", body)
        case (.worker, .DELETE): return try await workers.removeWorker(workerID ?? "", query)
        case (.worker, _): return try workers.getWorker(workerID ?? "")
        case (.models, _): return info.models()
        case (.loads, _): return info.loads()
        case (.serverInfo, _): return info.serverInfo()
        case (.modelInfo, _): return try await info.modelInfo(model: query["model"])
        case (.healthGenerate, _): return try await info.healthGenerate(model: query["model"])
        case (.flushCache, _): return await info.flushCache()
        default: return probe(route)
        }
    }
}

extension RESTDoor {
    /// Sets up a new connection's pipeline: the raw-byte watcher (for the head's clock),
    /// NIO's HTTP/1.1 codec, and the connection's handler. Runs on the channel's event loop.
    public func initialize(_ channel: any Channel) throws {
        let handler = HTTPConnectionHandler(door: self, loop: channel.eventLoop)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(ByteWatcher(handler: handler))
        try pipeline.addHandler(HTTPResponseEncoder())
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try pipeline.addHandler(handler)
    }
}
