import Synchronization

/// The live, shared state of one worker that every request touches: its in-flight
/// count and its ``WorkerHealth`` (active-check verdict and circuit breaker).
///
/// One handle per registered worker, stable for the worker's life, so routing can
/// keep references across registry snapshots. The health lives here and nowhere
/// else, as one atomic word: reads on the request path are lock-free (one load and
/// a compare), and each event is a compare-and-swap of the whole state, so the
/// checks and the breaker always change together. The registry feeds the check
/// events (under its lock, so it can republish routing when they change what is
/// routable); the request path feeds the breaker.
public final class WorkerHandle: Sendable, Equatable {
    public let id: WorkerID
    private let inFlight = Atomic<Int>(0)
    /// ``WorkerHealth/bits`` of the worker's health.
    private let health: Atomic<UInt64>
    private let breakerConfiguration: CircuitBreaker.Configuration
    /// Breaker transitions so far, by the state entered (for metrics): open, half-open, closed.
    private let openedCount = Atomic<Int>(0)
    private let halfOpenedCount = Atomic<Int>(0)
    private let closedCount = Atomic<Int>(0)
    /// Who waits for the load to reach 0, and the cut signal (drain).
    private let signals = WorkerHandleSignals()

    /// - Parameter passing: whether the worker's checks pass from the start (a new
    ///   worker's do not until its registration probe succeeds).
    public init(id: WorkerID, breaker: CircuitBreaker.Configuration = .init(), passing: Bool = false) {
        self.id = id
        self.breakerConfiguration = breaker
        self.health = Atomic(WorkerHealth(passing: passing).bits)
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
        // Sequentially consistent against the drain's "register, then read the load".
        if inFlight.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
            signals.loadReachedZero()
        }
    }

    // MARK: Drain

    /// Returns once no request runs on the worker (at once when none does), or when
    /// the calling task is cancelled. Used by the drain job.
    public func waitUntilIdle() async {
        await signals.waitUntilIdle { [self] in self.inFlight.load(ordering: .sequentiallyConsistent) }
    }

    /// Why the requests running on this worker must end now; nil until the drain
    /// timeout cuts them. A request path that relays a long answer checks it, or
    /// observes it with ``onCut(_:)``.
    public var cut: WorkerCut? { signals.cut }

    /// Runs `action` once when the worker's running requests must end now (at once
    /// if that already happened). The request path registers when it starts relaying
    /// an answer and cancels the observation (or releases it) when the answer ends:
    ///
    /// ```swift
    /// let observation = candidate.handle.onCut { cut in relay.fail(code: cut.code, message: cut.message) }
    /// defer { observation.cancel() }
    /// ```
    ///
    /// `action` runs on the drain job's task; it should only signal (cancel a task,
    /// finish a stream), not do the work.
    public func onCut(_ action: @escaping @Sendable (WorkerCut) -> Void) -> WorkerCutObservation {
        WorkerCutObservation(signals: signals, token: signals.observeCut(action))
    }

    /// Tells every request running on the worker to end now (the drain job, at its deadline).
    public func cutRequests(_ reason: WorkerCut) {
        signals.cutRequests(reason)
    }

    // MARK: Health

    /// The worker's health now (a copy; events go through the methods below).
    public var healthNow: WorkerHealth { WorkerHealth(bits: health.load(ordering: .acquiring)) }

    /// Whether the active checks pass.
    public var checksPass: Bool { healthNow.checksPass }

    /// Applies one event to the health state atomically; returns what `event` returned.
    /// The word is written only when the state changed (a success on a closed breaker,
    /// the common case, writes nothing).
    @discardableResult
    func updateHealth<T>(_ event: (inout WorkerHealth) -> T) -> T {
        var current = health.load(ordering: .acquiring)
        while true {
            var state = WorkerHealth(bits: current)
            let result = event(&state)
            let next = state.bits
            if next == current { return result }
            let (exchanged, original) = health.compareExchange(expected: current, desired: next, ordering: .acquiringAndReleasing)
            if exchanged { return result }
            current = original
        }
    }

    /// Active-check events (fed by the registry). A passing probe also half-opens an open breaker.
    func recordProbe(succeeded: Bool, _ policy: WorkerHealth.CheckPolicy) -> WorkerHealth.Change {
        let change = updateHealth { succeeded ? $0.probeSucceeded(policy) : $0.probeFailed(policy) }
        count(change.breaker)
        return change
    }

    func recordRefused(_ policy: WorkerHealth.CheckPolicy) -> WorkerHealth.Change {
        updateHealth { $0.connectionRefused(policy) }
    }

    func setChecks(passing: Bool) {
        updateHealth { $0.setChecks(passing: passing) }
    }

    /// A fresh state: checks as given, breaker closed (a registration that just completed).
    func resetHealth(passing: Bool) {
        updateHealth { $0 = WorkerHealth(passing: passing) }
    }

    // MARK: Circuit breaker

    /// Whether the breaker lets a request through at `now` (half-opening it when its
    /// open time is over). Lock-free: a load and a compare unless the breaker is open
    /// and its time is up.
    public func breakerAllows(at now: ContinuousClock.Instant) -> (allowed: Bool, transition: CircuitBreaker.Transition?) {
        guard breakerConfiguration.isEnabled else { return (true, nil) }
        let bits = health.load(ordering: .acquiring)
        if let verdict = WorkerHealth.admitsWithoutChange(bits: bits, at: now) {
            return (verdict, nil)
        }
        let result = updateHealth { $0.admitRequest(at: now, breakerConfiguration) }
        count(result.transition)
        return result
    }

    /// The worker answered a request (any status below 500).
    public func recordSuccess() -> CircuitBreaker.Transition? {
        let transition = updateHealth { $0.requestSucceeded(breakerConfiguration) }
        count(transition)
        return transition
    }

    /// The worker failed a request (transport error or 5xx).
    public func recordFailure(at now: ContinuousClock.Instant) -> CircuitBreaker.Transition? {
        let transition = updateHealth { $0.requestFailed(at: now, breakerConfiguration) }
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
        healthNow.breakerState(at: now)
    }
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
