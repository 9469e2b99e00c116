/// The health of one worker as seen by active (and, later, passive) checks.
///
/// A healthy worker turns unhealthy after `failure` consecutive failed probes;
/// an unhealthy one turns healthy after `success` consecutive good probes. A
/// connection that is refused outright is proof enough: `connectionRefused()`
/// makes the worker unhealthy at once instead of waiting out the threshold.
public struct HealthStateMachine: Sendable, Equatable {
    public struct Thresholds: Sendable, Equatable {
        public var failure: Int
        public var success: Int

        public init(failure: Int, success: Int) {
            self.failure = max(failure, 1)
            self.success = max(success, 1)
        }
    }

    /// A change of health that callers act on (routing, logs, metrics).
    public enum Transition: Sendable, Equatable {
        case becameHealthy
        case becameUnhealthy
    }

    private enum State: Sendable, Equatable {
        case healthy(consecutiveFailures: Int)
        case unhealthy(consecutiveSuccesses: Int)
    }

    private var state: State

    public init(healthy: Bool) {
        state = healthy ? .healthy(consecutiveFailures: 0) : .unhealthy(consecutiveSuccesses: 0)
    }

    public var isHealthy: Bool {
        if case .healthy = state { return true }
        return false
    }

    /// A probe answered as expected.
    public mutating func probeSucceeded(_ thresholds: Thresholds) -> Transition? {
        switch state {
        case .healthy:
            state = .healthy(consecutiveFailures: 0)
            return nil
        case .unhealthy(let successes):
            if successes + 1 >= thresholds.success {
                state = .healthy(consecutiveFailures: 0)
                return .becameHealthy
            }
            state = .unhealthy(consecutiveSuccesses: successes + 1)
            return nil
        }
    }

    /// A probe failed (error status, timeout, bad answer).
    public mutating func probeFailed(_ thresholds: Thresholds) -> Transition? {
        switch state {
        case .healthy(let failures):
            if failures + 1 >= thresholds.failure {
                state = .unhealthy(consecutiveSuccesses: 0)
                return .becameUnhealthy
            }
            state = .healthy(consecutiveFailures: failures + 1)
            return nil
        case .unhealthy:
            state = .unhealthy(consecutiveSuccesses: 0)
            return nil
        }
    }

    /// Nothing listens at the worker's address: unhealthy now, whatever the threshold.
    public mutating func connectionRefused() -> Transition? {
        switch state {
        case .healthy:
            state = .unhealthy(consecutiveSuccesses: 0)
            return .becameUnhealthy
        case .unhealthy:
            state = .unhealthy(consecutiveSuccesses: 0)
            return nil
        }
    }

    /// Forces a state (a worker that just passed its registration probe is healthy).
    public mutating func reset(healthy: Bool) {
        state = healthy ? .healthy(consecutiveFailures: 0) : .unhealthy(consecutiveSuccesses: 0)
    }
}
