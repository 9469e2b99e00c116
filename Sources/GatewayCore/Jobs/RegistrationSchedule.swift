/// When a registration job tries again and when it gives up.
///
/// The job probes the worker; each failure asks this value what to do next: retry
/// after a backoff delay, or fail because the next attempt would start after the
/// startup deadline. Pure: time and randomness come in as arguments.
public struct RegistrationSchedule: Sendable {
    public enum Action: Sendable, Equatable {
        /// Probe again after this delay.
        case retry(after: Duration)
        /// Stop; the message says why (for `job_status.message`).
        case giveUp(message: String)
    }

    public let startedAt: ContinuousClock.Instant
    public let deadline: ContinuousClock.Instant
    public let backoff: Backoff
    public private(set) var failedAttempts = 0

    public init(startedAt: ContinuousClock.Instant, timeout: Duration, backoff: Backoff) {
        self.startedAt = startedAt
        self.deadline = startedAt + timeout
        self.backoff = backoff
    }

    /// The default backoff for registration probes: 250 ms doubling to 5 s.
    public static let defaultBackoff = Backoff(initial: .milliseconds(250), maximum: .seconds(5), multiplier: 2, jitter: 0.2)

    /// Records a failed probe at `now` and decides what comes next.
    public mutating func attemptFailed(reason: String, at now: ContinuousClock.Instant, unit: Double) -> Action {
        failedAttempts += 1
        let remaining = deadline - now
        let delay = backoff.delay(attempt: failedAttempts - 1, unit: unit)
        guard remaining > .zero else {
            return .giveUp(message: giveUpMessage(reason: reason, now: now))
        }
        // Never sleep past the deadline: one last attempt right at it.
        return .retry(after: min(delay, remaining))
    }

    /// Whether a new attempt may start at `now`.
    public func mayAttempt(at now: ContinuousClock.Instant) -> Bool {
        now <= deadline
    }

    private func giveUpMessage(reason: String, now: ContinuousClock.Instant) -> String {
        let waited = (now - startedAt).seconds
        let rounded = (waited * 10).rounded() / 10
        return "worker did not become ready within the startup timeout (\(rounded)s, \(failedAttempts) attempt\(failedAttempts == 1 ? "" : "s")): \(reason)"
    }
}
