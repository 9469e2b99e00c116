import Synchronization

/// The live, shared state of one worker that every request touches: its in-flight
/// count and its circuit breaker.
///
/// One handle per registered worker, stable for the worker's life, so routing can
/// keep references across registry snapshots. Reads on the request path are
/// lock-free (two atomics); the breaker's lock is taken only to record an outcome
/// or to half-open an open breaker.
public final class WorkerHandle: Sendable, Equatable {
    public let id: WorkerID
    private let inFlight = Atomic<Int>(0)
    /// While the breaker is open: the instant (nanoseconds on the continuous clock)
    /// until which it refuses requests; 0 otherwise.
    private let openUntil = Atomic<Int64>(0)
    private let breaker: Mutex<CircuitBreaker>
    /// Breaker transitions so far, by the state entered (for metrics): open, half-open, closed.
    private let openedCount = Atomic<Int>(0)
    private let halfOpenedCount = Atomic<Int>(0)
    private let closedCount = Atomic<Int>(0)

    public init(id: WorkerID, breaker: CircuitBreaker.Configuration = .init()) {
        self.id = id
        self.breaker = Mutex(CircuitBreaker(configuration: breaker))
    }

    /// Handles are equal when they are the same handle.
    public static func == (lhs: WorkerHandle, rhs: WorkerHandle) -> Bool { lhs === rhs }

    // MARK: Load

    /// Requests sent to the worker whose response has not been fully relayed yet.
    public var load: Int { inFlight.load(ordering: .relaxed) }

    public func beginRequest() {
        inFlight.add(1, ordering: .relaxed)
    }

    public func endRequest() {
        inFlight.subtract(1, ordering: .relaxed)
    }

    // MARK: Circuit breaker

    /// Whether the breaker lets a request through at `now` (half-opening it when its
    /// open time is over).
    public func breakerAllows(at now: ContinuousClock.Instant) -> (allowed: Bool, transition: CircuitBreaker.Transition?) {
        let until = openUntil.load(ordering: .acquiring)
        if until == 0 { return (true, nil) }
        if now.nanoseconds < until { return (false, nil) }
        let result = breaker.withLock { breaker in
            let result = breaker.allowsRequest(at: now)
            if result.allowed { openUntil.store(0, ordering: .releasing) }
            return result
        }
        count(result.transition)
        return result
    }

    public func recordSuccess() -> CircuitBreaker.Transition? {
        let transition = breaker.withLock { $0.recordSuccess() }
        count(transition)
        return transition
    }

    public func recordFailure(at now: ContinuousClock.Instant) -> CircuitBreaker.Transition? {
        let transition = breaker.withLock { breaker in
            let transition = breaker.recordFailure(at: now)
            if transition == .opened {
                openUntil.store((now + breaker.configuration.openDuration).nanoseconds, ordering: .releasing)
            }
            return transition
        }
        count(transition)
        return transition
    }

    /// How many times the breaker has entered each state (the transitions metric).
    public var breakerTransitions: (opened: Int, halfOpened: Int, closed: Int) {
        (
            openedCount.load(ordering: .relaxed), halfOpenedCount.load(ordering: .relaxed),
            closedCount.load(ordering: .relaxed)
        )
    }

    @inline(__always)
    private func count(_ transition: CircuitBreaker.Transition?) {
        switch transition {
        case nil: return
        case .opened: openedCount.add(1, ordering: .relaxed)
        case .halfOpened: halfOpenedCount.add(1, ordering: .relaxed)
        case .closed: closedCount.add(1, ordering: .relaxed)
        }
    }

    public func breakerState(at now: ContinuousClock.Instant) -> CircuitBreaker.State {
        breaker.withLock { $0.state(at: now) }
    }
}

extension ContinuousClock.Instant {
    /// Nanoseconds since an arbitrary fixed origin (for lock-free comparisons).
    var nanoseconds: Int64 {
        let origin = Self.origin
        let (seconds, attoseconds) = (self - origin).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    private static let origin = ContinuousClock.now - .seconds(1_000_000)
}

/// One worker as routing sees it in a snapshot: its settings at the time of the
/// snapshot and its live handle.
public struct RouteCandidate: Sendable {
    public let handle: WorkerHandle
    public let url: WorkerURL
    public let modelID: String
    public let priority: UInt32
    public let cost: Double
    public let runtime: RuntimeType
    public let apiKey: String?
    /// In-flight requests at which the worker counts as saturated; nil: no limit.
    public let maxLoad: Int?

    public var id: WorkerID { handle.id }

    public init(handle: WorkerHandle, url: WorkerURL, modelID: String, priority: UInt32, cost: Double, runtime: RuntimeType, apiKey: String?, maxLoad: Int?) {
        self.handle = handle
        self.url = url
        self.modelID = modelID
        self.priority = priority
        self.cost = cost
        self.runtime = runtime
        self.apiKey = apiKey
        self.maxLoad = maxLoad
    }

    /// Whether the worker already carries as many requests as it may.
    public var isSaturated: Bool {
        guard let maxLoad else { return false }
        return handle.load >= maxLoad
    }
}

/// An immutable view of the routable workers, rebuilt by the registry on the first
/// read after a change that affects routing, and read by every request without copying.
public final class RoutingSnapshot: Sendable {
    /// Increases with every rebuild (for tests and diagnostics; policies cache what they
    /// derive per snapshot instance).
    public let version: UInt64
    /// Ready and healthy workers per model, in registration order.
    public let candidatesByModel: [String: [RouteCandidate]]
    /// Every model a ready worker serves, healthy or not (to tell "unknown model" from "no worker now").
    public let knownModels: Set<String>
    /// Per model: whether all its candidates share one priority, and one cost (worked out
    /// once per snapshot, so a request need not scan the list to know).
    public let uniformity: [String: Uniformity]

    public struct Uniformity: Sendable, Equatable {
        public let samePriority: Bool
        public let sameCost: Bool
    }

    public init(version: UInt64, candidatesByModel: [String: [RouteCandidate]], knownModels: Set<String>) {
        self.version = version
        self.candidatesByModel = candidatesByModel
        self.knownModels = knownModels
        self.uniformity = candidatesByModel.mapValues { list in
            guard let first = list.first else { return Uniformity(samePriority: true, sameCost: true) }
            return Uniformity(
                samePriority: list.allSatisfy { $0.priority == first.priority }, sameCost: list.allSatisfy { $0.cost == first.cost }
            )
        }
    }

    public static let empty = RoutingSnapshot(version: 0, candidatesByModel: [:], knownModels: [])
}
