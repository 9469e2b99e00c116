/// The removal of a worker that still carries requests: a value-type state machine.
///
/// `DELETE /workers/{id}` takes the worker out of routing at once and starts this
/// job. It ends when the worker's load (its in-flight requests and open streams,
/// counted until their last byte is relayed) reaches 0, or at the drain deadline;
/// then the requests still running are cut with an error event and the worker is
/// removed. The driver (I/O) feeds it the load it observes and the passing of the
/// deadline, and executes the actions.
public struct DrainJob: Sendable, Equatable {
    /// What the driver does next.
    public enum Action: Sendable, Equatable {
        /// Wait until the load reaches 0 or `deadline`, whichever comes first, then
        /// report which (``loadReachedZero(at:)`` or ``deadlinePassed(load:at:)``).
        case wait(until: ContinuousClock.Instant)
        /// Nothing runs on the worker any more: remove it.
        case remove
        /// The deadline passed with requests still running: tell them to end now
        /// (``WorkerHandle/cutRequests(_:)``), then remove the worker.
        case cutAndRemove(inFlight: Int)
        /// The job ended already (removed, or the worker came back): nothing to do.
        case none
    }

    private enum State: Sendable, Equatable {
        case draining
        case done
    }

    public let startedAt: ContinuousClock.Instant
    public let deadline: ContinuousClock.Instant
    private var state = State.draining

    /// - Parameter timeout: `--drain-timeout-secs`.
    public init(startedAt: ContinuousClock.Instant, timeout: Duration) {
        self.startedAt = startedAt
        self.deadline = startedAt + timeout
    }

    /// Whether the job has ended.
    public var isDone: Bool { state == .done }

    /// The first step, given the load when the drain starts.
    public mutating func start(load: Int, at now: ContinuousClock.Instant) -> Action {
        observe(load: load, at: now)
    }

    /// The driver saw the load reach 0 (it re-reads it: a new request cannot arrive,
    /// the worker is out of routing, but one picked just before may still begin).
    public mutating func loadReachedZero(load: Int, at now: ContinuousClock.Instant) -> Action {
        observe(load: load, at: now)
    }

    /// The deadline passed; `load` requests still run.
    public mutating func deadlinePassed(load: Int, at now: ContinuousClock.Instant) -> Action {
        guard state == .draining else { return .none }
        state = .done
        return load > 0 ? .cutAndRemove(inFlight: load) : .remove
    }

    /// The drain was overtaken: the worker was removed at once (`?force=true`) or is gone.
    public mutating func cancelled() -> Action {
        state = .done
        return .none
    }

    private mutating func observe(load: Int, at now: ContinuousClock.Instant) -> Action {
        guard state == .draining else { return .none }
        if load <= 0 {
            state = .done
            return .remove
        }
        if now >= deadline { return deadlinePassed(load: load, at: now) }
        return .wait(until: deadline)
    }
}
