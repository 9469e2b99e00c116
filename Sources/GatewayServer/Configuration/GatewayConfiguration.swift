import GatewayCore
import GatewayWorkers
import Logging

/// Everything `model-gateway serve` can be told, with the reference gateway's
/// defaults unless a comment says otherwise.
public struct GatewayConfiguration: Sendable {
    /// The REST listener.
    public struct HTTP: Sendable {
        public var host: String
        /// 0 picks a free port (tests).
        public var port: Int
        /// Largest request body accepted on worker-management routes.
        public var maxControlBodyBytes: Int

        public init(host: String = "0.0.0.0", port: Int = 30000, maxControlBodyBytes: Int = 1 << 20) {
            self.host = host
            self.port = port
            self.maxControlBodyBytes = maxControlBodyBytes
        }
    }

    /// The binary-protocol listener (docs/binary-protocol.md).
    public struct Binary: Sendable {
        /// Nil: no binary listener. 0 picks a free port (tests).
        public var port: Int?
        /// Largest frame payload accepted (longer frames close the connection).
        public var maxFrameBytes: Int
        /// Calls one connection may have running at once (TOO_MANY_STREAMS above).
        public var maxConcurrentStreams: Int
        /// A connection with no call and no frame for this long is closed.
        public var idleTimeout: Duration

        public init(port: Int? = 30001, maxFrameBytes: Int = 4 * 1024 * 1024, maxConcurrentStreams: Int = 100, idleTimeout: Duration = .seconds(300)) {
            self.port = port
            self.maxFrameBytes = maxFrameBytes
            self.maxConcurrentStreams = maxConcurrentStreams
            self.idleTimeout = idleTimeout
        }
    }

    /// The extra Prometheus listener (`/metrics` is on the REST port in any case).
    public struct Metrics: Sendable {
        public var host: String
        /// Nil: no separate listener. 0 picks a free port (tests).
        public var port: Int?

        public init(host: String = "0.0.0.0", port: Int? = nil) {
            self.host = host
            self.port = port
        }
    }

    /// Admission control on inference routes.
    public struct Admission: Sendable {
        /// Requests served at once; nil: no limit.
        public var maxConcurrentRequests: Int?
        /// Requests that may wait for a slot (429 when full).
        public var queueSize: Int
        /// How long a request may wait for a slot (408 after).
        public var queueTimeout: Duration
        /// Requests per second per API key (or per client without one); nil: no limit.
        public var rateLimitPerSecond: Double?

        public init(maxConcurrentRequests: Int? = nil, queueSize: Int = 100, queueTimeout: Duration = .seconds(60), rateLimitPerSecond: Double? = nil) {
            self.maxConcurrentRequests = maxConcurrentRequests
            self.queueSize = queueSize
            self.queueTimeout = queueTimeout
            self.rateLimitPerSecond = rateLimitPerSecond
        }
    }

    /// Who may call what.
    public struct Auth: Sendable {
        /// Bearer key for inference routes; nil: open.
        public var apiKey: String?
        /// Bearer key for worker management; nil: only clients on loopback may manage workers.
        public var adminAPIKey: String?

        /// The door-side checker of these keys.
        public var authorizer: Authorizer { Authorizer(apiKey: apiKey, adminAPIKey: adminAPIKey) }

        public init(apiKey: String? = nil, adminAPIKey: String? = nil) {
            self.apiKey = apiKey
            self.adminAPIKey = adminAPIKey
        }
    }

    /// Timeouts that keep slow or idle clients from holding connections.
    public struct ClientTimeouts: Sendable {
        /// A connection with no request for this long is closed.
        public var idle: Duration
        /// A request's head (line and headers) must arrive within this long.
        public var headerRead: Duration
        /// A request's body must arrive within this long after its head.
        public var bodyRead: Duration
        /// A client that accepts no byte of its answer for this long is cut off (its
        /// request, its call to the worker and its admission slot with it), as nginx's `send_timeout`.
        public var send: Duration

        public init(idle: Duration = .seconds(120), headerRead: Duration = .seconds(10), bodyRead: Duration = .seconds(60), send: Duration = .seconds(60)) {
            self.idle = idle
            self.headerRead = headerRead
            self.bodyRead = bodyRead
            self.send = send
        }
    }

    /// How workers are registered and removed.
    public typealias Registration = RegistrationSettings

    /// How inference requests are routed and forwarded.
    public struct Routing: Sendable {
        public var policy: PolicyName
        public var cacheAware: CacheAwarePolicy.Configuration
        public var blocks: BlockCacheAwarePolicy.Configuration
        /// How often cache-aware routing evicts old prefixes.
        public var evictionInterval: Duration
        /// Largest inference request body accepted (413 above).
        public var maxPayloadBytes: Int
        /// The longest a request may take, first attempt to last byte (504 before the first byte).
        public var requestTimeout: Duration
        /// Prompt bytes that cache-aware routing looks at (longer prompts are cut).
        public var maxRoutingTextBytes: Int
        /// Default in-flight limit per worker above which it counts as saturated; nil: none.
        public var workerMaxLoad: Int?
        /// Connections open to one worker at most (more requests wait for one).
        public var maxConnectionsPerWorker: Int
        /// 503 + `Retry-After` when every available worker is saturated.
        public var shedWhenSaturated: Bool
        /// `X-Gateway-Route` on inference answers.
        public var explainRouting: Bool

        public init(
            policy: PolicyName = .cacheAware,
            cacheAware: CacheAwarePolicy.Configuration = .init(),
            blocks: BlockCacheAwarePolicy.Configuration = .init(),
            evictionInterval: Duration = .seconds(120),
            maxPayloadBytes: Int = 512 * 1024 * 1024,
            requestTimeout: Duration = .seconds(1800),
            maxRoutingTextBytes: Int = 16 * 1024,
            workerMaxLoad: Int? = nil,
            maxConnectionsPerWorker: Int = 1024,
            shedWhenSaturated: Bool = false,
            explainRouting: Bool = false
        ) {
            self.blocks = blocks
            self.shedWhenSaturated = shedWhenSaturated
            self.explainRouting = explainRouting
            self.maxConnectionsPerWorker = max(maxConnectionsPerWorker, 1)
            self.policy = policy
            self.cacheAware = cacheAware
            self.evictionInterval = evictionInterval
            self.maxPayloadBytes = maxPayloadBytes
            self.requestTimeout = requestTimeout
            self.maxRoutingTextBytes = maxRoutingTextBytes
            self.workerMaxLoad = workerMaxLoad
        }
    }

    /// Retries of failed inference attempts on other workers.
    public struct Retry: Sendable {
        /// Attempts per request in all (as the reference counts them); 1 means no retry.
        public var maxAttempts: Int
        public var backoff: Backoff
        public var isEnabled: Bool

        /// The attempts a request gets: `maxAttempts`, or 1 with retries disabled.
        public var effectiveMaxAttempts: Int { isEnabled ? maxAttempts : 1 }

        public init(
            maxAttempts: Int = 5,
            backoff: Backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(30), multiplier: 1.5, jitter: 0.2),
            isEnabled: Bool = true
        ) {
            self.maxAttempts = max(maxAttempts, 1)
            self.backoff = backoff
            self.isEnabled = isEnabled
        }
    }

    public var http: HTTP
    public var binary: Binary
    public var admission: Admission
    public var auth: Auth
    public var clientTimeouts: ClientTimeouts
    /// How long in-flight requests, streams and binary calls may take to finish on shutdown.
    public var shutdownGracePeriod: Duration
    public var registration: Registration
    public var routing: Routing
    public var retry: Retry
    public var circuitBreaker: CircuitBreaker.Configuration
    /// Default active health-check settings of every worker (a worker may override them).
    public var healthCheck: HealthCheckConfig
    /// The SQLite file that keeps registered workers across restarts; nil: memory only.
    public var statePath: String?
    /// Workers registered at start-up.
    public var workerURLs: [String]
    /// The API key sent to workers given in `workerURLs`.
    public var workerAPIKey: String?
    public var logLevel: Logger.Level
    public var metrics: Metrics

    public init(
        http: HTTP = HTTP(),
        binary: Binary = Binary(),
        admission: Admission = Admission(),
        auth: Auth = Auth(),
        clientTimeouts: ClientTimeouts = ClientTimeouts(),
        shutdownGracePeriod: Duration = .seconds(180),
        registration: Registration = Registration(),
        healthCheck: HealthCheckConfig = HealthCheckConfig(),
        routing: Routing = Routing(),
        retry: Retry = Retry(),
        circuitBreaker: CircuitBreaker.Configuration = .init(),
        statePath: String? = nil,
        workerURLs: [String] = [],
        workerAPIKey: String? = nil,
        logLevel: Logger.Level = .info,
        metrics: Metrics = Metrics()
    ) {
        self.http = http
        self.binary = binary
        self.admission = admission
        self.auth = auth
        self.clientTimeouts = clientTimeouts
        self.shutdownGracePeriod = shutdownGracePeriod
        self.registration = registration
        self.routing = routing
        self.retry = retry
        self.circuitBreaker = circuitBreaker
        self.healthCheck = healthCheck
        self.statePath = statePath
        self.workerURLs = workerURLs
        self.workerAPIKey = workerAPIKey
        self.logLevel = logLevel
        self.metrics = metrics
    }
}
