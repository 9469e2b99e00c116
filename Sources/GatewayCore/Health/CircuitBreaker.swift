/// A per-worker circuit breaker.
///
/// Closed: requests flow; `failureThreshold` consecutive failures open it. Open:
/// the worker gets no requests until `openDuration` has passed, then it is
/// half-open. Half-open: requests flow again as trials; `successThreshold`
/// consecutive successes close it, any failure opens it again.
///
/// Only transport errors and 5xx count as failures; a 4xx is the client's fault
/// and proves the worker answers, so it counts as a success. The breaker is a pure
/// value: time comes in as arguments.
public struct CircuitBreaker: Sendable, Equatable {
    public struct Configuration: Sendable, Equatable {
        public var failureThreshold: Int
        public var successThreshold: Int
        public var openDuration: Duration
        /// False: the breaker never opens.
        public var isEnabled: Bool

        public init(failureThreshold: Int = 10, successThreshold: Int = 3, openDuration: Duration = .seconds(60), isEnabled: Bool = true) {
            self.failureThreshold = max(failureThreshold, 1)
            self.successThreshold = max(successThreshold, 1)
            self.openDuration = openDuration
            self.isEnabled = isEnabled
        }
    }

    /// The breaker's state as shown to operators.
    public enum State: String, Sendable, Equatable {
        case closed, open
        case halfOpen = "half_open"
    }

    public enum Transition: Sendable, Equatable {
        case opened, halfOpened, closed
    }

    private enum Internal: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        case open(until: ContinuousClock.Instant)
        case halfOpen(consecutiveSuccesses: Int)
    }

    public var configuration: Configuration
    private var state: Internal = .closed(consecutiveFailures: 0)

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// The state at `now` (an open breaker whose time is up reads as half-open).
    public func state(at now: ContinuousClock.Instant) -> State {
        switch state {
        case .closed: return .closed
        case .halfOpen: return .halfOpen
        case .open(let until): return now >= until ? .halfOpen : .open
        }
    }

    /// Whether a request may go to the worker at `now`. Moves open to half-open once
    /// the open duration has passed.
    public mutating func allowsRequest(at now: ContinuousClock.Instant) -> (allowed: Bool, transition: Transition?) {
        guard configuration.isEnabled else { return (true, nil) }
        switch state {
        case .closed, .halfOpen:
            return (true, nil)
        case .open(let until):
            guard now >= until else { return (false, nil) }
            state = .halfOpen(consecutiveSuccesses: 0)
            return (true, .halfOpened)
        }
    }

    /// The worker answered (any status below 500).
    public mutating func recordSuccess() -> Transition? {
        switch state {
        case .closed:
            state = .closed(consecutiveFailures: 0)
            return nil
        case .halfOpen(let successes):
            if successes + 1 >= configuration.successThreshold {
                state = .closed(consecutiveFailures: 0)
                return .closed
            }
            state = .halfOpen(consecutiveSuccesses: successes + 1)
            return nil
        case .open:
            // A request admitted before the breaker opened; it changes nothing.
            return nil
        }
    }

    /// The worker failed: transport error or 5xx.
    public mutating func recordFailure(at now: ContinuousClock.Instant) -> Transition? {
        guard configuration.isEnabled else { return nil }
        switch state {
        case .closed(let failures):
            if failures + 1 >= configuration.failureThreshold {
                state = .open(until: now + configuration.openDuration)
                return .opened
            }
            state = .closed(consecutiveFailures: failures + 1)
            return nil
        case .halfOpen:
            state = .open(until: now + configuration.openDuration)
            return .opened
        case .open:
            return nil
        }
    }
}
