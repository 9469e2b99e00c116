import GatewayCore
import Logging
import ServiceLifecycle

/// `--remove-unhealthy-workers`: removes workers that stay `not_ready` (failing active
/// checks) or `failed` (add job gave up) longer than their limit, as smg 1.x does with
/// workers that reach `Failed` (3 × the failure threshold of consecutive failed checks;
/// here the same span as a time, 3 × threshold × interval, unless
/// `--remove-unhealthy-after-secs` sets one). The removal is a normal `DELETE` (a
/// worker still carrying requests drains first).
public struct UnhealthyWorkerRemoval: Service {
    let registry: WorkerRegistry
    let workers: WorkerService
    let configuration: RegistrationSettings
    let logger: Logger
    /// How often the registry is looked at.
    var tick: Duration = .seconds(1)

    public init(registry: WorkerRegistry, workers: WorkerService, configuration: RegistrationSettings, logger: Logger) {
        self.registry = registry
        self.workers = workers
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: tick) } catch { return }
                await removeDue()
            }
        }
    }

    /// Removes every worker past its limit now.
    func removeDue() async {
        for worker in registry.unhealthyWorkers(for: configuration.unhealthyLimit) {
            let limit = configuration.unhealthyLimit(of: worker)
            do {
                _ = try await workers.remove(worker.id.description)
                logger.warning(
                    "removed a worker unhealthy for longer than its limit (--remove-unhealthy-workers)",
                    metadata: ["worker_id": "\(worker.id)", "url": "\(worker.url)", "status": "\(worker.status.rawValue)", "limit_secs": "\(Int(limit.seconds))"]
                )
            } catch {
                logger.error("could not remove an unhealthy worker", metadata: ["worker_id": "\(worker.id)", "error": "\(error)"])
            }
        }
    }
}
