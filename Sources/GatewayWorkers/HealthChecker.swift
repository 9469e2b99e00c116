import GatewayCore
import Logging
import ServiceLifecycle

/// Active health checks: probes every ready worker on its own interval and feeds
/// the results to each worker's ``WorkerHealth`` (through the registry).
///
/// A refused connection makes a worker unhealthy at once (nothing is listening);
/// other failures count towards the failure threshold. Probes of many workers run
/// concurrently, at most `maxConcurrentProbes` at a time.
public final class HealthChecker: Service {
    private let registry: WorkerRegistry
    private let prober: WorkerProber
    private let logger: Logger
    private let maxConcurrentProbes = 64

    public init(registry: WorkerRegistry, prober: WorkerProber, logger: Logger) {
        self.registry = registry
        self.prober = prober
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.loop()
        }
    }

    private func loop() async {
        var nextDue: [WorkerID: ContinuousClock.Instant] = [:]
        while !Task.isCancelled {
            let now = ContinuousClock.now
            // Filtered under the registry's lock: a fleet with checks off costs no copy a second.
            let workers = registry.workers { $0.phase == .ready && !$0.spec.healthCheck.disabled }
            var due: [Worker] = []
            var live = Set<WorkerID>()
            var tick = Duration.seconds(1)
            for worker in workers {
                live.insert(worker.id)
                let interval = worker.spec.healthCheck.interval
                tick = min(tick, interval)
                // A worker just registered was just probed: its first check is one interval away.
                guard let dueAt = nextDue[worker.id] else {
                    nextDue[worker.id] = now + interval
                    continue
                }
                if dueAt <= now {
                    due.append(worker)
                    nextDue[worker.id] = now + interval
                }
            }
            if nextDue.count > live.count {
                nextDue = nextDue.filter { live.contains($0.key) }
            }
            if !due.isEmpty {
                await probe(due)
            }
            do {
                try await Task.sleep(for: max(tick, .milliseconds(50)))
            } catch {
                return
            }
        }
    }

    /// Probes `workers`, bounded in concurrency, and records each outcome.
    func probe(_ workers: [Worker]) async {
        await withTaskGroup(of: Void.self) { group in
            var iterator = workers.makeIterator()
            func startNext() -> Bool {
                guard let worker = iterator.next() else { return false }
                group.addTask { await self.check(worker) }
                return true
            }
            for _ in 0..<maxConcurrentProbes where !startNext() { break }
            while await group.next() != nil {
                _ = startNext()
            }
        }
    }

    private func check(_ worker: Worker) async {
        let outcome = await prober.checkHealth(url: worker.url, config: worker.spec.healthCheck, apiKey: worker.spec.apiKey)
        let change: WorkerHealth.Change
        switch outcome {
        case .healthy:
            change = registry.recordProbe(worker.id, succeeded: true)
        case .unhealthy(let reason):
            change = registry.recordProbe(worker.id, succeeded: false)
            logger.debug("health check failed", metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)", "reason": "\(reason)"])
        case .refused(let reason):
            change = WorkerHealth.Change(checks: registry.recordConnectionRefused(worker.id))
            logger.debug("health check refused", metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)", "reason": "\(reason)"])
        }
        if change.breaker == .halfOpened {
            logger.notice("circuit breaker half-open after a passing health check", metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)"])
        }
        switch change.checks {
        case .becameHealthy:
            logger.info("worker is healthy again", metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)"])
        case .becameUnhealthy:
            let reason: String
            switch outcome {
            case .unhealthy(let r), .refused(let r): reason = r
            case .healthy: reason = ""
            }
            logger.warning("worker is unhealthy", metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)", "reason": "\(reason)"])
        case nil:
            break
        }
    }
}
