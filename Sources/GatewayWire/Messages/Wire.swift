/// Swift value types for every message of `proto/modelgateway/v1`.
///
/// These are what the rest of the gateway uses; the protobuf-c structs behind
/// them never leave this module. Field names follow the proto (camel-cased);
/// a proto `oneof x_opt { T x }` is a Swift optional.
public enum Wire {}

extension Wire {
    /// A proto3 enum value: a known case, or a number this build does not know
    /// (proto3 enums are open; a newer peer may send one).
    public protocol OpenEnum: Sendable, Hashable {
        init(rawValue: Int32)
        var rawValue: Int32 { get }
    }

    public enum WorkerType: OpenEnum {
        case unspecified, regular, prefill, decode
        case unrecognized(Int32)

        public init(rawValue: Int32) {
            switch rawValue {
            case 0: self = .unspecified
            case 1: self = .regular
            case 2: self = .prefill
            case 3: self = .decode
            default: self = .unrecognized(rawValue)
            }
        }

        public var rawValue: Int32 {
            switch self {
            case .unspecified: 0
            case .regular: 1
            case .prefill: 2
            case .decode: 3
            case .unrecognized(let v): v
            }
        }
    }

    public enum RuntimeType: OpenEnum {
        case unspecified, sglang, openai
        case unrecognized(Int32)

        public init(rawValue: Int32) {
            switch rawValue {
            case 0: self = .unspecified
            case 1: self = .sglang
            case 2: self = .openai
            default: self = .unrecognized(rawValue)
            }
        }

        public var rawValue: Int32 {
            switch self {
            case .unspecified: 0
            case .sglang: 1
            case .openai: 2
            case .unrecognized(let v): v
            }
        }
    }

    public enum JobType: OpenEnum {
        case unspecified, addWorker, updateWorker, removeWorker
        case unrecognized(Int32)

        public init(rawValue: Int32) {
            switch rawValue {
            case 0: self = .unspecified
            case 1: self = .addWorker
            case 2: self = .updateWorker
            case 3: self = .removeWorker
            default: self = .unrecognized(rawValue)
            }
        }

        public var rawValue: Int32 {
            switch self {
            case .unspecified: 0
            case .addWorker: 1
            case .updateWorker: 2
            case .removeWorker: 3
            case .unrecognized(let v): v
            }
        }
    }

    public enum JobState: OpenEnum {
        case unspecified, pending, processing, failed, draining
        case unrecognized(Int32)

        public init(rawValue: Int32) {
            switch rawValue {
            case 0: self = .unspecified
            case 1: self = .pending
            case 2: self = .processing
            case 3: self = .failed
            case 4: self = .draining
            default: self = .unrecognized(rawValue)
            }
        }

        public var rawValue: Int32 {
            switch self {
            case .unspecified: 0
            case .pending: 1
            case .processing: 2
            case .failed: 3
            case .draining: 4
            case .unrecognized(let v): v
            }
        }
    }

    /// A worker's status (REST `status`); only `ready` takes new traffic.
    public enum WorkerStatus: OpenEnum {
        case unspecified, pending, ready, notReady, failed, draining
        case unrecognized(Int32)

        public init(rawValue: Int32) {
            switch rawValue {
            case 0: self = .unspecified
            case 1: self = .pending
            case 2: self = .ready
            case 3: self = .notReady
            case 4: self = .failed
            case 5: self = .draining
            default: self = .unrecognized(rawValue)
            }
        }

        public var rawValue: Int32 {
            switch self {
            case .unspecified: 0
            case .pending: 1
            case .ready: 2
            case .notReady: 3
            case .failed: 4
            case .draining: 5
            case .unrecognized(let v): v
            }
        }
    }
}

// MARK: - error.proto

extension Wire {
    /// The terminal error of one call (proto `Error`).
    public struct CallError: Sendable, Hashable {
        public var code: String
        public var message: String
        public var httpStatus: UInt32

        public init(code: String = "", message: String = "", httpStatus: UInt32 = 0) {
            self.code = code
            self.message = message
            self.httpStatus = httpStatus
        }
    }
}

// MARK: - worker.proto

extension Wire {
    public struct JobStatus: Sendable, Hashable {
        public var jobType: JobType
        public var workerURL: String
        public var status: JobState
        public var message: String
        /// Seconds since the Unix epoch.
        public var timestamp: Int64
        /// While `status` is `draining`: requests still running on the worker.
        public var inFlight: UInt64

        public init(
            jobType: JobType = .unspecified, workerURL: String = "", status: JobState = .unspecified, message: String = "", timestamp: Int64 = 0,
            inFlight: UInt64 = 0
        ) {
            self.jobType = jobType
            self.workerURL = workerURL
            self.status = status
            self.message = message
            self.timestamp = timestamp
            self.inFlight = inFlight
        }
    }

    public struct HealthCheckSettings: Sendable, Hashable {
        public var timeoutSecs: UInt32?
        public var intervalSecs: UInt32?
        public var failureThreshold: UInt32?
        public var successThreshold: UInt32?
        public var endpoint: String?
        public var disabled: Bool?

        public init(
            timeoutSecs: UInt32? = nil, intervalSecs: UInt32? = nil, failureThreshold: UInt32? = nil,
            successThreshold: UInt32? = nil, endpoint: String? = nil, disabled: Bool? = nil
        ) {
            self.timeoutSecs = timeoutSecs
            self.intervalSecs = intervalSecs
            self.failureThreshold = failureThreshold
            self.successThreshold = successThreshold
            self.endpoint = endpoint
            self.disabled = disabled
        }
    }

    public struct WorkerInfo: Sendable, Hashable {
        public var id: String
        public var url: String
        public var modelID: String
        public var priority: UInt32
        public var cost: Double
        public var workerType: WorkerType
        public var isHealthy: Bool
        public var load: UInt64
        public var connectionMode: String
        public var runtimeType: RuntimeType
        public var bootstrapPort: UInt32?
        public var metadata: [String: String]
        public var jobStatus: JobStatus?
        public var labels: [String: String]
        public var healthCheck: HealthCheckSettings?
        /// Whether the worker has an api_key (the key itself never leaves the gateway).
        public var hasAPIKey: Bool
        /// "closed", "open" or "half_open".
        public var circuitBreaker: String
        public var maxLoad: UInt32?
        /// `isHealthy` is true exactly when this is `ready` and `circuitBreaker` is not "open".
        public var status: WorkerStatus

        public init(
            id: String = "", url: String = "", modelID: String = "", priority: UInt32 = 0, cost: Double = 0,
            workerType: WorkerType = .unspecified, isHealthy: Bool = false, load: UInt64 = 0,
            connectionMode: String = "", runtimeType: RuntimeType = .unspecified, bootstrapPort: UInt32? = nil,
            metadata: [String: String] = [:], jobStatus: JobStatus? = nil, labels: [String: String] = [:],
            healthCheck: HealthCheckSettings? = nil, hasAPIKey: Bool = false, circuitBreaker: String = "",
            maxLoad: UInt32? = nil, status: WorkerStatus = .unspecified
        ) {
            self.status = status
            self.maxLoad = maxLoad
            self.hasAPIKey = hasAPIKey
            self.circuitBreaker = circuitBreaker
            self.id = id
            self.url = url
            self.modelID = modelID
            self.priority = priority
            self.cost = cost
            self.workerType = workerType
            self.isHealthy = isHealthy
            self.load = load
            self.connectionMode = connectionMode
            self.runtimeType = runtimeType
            self.bootstrapPort = bootstrapPort
            self.metadata = metadata
            self.jobStatus = jobStatus
            self.labels = labels
            self.healthCheck = healthCheck
        }
    }

    public struct WorkerStats: Sendable, Hashable {
        public var prefillCount: UInt32
        public var decodeCount: UInt32
        public var regularCount: UInt32

        public init(prefillCount: UInt32 = 0, decodeCount: UInt32 = 0, regularCount: UInt32 = 0) {
            self.prefillCount = prefillCount
            self.decodeCount = decodeCount
            self.regularCount = regularCount
        }
    }

    public struct AddWorkerRequest: Sendable, Hashable {
        public var url: String
        /// Empty: detected from the worker.
        public var modelID: String
        public var priority: UInt32?
        public var cost: Double?
        public var labels: [String: String]
        public var workerType: WorkerType
        public var runtimeType: RuntimeType
        public var bootstrapPort: UInt32?
        public var apiKey: String
        public var disableHealthCheck: Bool
        public var healthCheck: HealthCheckSettings?
        public var maxLoad: UInt32?

        public init(
            url: String = "", modelID: String = "", priority: UInt32? = nil, cost: Double? = nil,
            labels: [String: String] = [:], workerType: WorkerType = .unspecified,
            runtimeType: RuntimeType = .unspecified, bootstrapPort: UInt32? = nil, apiKey: String = "",
            disableHealthCheck: Bool = false, healthCheck: HealthCheckSettings? = nil, maxLoad: UInt32? = nil
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
            self.disableHealthCheck = disableHealthCheck
            self.healthCheck = healthCheck
        }
    }

    public struct AddWorkerReply: Sendable, Hashable {
        public var status: String
        public var workerID: String
        public var url: String
        public var location: String
        public var message: String

        public init(status: String = "", workerID: String = "", url: String = "", location: String = "", message: String = "") {
            self.status = status
            self.workerID = workerID
            self.url = url
            self.location = location
            self.message = message
        }
    }

    /// Filters; empty or unspecified fields match every worker.
    public struct ListWorkersRequest: Sendable, Hashable {
        public var model: String
        public var status: WorkerStatus
        public var workerType: WorkerType

        public init(model: String = "", status: WorkerStatus = .unspecified, workerType: WorkerType = .unspecified) {
            self.model = model
            self.status = status
            self.workerType = workerType
        }
    }

    public struct ListWorkersReply: Sendable, Hashable {
        public var workers: [WorkerInfo]
        public var total: UInt32
        public var stats: WorkerStats?

        public init(workers: [WorkerInfo] = [], total: UInt32 = 0, stats: WorkerStats? = nil) {
            self.workers = workers
            self.total = total
            self.stats = stats
        }
    }

    public struct GetWorkerRequest: Sendable, Hashable {
        public var workerID: String

        public init(workerID: String = "") { self.workerID = workerID }
    }

    public struct GetWorkerReply: Sendable, Hashable {
        public var worker: WorkerInfo?

        public init(worker: WorkerInfo? = nil) { self.worker = worker }
    }

    public struct UpdateWorkerRequest: Sendable, Hashable {
        public var workerID: String
        public var priority: UInt32?
        public var cost: Double?
        /// Non-nil: merged into the worker's labels; an empty value removes that label.
        public var labels: [String: String]?
        /// Non-nil: replaces the worker's API key (empty removes it).
        public var apiKey: String?
        public var healthCheck: HealthCheckSettings?
        /// Non-nil: replaces max_load (0 removes the limit).
        public var maxLoad: UInt32?

        public init(
            workerID: String = "", priority: UInt32? = nil, cost: Double? = nil, labels: [String: String]? = nil,
            apiKey: String? = nil, healthCheck: HealthCheckSettings? = nil, maxLoad: UInt32? = nil
        ) {
            self.maxLoad = maxLoad
            self.workerID = workerID
            self.priority = priority
            self.cost = cost
            self.labels = labels
            self.apiKey = apiKey
            self.healthCheck = healthCheck
        }
    }

    /// The reply to update and remove calls.
    public struct AcceptedReply: Sendable, Hashable {
        public var status: String
        public var workerID: String
        public var message: String
        /// Remove only: `draining`, or unspecified when the worker is gone already.
        public var workerStatus: WorkerStatus
        /// Remove only: requests still running on the worker.
        public var inFlight: UInt64

        public init(status: String = "", workerID: String = "", message: String = "", workerStatus: WorkerStatus = .unspecified, inFlight: UInt64 = 0) {
            self.status = status
            self.workerID = workerID
            self.message = message
            self.workerStatus = workerStatus
            self.inFlight = inFlight
        }
    }

    public struct RemoveWorkerRequest: Sendable, Hashable {
        public var workerID: String
        /// True: removed at once instead of drained.
        public var force: Bool

        public init(workerID: String = "", force: Bool = false) {
            self.workerID = workerID
            self.force = force
        }
    }
}

// MARK: - inference.proto

extension Wire {
    public struct ChatMessage: Sendable, Hashable {
        public var role: String
        public var content: String
        public var name: String

        public init(role: String = "", content: String = "", name: String = "") {
            self.role = role
            self.content = content
            self.name = name
        }
    }

    public struct SamplingParams: Sendable, Hashable {
        public var maxTokens: UInt32?
        public var temperature: Float?
        public var topP: Float?
        public var topK: Int32?
        public var seed: UInt64?
        public var stop: [String]
        public var frequencyPenalty: Float?
        public var presencePenalty: Float?
        public var ignoreEOS: Bool

        public init(
            maxTokens: UInt32? = nil, temperature: Float? = nil, topP: Float? = nil, topK: Int32? = nil,
            seed: UInt64? = nil, stop: [String] = [], frequencyPenalty: Float? = nil,
            presencePenalty: Float? = nil, ignoreEOS: Bool = false
        ) {
            self.maxTokens = maxTokens
            self.temperature = temperature
            self.topP = topP
            self.topK = topK
            self.seed = seed
            self.stop = stop
            self.frequencyPenalty = frequencyPenalty
            self.presencePenalty = presencePenalty
            self.ignoreEOS = ignoreEOS
        }
    }

    public struct GenerateRequest: Sendable, Hashable {
        public enum Input: Sendable, Hashable {
            case text(String)
            case tokenIDs([UInt32])
            case chat([ChatMessage])
        }

        public var model: String
        /// Nil when the client sent none (or a kind this build does not know).
        public var input: Input?
        public var sampling: SamplingParams?
        public var stream: Bool
        public var routingKey: String
        public var requestID: String

        public init(
            model: String = "", input: Input? = nil, sampling: SamplingParams? = nil, stream: Bool = false,
            routingKey: String = "", requestID: String = ""
        ) {
            self.model = model
            self.input = input
            self.sampling = sampling
            self.stream = stream
            self.routingKey = routingKey
            self.requestID = requestID
        }
    }

    public struct Usage: Sendable, Hashable {
        public var promptTokens: UInt32
        public var completionTokens: UInt32
        public var totalTokens: UInt32

        public init(promptTokens: UInt32 = 0, completionTokens: UInt32 = 0, totalTokens: UInt32 = 0) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            self.totalTokens = totalTokens
        }
    }

    public struct GenerateChunk: Sendable, Hashable {
        public var text: String
        public var tokenIDs: [UInt32]
        public var index: UInt32

        public init(text: String = "", tokenIDs: [UInt32] = [], index: UInt32 = 0) {
            self.text = text
            self.tokenIDs = tokenIDs
            self.index = index
        }
    }

    public struct GenerateResult: Sendable, Hashable {
        public var text: String
        public var tokenIDs: [UInt32]
        public var finishReason: String
        public var usage: Usage?
        public var model: String
        public var workerID: String
        public var requestID: String

        public init(
            text: String = "", tokenIDs: [UInt32] = [], finishReason: String = "", usage: Usage? = nil,
            model: String = "", workerID: String = "", requestID: String = ""
        ) {
            self.text = text
            self.tokenIDs = tokenIDs
            self.finishReason = finishReason
            self.usage = usage
            self.model = model
            self.workerID = workerID
            self.requestID = requestID
        }
    }

    public struct ModelInfo: Sendable, Hashable {
        public var id: String
        public var workerCount: UInt32
        public var healthyWorkerCount: UInt32

        public init(id: String = "", workerCount: UInt32 = 0, healthyWorkerCount: UInt32 = 0) {
            self.id = id
            self.workerCount = workerCount
            self.healthyWorkerCount = healthyWorkerCount
        }
    }

    public struct ListModelsReply: Sendable, Hashable {
        public var models: [ModelInfo]

        public init(models: [ModelInfo] = []) { self.models = models }
    }

    public struct HealthReply: Sendable, Hashable {
        public var status: String
        public var healthyWorkers: UInt32
        public var totalWorkers: UInt32

        public init(status: String = "", healthyWorkers: UInt32 = 0, totalWorkers: UInt32 = 0) {
            self.status = status
            self.healthyWorkers = healthyWorkers
            self.totalWorkers = totalWorkers
        }
    }
}

// MARK: - envelope.proto

extension Wire {
    public struct Hello: Sendable, Hashable {
        public var protocolVersion: UInt32
        public var apiKey: String
        public var clientName: String

        public init(protocolVersion: UInt32 = 0, apiKey: String = "", clientName: String = "") {
            self.protocolVersion = protocolVersion
            self.apiKey = apiKey
            self.clientName = clientName
        }
    }

    public struct HelloReply: Sendable, Hashable {
        public var protocolVersion: UInt32
        public var serverName: String
        public var maxFrameBytes: UInt32
        public var maxConcurrentStreams: UInt32

        public init(protocolVersion: UInt32 = 0, serverName: String = "", maxFrameBytes: UInt32 = 0, maxConcurrentStreams: UInt32 = 0) {
            self.protocolVersion = protocolVersion
            self.serverName = serverName
            self.maxFrameBytes = maxFrameBytes
            self.maxConcurrentStreams = maxConcurrentStreams
        }
    }

    public struct GoAway: Sendable, Hashable {
        public var reason: String
        public var lastStreamID: UInt64

        public init(reason: String = "", lastStreamID: UInt64 = 0) {
            self.reason = reason
            self.lastStreamID = lastStreamID
        }
    }

    /// Every frame's payload.
    public struct Envelope: Sendable, Hashable {
        public enum Body: Sendable, Hashable {
            case hello(Hello)
            case helloReply(HelloReply)
            case ping(nonce: UInt64)
            case pong(nonce: UInt64)
            case cancel
            case goAway(GoAway)
            case error(CallError)
            case addWorker(AddWorkerRequest)
            case addWorkerReply(AddWorkerReply)
            case listWorkers(ListWorkersRequest)
            case listWorkersReply(ListWorkersReply)
            case getWorker(GetWorkerRequest)
            case getWorkerReply(GetWorkerReply)
            case updateWorker(UpdateWorkerRequest)
            case updateWorkerReply(AcceptedReply)
            case removeWorker(RemoveWorkerRequest)
            case removeWorkerReply(AcceptedReply)
            case listModels
            case listModelsReply(ListModelsReply)
            case health
            case healthReply(HealthReply)
            case generate(GenerateRequest)
            case generateChunk(GenerateChunk)
            case generateResult(GenerateResult)
        }

        public var streamID: UInt64
        /// Nil when no body was set, or the peer used a kind this build does not know.
        public var body: Body?

        public init(streamID: UInt64, body: Body?) {
            self.streamID = streamID
            self.body = body
        }
    }
}
