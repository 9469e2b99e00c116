import GatewayCore
import Logging

/// Worker management as both front doors (REST and binary) offer it: one
/// implementation, so a worker added over one is the same worker over the other
/// and both answer the same errors.
public struct WorkerService: Sendable {
    /// The answer to an accepted change.
    public struct Accepted: Sendable {
        public let worker: Worker
        public let message: String

        /// Where the worker can be read: `/workers/{id}`.
        public var location: String { "/workers/\(worker.id)" }
    }

    /// The answer to an accepted removal.
    public struct Removal: Sendable {
        public let worker: Worker
        public let message: String
        /// Whether the worker is gone (false: draining).
        public let removed: Bool
        /// Requests still running on it.
        public var inFlight: Int { worker.load }
    }

    public let registry: WorkerRegistry
    let jobs: WorkerJobs
    let persistence: WorkerPersistence
    let healthDefaults: HealthCheckConfig
    /// `max_load` of workers registered without one.
    let defaultMaxLoad: Int?
    /// How long a deleted worker may drain (`--drain-timeout-secs`).
    let drainTimeout: Duration

    /// - Parameters:
    ///   - healthDefaults: the health-check settings of workers registered without their own.
    ///   - defaultMaxLoad: `max_load` of workers registered without one.
    public init(
        registry: WorkerRegistry, store: any WorkerStore, prober: WorkerProber, registration: RegistrationSettings,
        healthDefaults: HealthCheckConfig, defaultMaxLoad: Int?, logger: Logger
    ) {
        self.registry = registry
        self.jobs = WorkerJobs(registry: registry, prober: prober, configuration: registration, logger: logger)
        self.persistence = WorkerPersistence(store: store)
        self.healthDefaults = healthDefaults
        self.defaultMaxLoad = defaultMaxLoad
        self.drainTimeout = registration.drainTimeout
    }

    /// Registers a worker: answers at once, the add job probes it in the background.
    public func add(_ input: AddWorkerInput) async throws(GatewayError) -> Accepted {
        let url: WorkerURL
        do {
            url = try WorkerURL(input.url)
        } catch {
            throw .invalidURL(error.description)
        }
        if let modelID = input.modelID, modelID.isEmpty || modelID.utf8.count > 512 {
            throw .invalidField("model_id", "must be 1-512 bytes long")
        }
        try WorkerInputValidation.validate(cost: input.cost)
        if let port = input.bootstrapPort, !(1...65535).contains(port) {
            throw .invalidField("bootstrap_port", "must be a port number (1-65535)")
        }
        try WorkerInputValidation.validate(labels: input.labels.mapValues { Optional($0) })
        try WorkerInputValidation.validate(apiKey: input.apiKey)
        try WorkerInputValidation.validate(healthCheck: input.healthCheck)

        let spec = WorkerSpec(
            url: url,
            modelID: input.modelID,
            priority: input.priority ?? WorkerSpec.defaultPriority,
            cost: input.cost ?? WorkerSpec.defaultCost,
            labels: input.labels,
            workerType: input.workerType ?? .regular,
            runtimeType: input.runtimeType,
            bootstrapPort: input.bootstrapPort.map { UInt16($0) },
            apiKey: input.apiKey.flatMap { $0.isEmpty ? nil : $0 },
            healthCheck: input.healthCheck.applied(to: healthDefaults),
            maxLoad: input.maxLoad ?? defaultMaxLoad
        )
        let reservation = try await persistence.perform { [registry] store in
            let reservation = registry.reserve(spec)
            guard reservation.needsJob else { return reservation }
            let worker = reservation.worker
            do {
                try store.upsert(StoredWorker(id: worker.id, spec: worker.spec, sequence: worker.sequence))
            } catch {
                // Not stored, not acknowledged: a new worker leaves again (a retried one stays failed).
                if case .created = reservation { _ = registry.remove(worker.id) }
                throw error
            }
            return reservation
        }
        switch reservation {
        case .created(let worker):
            await jobs.startRegistration(of: worker.id)
            return Accepted(worker: worker, message: "Worker addition queued for background processing")
        case .retried(let worker):
            await jobs.startRegistration(of: worker.id)
            return Accepted(worker: worker, message: "The earlier registration of this URL had failed; retrying it with the new settings")
        case .existing(let worker):
            return Accepted(
                worker: worker,
                message: "A worker with this URL is already registered (same id); its settings are unchanged, use PUT /workers/\(worker.id) to change them"
            )
        }
    }

    /// Every worker, in registration order.
    public func list() -> [Worker] {
        registry.workers()
    }

    /// Every model a ready worker serves, in registration order, with its worker counts
    /// (`/v1/models` over REST, `ListModels` over binary).
    public func modelCounts() -> [(model: String, total: Int, healthy: Int)] {
        var counts: [String: (total: Int, healthy: Int)] = [:]
        var order: [String] = []
        for worker in registry.workers() where worker.phase == .ready {
            if counts[worker.modelID] == nil { order.append(worker.modelID) }
            counts[worker.modelID, default: (0, 0)].total += 1
            if worker.isHealthy { counts[worker.modelID, default: (0, 0)].healthy += 1 }
        }
        return order.map { ($0, counts[$0]!.total, counts[$0]!.healthy) }
    }

    /// The workers `filter` matches, in registration order.
    public func list(_ filter: WorkerFilter) -> [Worker] {
        filter.isEmpty ? registry.workers() : registry.workers(where: filter.matches)
    }

    public func get(_ rawID: String) throws(GatewayError) -> Worker {
        let id = try Self.parseID(rawID)
        guard let worker = registry.worker(id) else { throw .workerNotFound(rawID) }
        return worker
    }

    /// Applies a change at once (visible to the next read).
    public func update(_ rawID: String, _ input: UpdateWorkerInput) async throws(GatewayError) -> Accepted {
        let id = try Self.parseID(rawID)
        guard !input.isEmpty else {
            throw GatewayError.badRequest(
                "nothing to update: give at least one of priority, cost, labels, api_key, max_load, health_check_timeout_secs, health_check_interval_secs, health_failure_threshold, health_success_threshold, health_check_endpoint, disable_health_check"
            )
        }
        try WorkerInputValidation.validate(cost: input.cost)
        try WorkerInputValidation.validate(labels: input.labelChanges)
        try WorkerInputValidation.validate(apiKey: input.apiKey ?? nil)
        try WorkerInputValidation.validate(healthCheck: input.healthCheck)
        let update = WorkerUpdate(
            priority: input.priority,
            cost: input.cost,
            labelChanges: input.labelChanges,
            apiKey: input.apiKey.map { key in key.flatMap { $0.isEmpty ? nil : $0 } },
            healthCheck: input.healthCheck,
            maxLoad: input.maxLoad
        )
        let updated: Worker? = try await persistence.perform { [registry] store in
            guard let current = registry.worker(id) else { return nil }
            // Its record is gone from the store already; writing it would bring it back.
            guard current.phase != .draining else { throw GatewayError.workerDraining(rawID) }
            try store.upsert(StoredWorker(id: id, spec: update.applied(to: current.spec), sequence: current.sequence))
            return registry.update(id, update)
        }
        guard let worker = updated else { throw .workerNotFound(rawID) }
        return Accepted(worker: worker, message: "Worker updated")
    }

    /// `DELETE /workers/{id}`: a ready worker leaves routing at once and drains (its
    /// in-flight requests end, then it is removed; at the drain timeout they are cut);
    /// `force` removes it at once (requests already sent to it still finish). A pending
    /// registration is cancelled; a failed worker goes at once. The store forgets it
    /// before the answer (so a restart does not bring it back).
    public func remove(_ rawID: String, force: Bool = false) async throws(GatewayError) -> Removal {
        let id = try Self.parseID(rawID)
        let deadline = registry.wallClockNow + Int64(drainTimeout.seconds.rounded(.up))
        let deletion: WorkerRegistry.Deletion? = try await persistence.perform { [registry] store in
            guard registry.worker(id) != nil else { return nil }
            try store.delete(id)
            return registry.delete(id, force: force, drainDeadline: deadline)
        }
        guard let deletion else { throw .workerNotFound(rawID) }
        switch deletion {
        case .draining(let worker):
            // Nothing in flight: nothing to wait for (a request that picked it just before
            // the DELETE and starts now finishes, as after a forced removal).
            if worker.handle.load <= 0, let removed = registry.finishDrain(id) {
                return Removal(worker: removed, message: "Worker removed; no request was in flight on it", removed: true)
            }
            await jobs.startDrain(of: worker)
            return Removal(
                worker: worker,
                message: "Worker draining: out of routing now; removed once its \(worker.load) in-flight request(s) end, or cut after \(Int(drainTimeout.seconds))s",
                removed: false
            )
        case .alreadyDraining(let worker):
            return Removal(worker: worker, message: "Worker is already draining (\(worker.load) request(s) in flight); ?force=true removes it at once", removed: false)
        case .removed(let worker):
            await jobs.cancel(id)
            switch worker.phase {
            case .registering: return Removal(worker: worker, message: "Pending registration cancelled; worker removed", removed: true)
            case .failed: return Removal(worker: worker, message: "Worker removed", removed: true)
            case .ready, .draining: return Removal(worker: worker, message: "Worker removed at once (force); requests already sent to it finish", removed: true)
            }
        }
    }

    /// Cancels every registration job and waits for them to end (at shutdown).
    public func shutdown() async {
        await jobs.shutdown()
    }

    /// Puts back every stored worker (same ids and order) and starts probing them.
    public func restoreStoredWorkers() async throws -> Int {
        let stored = try persistence.store.loadAll()
        var restored = 0
        for worker in stored {
            if registry.restore(worker) != nil {
                await jobs.startRegistration(of: worker.id)
                restored += 1
            }
        }
        return restored
    }

    public static func parseID(_ raw: String) throws(GatewayError) -> WorkerID {
        guard let id = WorkerID(raw) else { throw .malformedWorkerID(raw) }
        return id
    }
}
