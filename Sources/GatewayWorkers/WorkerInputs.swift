import GatewayCore

/// A registration request as either front door received it, before validation.
public struct AddWorkerInput: Sendable, Equatable {
    public var url: String
    public var modelID: String?
    public var priority: UInt32?
    public var cost: Double?
    public var labels: [String: String]
    public var workerType: WorkerType?
    public var runtimeType: RuntimeType?
    public var bootstrapPort: Int?
    public var apiKey: String?
    public var healthCheck: HealthCheckChange
    public var maxLoad: Int?

    public init(
        url: String, modelID: String? = nil, priority: UInt32? = nil, cost: Double? = nil,
        labels: [String: String] = [:], workerType: WorkerType? = nil, runtimeType: RuntimeType? = nil,
        bootstrapPort: Int? = nil, apiKey: String? = nil, healthCheck: HealthCheckChange = HealthCheckChange(),
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

/// A change request as either front door received it, before validation.
public struct UpdateWorkerInput: Sendable, Equatable {
    public var priority: UInt32?
    public var cost: Double?
    public var labelChanges: [String: String?]
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

    public var isEmpty: Bool {
        priority == nil && cost == nil && labelChanges.isEmpty && apiKey == nil && healthCheck.isEmpty && maxLoad == nil
    }
}

/// Value checks shared by both front doors (types are checked by each parser).
public enum WorkerInputValidation {
    /// The `max_load` values both front doors accept.
    public static let maxLoadRange: ClosedRange<Int64> = 1...1_000_000

    public static func validate(cost: Double?) throws(GatewayError) {
        if let cost, !(cost.isFinite && cost >= 0) {
            throw .invalidField("cost", "must be a finite number >= 0")
        }
    }

    public static func validate(healthCheck change: HealthCheckChange) throws(GatewayError) {
        if let timeout = change.timeout, timeout <= .zero {
            throw .invalidField("health_check_timeout_secs", "must be at least 1")
        }
        if let interval = change.interval, interval <= .zero {
            throw .invalidField("health_check_interval_secs", "must be at least 1")
        }
        if let threshold = change.failureThreshold, threshold < 1 {
            throw .invalidField("health_failure_threshold", "must be at least 1")
        }
        if let threshold = change.successThreshold, threshold < 1 {
            throw .invalidField("health_success_threshold", "must be at least 1")
        }
        if let endpoint = change.endpoint {
            try validate(endpoint: endpoint, field: "health_check_endpoint")
        }
    }

    public static func validate(endpoint: String, field: String) throws(GatewayError) {
        guard endpoint.hasPrefix("/"), endpoint.utf8.count <= 512,
            endpoint.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "?" && $0 != "#" })
        else {
            throw .invalidField(field, "must be a path starting with '/' (no spaces, query or fragment)")
        }
    }

    public static func validate(labels: [String: String?]) throws(GatewayError) {
        for key in labels.keys where key.isEmpty || key.utf8.count > 256 {
            throw .invalidField("labels", "keys must be 1-256 bytes long")
        }
    }

    public static func validate(apiKey: String?) throws(GatewayError) {
        if let apiKey, apiKey.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .invalidField("api_key", "must not contain control characters (it is sent in an HTTP header)")
        }
    }
}
