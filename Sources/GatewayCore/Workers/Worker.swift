/// What a worker does in a disaggregated deployment.
public enum WorkerType: String, Sendable, CaseIterable {
    case regular, prefill, decode
}

/// How many of some workers are of each type (the worker list's `stats`, on both doors).
public struct WorkerTypeCounts: Sendable, Equatable {
    public var regular = 0
    public var prefill = 0
    public var decode = 0

    public init(_ workers: some Sequence<Worker>) {
        for worker in workers {
            switch worker.spec.workerType {
            case .regular: regular += 1
            case .prefill: prefill += 1
            case .decode: decode += 1
            }
        }
    }
}

/// Which HTTP API a worker speaks.
public enum RuntimeType: String, Sendable, CaseIterable {
    /// SGLang's native API (`/generate`, `/server_info` …) besides the OpenAI routes.
    case sglang
    /// Only OpenAI-compatible routes (vLLM, llama.cpp's llama-server …).
    case openai
}

/// Active health-check settings of one worker (resolved: gateway defaults filled in).
public struct HealthCheckConfig: Sendable, Equatable {
    public var timeout: Duration
    public var interval: Duration
    public var failureThreshold: Int
    public var successThreshold: Int
    /// Path probed with GET, e.g. "/health".
    public var endpoint: String
    /// True: never probed; the worker counts as healthy once registered.
    public var disabled: Bool

    public init(
        timeout: Duration = .seconds(5),
        interval: Duration = .seconds(60),
        failureThreshold: Int = 3,
        successThreshold: Int = 2,
        endpoint: String = "/health",
        disabled: Bool = false
    ) {
        self.timeout = timeout
        self.interval = interval
        self.failureThreshold = failureThreshold
        self.successThreshold = successThreshold
        self.endpoint = endpoint
        self.disabled = disabled
    }

    /// What the worker's health state machine needs of these settings.
    public var checkPolicy: WorkerHealth.CheckPolicy {
        .init(failureThreshold: failureThreshold, successThreshold: successThreshold, checksDisabled: disabled)
    }
}

/// A partial change to `HealthCheckConfig`; nil fields keep their value.
public struct HealthCheckChange: Sendable, Equatable {
    public var timeout: Duration?
    public var interval: Duration?
    public var failureThreshold: Int?
    public var successThreshold: Int?
    public var endpoint: String?
    public var disabled: Bool?

    public init(
        timeout: Duration? = nil, interval: Duration? = nil, failureThreshold: Int? = nil,
        successThreshold: Int? = nil, endpoint: String? = nil, disabled: Bool? = nil
    ) {
        self.timeout = timeout
        self.interval = interval
        self.failureThreshold = failureThreshold
        self.successThreshold = successThreshold
        self.endpoint = endpoint
        self.disabled = disabled
    }

    public var isEmpty: Bool { self == HealthCheckChange() }

    public func applied(to config: HealthCheckConfig) -> HealthCheckConfig {
        var config = config
        if let timeout { config.timeout = timeout }
        if let interval { config.interval = interval }
        if let failureThreshold { config.failureThreshold = failureThreshold }
        if let successThreshold { config.successThreshold = successThreshold }
        if let endpoint { config.endpoint = endpoint }
        if let disabled { config.disabled = disabled }
        return config
    }
}

/// What the operator asked for when registering a worker.
public struct WorkerSpec: Sendable, Equatable {
    public var url: WorkerURL
    /// Nil: detected from the worker.
    public var modelID: String?
    /// Higher is preferred; lower-priority workers take traffic only when higher ones cannot.
    public var priority: UInt32
    /// Relative cost of a request on this worker; among equal priorities, cheaper is preferred.
    public var cost: Double
    public var labels: [String: String]
    public var workerType: WorkerType
    /// Nil: detected from the worker's routes.
    public var runtimeType: RuntimeType?
    public var bootstrapPort: UInt16?
    /// Sent to the worker as a Bearer token; never shown in any reply or log.
    public var apiKey: String?
    public var healthCheck: HealthCheckConfig
    /// In-flight requests at which the worker counts as saturated (lower priorities
    /// then take traffic); nil: no limit.
    public var maxLoad: Int?

    public static let defaultPriority: UInt32 = 50
    public static let defaultCost: Double = 1.0

    public init(
        url: WorkerURL,
        modelID: String? = nil,
        priority: UInt32 = WorkerSpec.defaultPriority,
        cost: Double = WorkerSpec.defaultCost,
        labels: [String: String] = [:],
        workerType: WorkerType = .regular,
        runtimeType: RuntimeType? = nil,
        bootstrapPort: UInt16? = nil,
        apiKey: String? = nil,
        healthCheck: HealthCheckConfig = HealthCheckConfig(),
        maxLoad: Int? = nil
    ) {
        self.maxLoad = maxLoad
        self.url = url
        self.modelID = modelID
        self.priority = priority
        self.cost = cost
        self.labels = labels
        self.workerType = workerType
        self.runtimeType = runtimeType
        self.bootstrapPort = bootstrapPort
        self.apiKey = apiKey
        self.healthCheck = healthCheck
    }
}

/// A change requested by `PUT /workers/{id}`; nil fields keep their value.
public struct WorkerUpdate: Sendable, Equatable {
    public var priority: UInt32?
    public var cost: Double?
    /// Merged into the labels: a key mapped to nil is removed, others are set.
    public var labelChanges: [String: String?]
    /// `.some(nil)` removes the key.
    public var apiKey: String??
    public var healthCheck: HealthCheckChange
    /// `.some(nil)` removes the limit.
    public var maxLoad: Int??

    public init(
        priority: UInt32? = nil, cost: Double? = nil, labelChanges: [String: String?] = [:],
        apiKey: String?? = nil, healthCheck: HealthCheckChange = HealthCheckChange(), maxLoad: Int?? = nil
    ) {
        self.maxLoad = maxLoad
        self.priority = priority
        self.cost = cost
        self.labelChanges = labelChanges
        self.apiKey = apiKey
        self.healthCheck = healthCheck
    }

    public var isEmpty: Bool { self == WorkerUpdate() }

    public func applied(to spec: WorkerSpec) -> WorkerSpec {
        var spec = spec
        if let priority { spec.priority = priority }
        if let cost { spec.cost = cost }
        for (key, value) in labelChanges { spec.labels[key] = value }
        if let apiKey { spec.apiKey = apiKey }
        if let maxLoad { spec.maxLoad = maxLoad }
        spec.healthCheck = healthCheck.applied(to: spec.healthCheck)
        return spec
    }
}

/// What probing a worker found out about it.
public struct WorkerProbeResult: Sendable, Equatable {
    public var modelID: String
    public var runtimeType: RuntimeType
    /// Flat facts read from the worker (`server_info`, `model_info` or `/v1/models`).
    public var metadata: [String: String]

    public init(modelID: String, runtimeType: RuntimeType, metadata: [String: String] = [:]) {
        self.modelID = modelID
        self.runtimeType = runtimeType
        self.metadata = metadata
    }
}

/// Where a worker is in its life in the registry.
public enum WorkerPhase: Sendable, Equatable {
    /// Accepted; the add job has not finished. Not routable.
    case registering
    /// Probed and registered; routable while its checks pass.
    case ready
    /// The add job gave up; kept so the operator can see why, until removed or re-added.
    case failed
    /// Deleted: out of routing, kept until its in-flight requests have ended (or the
    /// drain timeout cut them). Its URL is free again meanwhile.
    case draining
}

/// A worker's `status` in WorkerInfo (smg 1.x's names). Only `ready` takes new traffic.
public enum WorkerStatus: String, Sendable, CaseIterable {
    /// The add job runs (or the worker was restored and is being probed again).
    case pending
    /// Registered and its active checks pass.
    case ready
    /// Registered, but its active checks fail (or a request found nothing listening).
    case notReady = "not_ready"
    /// The add job gave up (`job_status` says why). Posting its URL again retries it.
    case failed
    /// Deleted; waiting for its in-flight requests to end before it is removed.
    case draining
}

/// A consistent snapshot of one registered worker, as the API shows it.
public struct Worker: Sendable, Equatable {
    public let id: WorkerID
    public var spec: WorkerSpec
    public var phase: WorkerPhase
    /// The served model; "unknown" until the worker has been probed.
    public var modelID: String
    /// Nil until detected (or given at registration).
    public var runtimeType: RuntimeType?
    public var metadata: [String: String]
    /// The tracked job, while there is one.
    public var job: JobStatus?
    /// Registration order; the list is sorted by it.
    public let sequence: UInt64
    /// Live load and health (active checks and circuit breaker): read live, not
    /// as of this snapshot.
    public let handle: WorkerHandle

    /// In-flight requests now.
    public var load: Int { handle.load }

    public var url: WorkerURL { spec.url }

    /// WorkerInfo's `is_healthy`: whether the worker takes a new request now. Ready
    /// (registered, active checks passing) **and** its circuit breaker not open: a
    /// worker whose breaker is open is never shown healthy, since routing skips it.
    /// A half-open breaker takes trial requests, so it counts as healthy.
    public var isHealthy: Bool { isHealthy(at: .now) }

    public func isHealthy(at now: ContinuousClock.Instant) -> Bool {
        guard phase == .ready else { return false }
        let health = handle.healthNow
        return health.checksPass && health.breakerLetsThrough(at: now)
    }

    /// Whether routing may send this worker traffic now (the same as ``isHealthy``).
    public var isRoutable: Bool { isHealthy }

    /// Where the worker is in its life and what its active checks say (live).
    public var status: WorkerStatus {
        switch phase {
        case .registering: .pending
        case .failed: .failed
        case .draining: .draining
        case .ready: handle.checksPass ? .ready : .notReady
        }
    }

    public static let unknownModelID = "unknown"
}
