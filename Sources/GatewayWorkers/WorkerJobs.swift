import GatewayCore
import Logging

/// How workers are registered.
public struct RegistrationSettings: Sendable {
    /// How long an add job keeps trying an unreachable worker before it fails.
    public var startupTimeout: Duration
    /// The longest wait between two registration attempts (the backoff starts at 250 ms).
    public var maxCheckInterval: Duration

    public init(startupTimeout: Duration = .seconds(1800), maxCheckInterval: Duration = .seconds(5)) {
        self.startupTimeout = startupTimeout
        self.maxCheckInterval = maxCheckInterval
    }
}

/// Runs worker registration jobs in the background, one task per pending worker.
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

    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds < 1 ? "\(Int((seconds * 1000).rounded()))ms" : "\((seconds * 10).rounded() / 10)s"
    }
}
