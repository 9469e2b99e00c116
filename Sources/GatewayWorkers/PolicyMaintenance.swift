import GatewayCore
import ServiceLifecycle

/// Cache-aware routing's periodic eviction, as a service.
public struct PolicyMaintenance: Service {
    let policy: any RoutingPolicy
    let registry: WorkerRegistry
    let interval: Duration

    public init(policy: any RoutingPolicy, registry: WorkerRegistry, interval: Duration) {
        self.policy = policy
        self.registry = registry
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                policy.maintain(liveWorkers: Set(registry.workers().map(\.id)))
            }
        }
    }
}
