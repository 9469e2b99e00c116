import GatewayCore
import GatewayWire
import GatewayWorkers

// Core values <-> wire values for the binary twin of the worker API.

extension GatewayError {
    /// The binary protocol's error message for this error: the code its REST twin
    /// would answer (spelled in that route's style) and the status it would have.
    func wire(_ style: ErrorStyle) -> Wire.CallError {
        Wire.CallError(code: code.spelled(style), message: message, httpStatus: UInt32(clamping: status))
    }
}

extension Wire.WorkerInfo {
    init(_ worker: Worker, now: ContinuousClock.Instant = .now) {
        self.init(
            id: worker.id.description,
            url: worker.url.description,
            modelID: worker.modelID,
            priority: worker.spec.priority,
            cost: worker.spec.cost,
            workerType: Wire.WorkerType(worker.spec.workerType),
            isHealthy: worker.isHealthy(at: now),
            load: UInt64(max(worker.load, 0)),
            connectionMode: "HTTP",
            runtimeType: worker.runtimeType.map(Wire.RuntimeType.init) ?? .unspecified,
            bootstrapPort: worker.spec.bootstrapPort.map(UInt32.init),
            metadata: worker.metadata,
            jobStatus: worker.job.map { Wire.JobStatus($0, inFlight: $0.state == .draining ? worker.load : 0) },
            labels: worker.spec.labels,
            healthCheck: Wire.HealthCheckSettings(
                timeoutSecs: UInt32(clamping: Int(worker.spec.healthCheck.timeout.seconds.rounded())),
                intervalSecs: UInt32(clamping: Int(worker.spec.healthCheck.interval.seconds.rounded())),
                failureThreshold: UInt32(clamping: worker.spec.healthCheck.failureThreshold),
                successThreshold: UInt32(clamping: worker.spec.healthCheck.successThreshold),
                endpoint: worker.spec.healthCheck.endpoint,
                disabled: worker.spec.healthCheck.disabled
            ),
            hasAPIKey: worker.spec.apiKey != nil,
            circuitBreaker: worker.handle.breakerState(at: now).rawValue,
            maxLoad: worker.spec.maxLoad.map { UInt32(clamping: $0) },
            status: Wire.WorkerStatus(worker.status)
        )
    }
}

extension Wire.WorkerType {
    init(_ type: WorkerType) {
        switch type {
        case .regular: self = .regular
        case .prefill: self = .prefill
        case .decode: self = .decode
        }
    }

    /// Nil for "unspecified" (the default applies); throws for a value this build does not know.
    func core() throws(GatewayError) -> WorkerType? {
        switch self {
        case .unspecified: nil
        case .regular: .regular
        case .prefill: .prefill
        case .decode: .decode
        case .unrecognized(let value): throw .invalidField("worker_type", "has an unknown value \(value)")
        }
    }
}

extension Wire.RuntimeType {
    init(_ type: RuntimeType) {
        switch type {
        case .sglang: self = .sglang
        case .openai: self = .openai
        }
    }

    func core() throws(GatewayError) -> RuntimeType? {
        switch self {
        case .unspecified: nil
        case .sglang: .sglang
        case .openai: .openai
        case .unrecognized(let value): throw .invalidField("runtime_type", "has an unknown value \(value)")
        }
    }
}

extension Wire.WorkerStatus {
    init(_ status: WorkerStatus) {
        switch status {
        case .pending: self = .pending
        case .ready: self = .ready
        case .notReady: self = .notReady
        case .failed: self = .failed
        case .draining: self = .draining
        }
    }

    /// Nil for "unspecified" (no filter); throws for a value this build does not know.
    func core(field: String) throws(GatewayError) -> WorkerStatus? {
        switch self {
        case .unspecified: nil
        case .pending: .pending
        case .ready: .ready
        case .notReady: .notReady
        case .failed: .failed
        case .draining: .draining
        case .unrecognized(let value): throw .invalidFilter(field, "has an unknown value \(value)")
        }
    }
}

extension Wire.ListWorkersRequest {
    /// The same filter as `GET /workers?model=&status=&worker_type=`.
    func filter() throws(GatewayError) -> WorkerFilter {
        let type: WorkerType?
        do {
            type = try workerType.core()
        } catch {
            throw .invalidFilter("worker_type", "has an unknown value \(workerType.rawValue)")
        }
        return WorkerFilter(model: model.isEmpty ? nil : model, status: try status.core(field: "status"), workerType: type)
    }
}

extension Wire.JobStatus {
    init(_ job: JobStatus, inFlight: Int = 0) {
        let type: Wire.JobType
        switch job.jobType {
        case .addWorker: type = .addWorker
        case .updateWorker: type = .updateWorker
        case .removeWorker: type = .removeWorker
        }
        let state: Wire.JobState
        switch job.state {
        case .pending: state = .pending
        case .processing: state = .processing
        case .failed: state = .failed
        case .draining: state = .draining
        }
        self.init(jobType: type, workerURL: job.workerURL, status: state, message: job.message, timestamp: job.timestamp, inFlight: UInt64(max(inFlight, 0)))
    }
}

extension Wire.HealthCheckSettings {
    var change: HealthCheckChange {
        HealthCheckChange(
            timeout: timeoutSecs.map { .seconds(Int64($0)) },
            interval: intervalSecs.map { .seconds(Int64($0)) },
            failureThreshold: failureThreshold.map { Int($0) },
            successThreshold: successThreshold.map { Int($0) },
            endpoint: endpoint,
            disabled: disabled
        )
    }
}

extension AddWorkerInput {
    init(_ request: Wire.AddWorkerRequest) throws(GatewayError) {
        guard !request.url.isEmpty else { throw .missingField("url") }
        var health = request.healthCheck?.change ?? HealthCheckChange()
        if request.disableHealthCheck { health.disabled = true }
        self.init(
            url: request.url,
            modelID: request.modelID.isEmpty ? nil : request.modelID,
            priority: request.priority,
            cost: request.cost,
            labels: request.labels,
            workerType: try request.workerType.core(),
            runtimeType: try request.runtimeType.core(),
            bootstrapPort: request.bootstrapPort.map { Int($0) },
            apiKey: request.apiKey.isEmpty ? nil : request.apiKey,
            healthCheck: health,
            maxLoad: try request.maxLoad.map { (limit) throws(GatewayError) in try Self.checkedMaxLoad(limit) }
        )
    }

    /// max_load as REST accepts it (`WorkerInputValidation.maxLoadRange`), with REST's message.
    static func checkedMaxLoad(_ limit: UInt32) throws(GatewayError) -> Int {
        let range = WorkerInputValidation.maxLoadRange
        guard range.contains(Int64(limit)) else {
            throw .invalidField("max_load", "must be between \(range.lowerBound) and \(range.upperBound), got \(limit)")
        }
        return Int(limit)
    }
}

extension UpdateWorkerInput {
    init(_ request: Wire.UpdateWorkerRequest) throws(GatewayError) {
        self.init(
            priority: request.priority,
            cost: request.cost,
            // An empty value removes the label (a proto map cannot carry null).
            labelChanges: (request.labels ?? [:]).mapValues { $0.isEmpty ? nil : $0 },
            apiKey: request.apiKey.map { $0.isEmpty ? nil : $0 },
            healthCheck: request.healthCheck?.change ?? HealthCheckChange(),
            // 0 removes the limit (a proto oneof cannot carry null).
            maxLoad: try request.maxLoad.map { (limit) throws(GatewayError) -> Int? in
                limit == 0 ? nil : try AddWorkerInput.checkedMaxLoad(limit)
            }
        )
    }
}
