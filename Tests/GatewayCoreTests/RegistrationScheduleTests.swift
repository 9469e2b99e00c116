import Testing
import GatewayCore

@Suite("RegistrationSchedule")
struct RegistrationScheduleTests {
    /// Any instant works as the origin: every call gets an explicit `at:`.
    let start = ContinuousClock.now
    let noJitter = Backoff(initial: .seconds(1), maximum: .seconds(4), multiplier: 2, jitter: 0)

    @Test func retriesWithGrowingDelaysThenGivesUpAtTheDeadline() throws {
        var schedule = RegistrationSchedule(startedAt: start, timeout: .seconds(10), backoff: noJitter)
        #expect(schedule.deadline == start + .seconds(10))
        var now = start
        var delays: [Duration] = []
        while true {
            let action = schedule.attemptFailed(reason: "connection refused", at: now, unit: 0.5)
            guard case .retry(let delay) = action else {
                guard case .giveUp(let message) = action else { Issue.record("unexpected \(action)"); return }
                #expect(message.contains("connection refused"), "\(message)")
                #expect(message.contains("5 attempts"), "\(message)")
                #expect(message.contains("10.0s"), "\(message)")
                break
            }
            #expect(delay > .zero)
            #expect(now + delay <= schedule.deadline, "a retry after \(delay) at \(now - start) would sleep past the deadline")
            delays.append(delay)
            now += delay
            #expect(schedule.mayAttempt(at: now))
            try #require(delays.count < 50, "never gave up")
        }
        // 1, 2, 4, then only the 3 s left until the deadline.
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(3)])
        #expect(now == schedule.deadline)
        #expect(schedule.failedAttempts == 5)
    }

    @Test func delaysGrowUntilTheCap() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0)
        var schedule = RegistrationSchedule(startedAt: start, timeout: .seconds(3600), backoff: backoff)
        var now = start
        var previous = Duration.zero
        for _ in 0..<20 {
            guard case .retry(let delay) = schedule.attemptFailed(reason: "x", at: now, unit: 0.5) else {
                Issue.record("gave up before the deadline")
                return
            }
            #expect(delay >= previous)
            #expect(delay <= .seconds(2))
            previous = delay
            now += delay
        }
        #expect(previous == .seconds(2))
    }

    @Test func neverSleepsPastTheDeadlineWhateverTheJitter() {
        let backoff = Backoff(initial: .milliseconds(300), maximum: .seconds(7), multiplier: 3, jitter: 0.9)
        for unit in [0.0, 0.3, 0.77, 1.0] {
            var schedule = RegistrationSchedule(startedAt: start, timeout: .milliseconds(12_345), backoff: backoff)
            var now = start
            var attempts = 0
            loop: while true {
                attempts += 1
                if attempts > 1000 { Issue.record("never gave up"); break }
                switch schedule.attemptFailed(reason: "timeout", at: now, unit: unit) {
                case .retry(let delay):
                    #expect(delay >= .zero)
                    #expect(now + delay <= schedule.deadline)
                    now += delay
                case .giveUp(let message):
                    #expect(message.contains("timeout"))
                    #expect(now >= schedule.deadline)
                    break loop
                }
            }
        }
    }

    @Test func aFailureAfterTheDeadlineGivesUpAtOnce() {
        var schedule = RegistrationSchedule(startedAt: start, timeout: .seconds(5), backoff: noJitter)
        let action = schedule.attemptFailed(reason: "HTTP 503 from /health", at: start + .seconds(6), unit: 0.5)
        guard case .giveUp(let message) = action else {
            Issue.record("expected giveUp, got \(action)")
            return
        }
        #expect(message.contains("HTTP 503 from /health"))
        #expect(message.contains("1 attempt)"), "\(message)")
        #expect(message.contains("6.0s"), "\(message)")
        #expect(schedule.failedAttempts == 1)
    }

    @Test func aFailureExactlyAtTheDeadlineGivesUp() {
        var schedule = RegistrationSchedule(startedAt: start, timeout: .seconds(5), backoff: noJitter)
        #expect(schedule.mayAttempt(at: start + .seconds(5)))
        let action = schedule.attemptFailed(reason: "refused", at: start + .seconds(5), unit: 0.5)
        guard case .giveUp = action else {
            Issue.record("expected giveUp, got \(action)")
            return
        }
    }

    @Test func mayAttempt() {
        let schedule = RegistrationSchedule(startedAt: start, timeout: .seconds(5), backoff: noJitter)
        #expect(schedule.mayAttempt(at: start))
        #expect(schedule.mayAttempt(at: start + .seconds(5)))
        #expect(!schedule.mayAttempt(at: start + .seconds(5) + .nanoseconds(1)))
    }

    @Test func zeroTimeoutGivesUpOnTheFirstFailure() {
        var schedule = RegistrationSchedule(startedAt: start, timeout: .zero, backoff: noJitter)
        guard case .giveUp(let message) = schedule.attemptFailed(reason: "nope", at: start, unit: 0) else {
            Issue.record("expected giveUp")
            return
        }
        #expect(message.hasSuffix("nope"))
    }

    @Test func defaultBackoff() {
        let b = RegistrationSchedule.defaultBackoff
        #expect(b.initial == .milliseconds(250))
        #expect(b.maximum == .seconds(5))
        #expect(b.delay(attempt: 0, unit: 0.5) == .milliseconds(250))
        #expect(b.delay(attempt: 100, unit: 1) <= .seconds(5))
    }
}
