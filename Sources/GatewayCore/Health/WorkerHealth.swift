/// The circuit breaker's settings and the names routing, the API and metrics use
/// for its states. Its state machine is part of ``WorkerHealth``.
public enum CircuitBreaker {
    /// `--cb-*` settings, the same for every worker.
    public struct Configuration: Sendable, Equatable {
        public var failureThreshold: Int
        public var successThreshold: Int
        public var openDuration: Duration
        /// False: the breaker never opens.
        public var isEnabled: Bool

        public init(failureThreshold: Int = 10, successThreshold: Int = 3, openDuration: Duration = .seconds(60), isEnabled: Bool = true) {
            self.failureThreshold = min(max(failureThreshold, 1), WorkerHealth.maxCount)
            self.successThreshold = min(max(successThreshold, 1), WorkerHealth.maxCount)
            self.openDuration = openDuration
            self.isEnabled = isEnabled
        }
    }

    /// The breaker's state as shown to operators (`circuit_breaker` in WorkerInfo).
    public enum State: String, Sendable, Equatable {
        case closed, open
        case halfOpen = "half_open"
    }

    /// A change of the breaker's state (logs and the transitions metric).
    public enum Transition: Sendable, Equatable {
        case opened, halfOpened, closed
    }
}

/// Everything that decides whether a worker is healthy: what its active health
/// checks say, and its circuit breaker fed by the requests sent to it.
///
/// **Checks.** Passing workers start failing after `failureThreshold` consecutive
/// failed probes; failing ones pass again after `successThreshold` good probes. A
/// refused connection (nothing listens) fails the checks at once, unless checks
/// are disabled (then nothing could ever pass them again; the breaker handles it).
///
/// **Breaker.** Closed: requests flow; `failureThreshold` consecutive transport
/// errors or 5xx answers open it. Open: no requests until `openDuration` has passed,
/// then half-open. Half-open: requests flow as trials; `successThreshold` consecutive
/// successes close it, any failure opens it again. A 4xx proves the worker answers: a
/// success. **A passing active check moves an open breaker to half-open at once**
/// (Envoy's default): a worker that crashed under load and came back takes trial
/// traffic after its next good probe instead of sitting out the whole open time.
///
/// Pure: time comes in as arguments. A value fits in 64 bits (``bits``), so the
/// worker's ``WorkerHandle`` keeps it in one atomic word: routing reads it without a
/// lock on every request and every event is a compare-and-swap of the whole state.
/// There is no second copy of any part of it anywhere.
public struct WorkerHealth: Sendable, Equatable {
    /// The active-check thresholds of one worker (its `health_check` settings).
    public struct CheckPolicy: Sendable, Equatable {
        public var failureThreshold: Int
        public var successThreshold: Int
        /// True: the worker is never probed.
        public var checksDisabled: Bool

        public init(failureThreshold: Int, successThreshold: Int, checksDisabled: Bool = false) {
            self.failureThreshold = min(max(failureThreshold, 1), WorkerHealth.maxCount)
            self.successThreshold = min(max(successThreshold, 1), WorkerHealth.maxCount)
            self.checksDisabled = checksDisabled
        }
    }

    /// A change of what the active checks say.
    public enum CheckTransition: Sendable, Equatable {
        case becameHealthy
        case becameUnhealthy
    }

    /// What one event changed.
    public struct Change: Sendable, Equatable {
        public var checks: CheckTransition?
        public var breaker: CircuitBreaker.Transition?

        public init(checks: CheckTransition? = nil, breaker: CircuitBreaker.Transition? = nil) {
            self.checks = checks
            self.breaker = breaker
        }

        public static let none = Change()
    }

    private enum Checks: Sendable, Equatable {
        case passing(consecutiveFailures: Int)
        case failing(consecutiveSuccesses: Int)
    }

    private enum Breaker: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        /// Milliseconds on ``WorkerHealth/clockMillis(_:)``'s scale.
        case open(untilMillis: Int64)
        case halfOpen(consecutiveSuccesses: Int)
    }

    private var checks: Checks
    private var breaker: Breaker

    /// A worker whose checks pass (`passing`) or fail, with a closed breaker.
    public init(passing: Bool) {
        checks = passing ? .passing(consecutiveFailures: 0) : .failing(consecutiveSuccesses: 0)
        breaker = .closed(consecutiveFailures: 0)
    }

    // MARK: Reading

    /// Whether the active checks pass (the worker's `status` is `ready`, not `not_ready`).
    public var checksPass: Bool {
        if case .passing = checks { return true }
        return false
    }

    /// The breaker's state at `now` (an open breaker whose time is up reads as half-open).
    public func breakerState(at now: ContinuousClock.Instant) -> CircuitBreaker.State {
        switch breaker {
        case .closed: return .closed
        case .halfOpen: return .halfOpen
        case .open(let until): return Self.clockMillis(now) >= until ? .halfOpen : .open
        }
    }

    /// Whether the breaker would let a request through at `now`.
    public func breakerLetsThrough(at now: ContinuousClock.Instant) -> Bool {
        breakerState(at: now) != .open
    }

    // MARK: Active checks

    /// A probe answered as expected. Also half-opens an open breaker.
    public mutating func probeSucceeded(_ policy: CheckPolicy) -> Change {
        var change = Change()
        switch checks {
        case .passing:
            checks = .passing(consecutiveFailures: 0)
        case .failing(let successes):
            if successes + 1 >= policy.successThreshold {
                checks = .passing(consecutiveFailures: 0)
                change.checks = .becameHealthy
            } else {
                checks = .failing(consecutiveSuccesses: successes + 1)
            }
        }
        if case .open = breaker {
            breaker = .halfOpen(consecutiveSuccesses: 0)
            change.breaker = .halfOpened
        }
        return change
    }

    /// A probe failed (error status, timeout, bad answer).
    public mutating func probeFailed(_ policy: CheckPolicy) -> Change {
        switch checks {
        case .passing(let failures):
            if failures + 1 >= policy.failureThreshold {
                checks = .failing(consecutiveSuccesses: 0)
                return Change(checks: .becameUnhealthy)
            }
            checks = .passing(consecutiveFailures: failures + 1)
        case .failing:
            checks = .failing(consecutiveSuccesses: 0)
        }
        return .none
    }

    /// Nothing listens at the worker's address (a probe or a request was refused):
    /// the checks fail now, whatever the threshold. Ignored when checks are disabled.
    public mutating func connectionRefused(_ policy: CheckPolicy) -> Change {
        guard !policy.checksDisabled else { return .none }
        let wasPassing = checksPass
        checks = .failing(consecutiveSuccesses: 0)
        return Change(checks: wasPassing ? .becameUnhealthy : nil)
    }

    /// Forces what the checks say (a worker that just passed its registration probe
    /// passes; one whose checks were just disabled passes too). The breaker is kept.
    public mutating func setChecks(passing: Bool) {
        checks = passing ? .passing(consecutiveFailures: 0) : .failing(consecutiveSuccesses: 0)
    }

    // MARK: Requests (the breaker)

    /// Whether a request may go to the worker at `now`; moves an open breaker whose
    /// time is up to half-open.
    public mutating func admitRequest(at now: ContinuousClock.Instant, _ configuration: CircuitBreaker.Configuration) -> (allowed: Bool, transition: CircuitBreaker.Transition?) {
        guard configuration.isEnabled, case .open(let until) = breaker else { return (true, nil) }
        guard Self.clockMillis(now) >= until else { return (false, nil) }
        breaker = .halfOpen(consecutiveSuccesses: 0)
        return (true, .halfOpened)
    }

    /// The worker answered (any status below 500).
    public mutating func requestSucceeded(_ configuration: CircuitBreaker.Configuration) -> CircuitBreaker.Transition? {
        switch breaker {
        case .closed:
            breaker = .closed(consecutiveFailures: 0)
            return nil
        case .halfOpen(let successes):
            if successes + 1 >= configuration.successThreshold {
                breaker = .closed(consecutiveFailures: 0)
                return .closed
            }
            breaker = .halfOpen(consecutiveSuccesses: successes + 1)
            return nil
        case .open:
            // A request admitted before the breaker opened; it changes nothing.
            return nil
        }
    }

    /// The worker failed a request: transport error or 5xx.
    public mutating func requestFailed(at now: ContinuousClock.Instant, _ configuration: CircuitBreaker.Configuration) -> CircuitBreaker.Transition? {
        guard configuration.isEnabled else { return nil }
        switch breaker {
        case .closed(let failures):
            if failures + 1 >= configuration.failureThreshold {
                breaker = .open(untilMillis: Self.openUntil(now, configuration))
                return .opened
            }
            breaker = .closed(consecutiveFailures: failures + 1)
            return nil
        case .halfOpen:
            breaker = .open(untilMillis: Self.openUntil(now, configuration))
            return .opened
        case .open:
            return nil
        }
    }

    private static func openUntil(_ now: ContinuousClock.Instant, _ configuration: CircuitBreaker.Configuration) -> Int64 {
        let (seconds, attoseconds) = configuration.openDuration.components
        // Rounded up: an open time is never cut short.
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return min(clockMillis(now) + max(millis, 0), payloadMask)
    }

    // MARK: Encoding

    /// Counters are kept below this (thresholds are capped at it).
    public static let maxCount = (1 << 20) - 1

    // Layout: bits 0-39 the breaker's payload (a count, or its open-until time in
    // ms), 40-41 the breaker's kind, 42-61 the checks' count, 62 checks failing.
    private static let payloadMask: Int64 = (1 << 40) - 1
    private static let checkCountShift: UInt64 = 42
    private static let breakerKindShift: UInt64 = 40

    /// The state as one word (what ``WorkerHandle`` stores).
    public var bits: UInt64 {
        var word: UInt64
        switch breaker {
        case .closed(let failures): word = UInt64(failures)
        case .open(let until): word = UInt64(until) | 1 << Self.breakerKindShift
        case .halfOpen(let successes): word = UInt64(successes) | 2 << Self.breakerKindShift
        }
        switch checks {
        case .passing(let failures): word |= UInt64(failures) << Self.checkCountShift
        case .failing(let successes): word |= UInt64(successes) << Self.checkCountShift | 1 << 62
        }
        return word
    }

    /// The state a word of ``bits`` holds.
    public init(bits: UInt64) {
        let payload = Int64(bitPattern: bits) & Self.payloadMask
        switch (bits >> Self.breakerKindShift) & 3 {
        case 1: breaker = .open(untilMillis: payload)
        case 2: breaker = .halfOpen(consecutiveSuccesses: Int(payload))
        default: breaker = .closed(consecutiveFailures: Int(payload))
        }
        let count = Int((bits >> Self.checkCountShift) & UInt64(Self.maxCount))
        checks = bits & (1 << 62) != 0 ? .failing(consecutiveSuccesses: count) : .passing(consecutiveFailures: count)
    }

    /// Whether a state word lets a request through at `now` without changing anything
    /// (nil: the breaker is open and its time is up, so admitting changes it). The
    /// per-request fast path: a mask and a compare; the clock is read only when open.
    @inline(__always)
    static func admitsWithoutChange(bits: UInt64, at now: ContinuousClock.Instant) -> Bool? {
        guard (bits >> breakerKindShift) & 3 == 1 else { return true }
        return clockMillis(now) < Int64(bitPattern: bits) & payloadMask ? false : nil
    }

    /// `now` in milliseconds since a fixed origin of this process, the scale of the
    /// breaker's open-until time (40 bits hold 34 years of it).
    @inline(__always)
    static func clockMillis(_ now: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = (now - origin).components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    private static let origin = ContinuousClock.now - .seconds(1_000_000)
}
