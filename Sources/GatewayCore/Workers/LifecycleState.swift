import Synchronization

/// Whether the gateway is draining: from the first shutdown signal on, readiness
/// answers 503 so load balancers stop sending it traffic.
public final class LifecycleState: Sendable {
    private let draining = Atomic<Bool>(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }
}
