import GatewayCore
import Logging

/// How workers are registered and removed.
public struct RegistrationSettings: Sendable {
    /// How long an add job keeps trying an unreachable worker before it fails.
    public var startupTimeout: Duration
    /// The longest wait between two registration attempts (the backoff starts at 250 ms).
    public var maxCheckInterval: Duration
    /// How long a deleted worker's in-flight requests may run before they are cut
    /// and it is removed (`--drain-timeout-secs`).
    public var drainTimeout: Duration
    /// `--remove-unhealthy-workers`: remove workers that stay `not_ready` or `failed`
    /// past ``unhealthyRemovalTimeout``.
    public var removeUnhealthyWorkers: Bool
    /// How long a worker may stay unhealthy before it is removed; nil: smg 1.x's
    /// limit, 3 × its failure threshold × its check interval.
    public var unhealthyRemovalTimeout: Duration?

    public init(
        startupTimeout: Duration = .seconds(1800), maxCheckInterval: Duration = .seconds(5), drainTimeout: Duration = .seconds(300),
        removeUnhealthyWorkers: Bool = false, unhealthyRemovalTimeout: Duration? = nil
    ) {
        self.startupTimeout = startupTimeout
        self.maxCheckInterval = maxCheckInterval
        self.drainTimeout = drainTimeout
        self.removeUnhealthyWorkers = removeUnhealthyWorkers
        self.unhealthyRemovalTimeout = unhealthyRemovalTimeout
    }

    /// How long `worker` may stay unhealthy before `--remove-unhealthy-workers` removes it.
    public func unhealthyLimit(of worker: Worker) -> Duration {
        unhealthyRemovalTimeout ?? worker.spec.healthCheck.interval * (3 * worker.spec.healthCheck.failureThreshold)
    }
}

/// Runs worker jobs in the background, one task per worker: registrations and drains.
///
/// `POST /workers` answers at once; the job probes the worker, retries with
/// backoff while it is unreachable, and either registers it (ready, healthy) or
/// records why it failed. A `DELETE` of a pending worker cancels its job. Task
/// handles are kept so a single job can be cancelled, and all are cancelled and
/// awaited on shutdown.
actor WorkerJobs {
    private struct Running {
        let token: UInt64
        let task: Task<Void, Never>
    }

    private let registry: WorkerRegistry
    private let prober: WorkerProber
    private let configuration: RegistrationSettings
    private let logger: Logger
    private var running: [WorkerID: Running] = [:]
    private var nextToken: UInt64 = 0
    private var isShutDown = false

    init(registry: WorkerRegistry, prober: WorkerProber, configuration: RegistrationSettings, logger: Logger) {
        self.registry = registry
        self.prober = prober
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts (or restarts) the add job of a pending worker.
    func startRegistration(of id: WorkerID) {
        guard !isShutDown else {
            registry.failRegistration(id, message: "the gateway is shutting down")
            return
        }
        running[id]?.task.cancel()
        nextToken += 1
        let token = nextToken
        let task = Task { [registry, prober, configuration, logger] in
            await Self.register(id, registry: registry, prober: prober, configuration: configuration, logger: logger)
            self.finished(id, token: token)
        }
        running[id] = Running(token: token, task: task)
    }

    /// Starts the drain of a worker the registry has just marked draining: it is
    /// removed once its load reaches 0, or its requests are cut at the drain timeout.
    func startDrain(of worker: Worker) {
        guard !isShutDown else { return }
        let id = worker.id
        running[id]?.task.cancel()
        nextToken += 1
        let token = nextToken
        let task = Task { [registry, configuration, logger] in
            await Self.drain(worker, registry: registry, timeout: configuration.drainTimeout, logger: logger)
            self.finished(id, token: token)
        }
        running[id] = Running(token: token, task: task)
    }

    /// Cancels the job of `id`, if one runs.
    func cancel(_ id: WorkerID) {
        running.removeValue(forKey: id)?.task.cancel()
    }

    /// The number of jobs still running.
    var runningCount: Int { running.count }

    /// Cancels every job and waits for them to end.
    func shutdown() async {
        isShutDown = true
        let tasks = running.values.map(\.task)
        running.removeAll()
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    private func finished(_ id: WorkerID, token: UInt64) {
        if running[id]?.token == token { running.removeValue(forKey: id) }
    }

    /// The add job: probe until the worker answers, the startup timeout passes, or the job is cancelled.
    private static func register(
        _ id: WorkerID,
        registry: WorkerRegistry,
        prober: WorkerProber,
        configuration: RegistrationSettings,
        logger: Logger
    ) async {
        let backoff = Backoff(initial: .milliseconds(250), maximum: configuration.maxCheckInterval, multiplier: 2, jitter: 0.2)
        var schedule = RegistrationSchedule(startedAt: .now, timeout: configuration.startupTimeout, backoff: backoff)
        guard registry.updateRegistration(id, state: .processing, message: "probing the worker") else { return }
        while !Task.isCancelled {
            // Re-read the spec each attempt: a PUT may have changed its key or health settings.
            guard let worker = registry.worker(id), worker.phase == .registering else { return }
            do {
                let result = try await prober.probe(worker.spec)
                guard !Task.isCancelled else { return }
                if let registered = registry.completeRegistration(id, probe: result) {
                    logger.info(
                        "worker registered",
                        metadata: [
                            "worker_id": "\(id)", "url": "\(registered.url)", "model_id": "\(registered.modelID)",
                            "runtime": "\(registered.runtimeType?.rawValue ?? "?")",
                        ]
                    )
                }
                return
            } catch {
                guard !Task.isCancelled else { return }
                switch schedule.attemptFailed(reason: error.message, at: .now, unit: Double.random(in: 0..<1)) {
                case .retry(let delay):
                    let attempt = schedule.failedAttempts
                    let message = "attempt \(attempt) failed: \(error.message); retrying in \(Self.format(delay))"
                    guard registry.updateRegistration(id, state: .processing, message: message) else { return }
                    logger.debug("worker not ready yet", metadata: ["worker_id": "\(id)", "url": "\(worker.url)", "reason": "\(error.message)"])
                    do { try await Task.sleep(for: delay) } catch { return }
                case .giveUp(let message):
                    if registry.failRegistration(id, message: message) {
                        logger.warning("worker registration failed", metadata: ["worker_id": "\(id)", "url": "\(worker.url)", "reason": "\(message)"])
                    }
                    return
                }
            }
        }
    }

    /// The drain job's driver: executes ``DrainJob``'s actions, feeding it the load
    /// reaching 0 (observed, not polled) and the deadline passing.
    private static func drain(_ worker: Worker, registry: WorkerRegistry, timeout: Duration, logger: Logger) async {
        let handle = worker.handle
        var job = DrainJob(startedAt: .now, timeout: timeout)
        var action = job.start(load: handle.load, at: .now)
        let metadata: Logger.Metadata = ["worker_id": "\(worker.id)", "url": "\(worker.url)"]
        while true {
            switch action {
            case .none:
                return
            case .remove:
                if registry.finishDrain(worker.id) != nil {
                    logger.info("worker drained and removed", metadata: metadata)
                }
                return
            case .cutAndRemove(let inFlight):
                handle.cutRequests(.drainTimedOut(after: timeout))
                if registry.finishDrain(worker.id) != nil {
                    logger.warning("drain timed out: requests still running were cut, worker removed", metadata: metadata.merging(["cut": "\(inFlight)"]) { $1 })
                }
                return
            case .wait(let deadline):
                let idle = await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        await handle.waitUntilIdle()
                        return true
                    }
                    group.addTask {
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        return false
                    }
                    let first = await group.next() ?? false
                    group.cancelAll()
                    return first
                }
                if Task.isCancelled {
                    // Removed at once meanwhile (force), or the gateway shuts down.
                    action = job.cancelled()
                } else if idle {
                    action = job.loadReachedZero(load: handle.load, at: .now)
                } else {
                    action = job.deadlinePassed(load: handle.load, at: .now)
                }
            }
        }
    }

    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds < 1 ? "\(Int((seconds * 1000).rounded()))ms" : "\((seconds * 10).rounded() / 10)s"
    }
}
