import Testing
import GatewayCore

private func seconds(_ d: Duration) -> Double { d.seconds }

private func expectClose(_ actual: Duration, _ expected: Double, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(abs(actual.seconds - expected) < 1e-9, "\(actual) is not \(expected)s", sourceLocation: sourceLocation)
}

/// A generator that always yields the same word (so `Double.random` is fixed).
private struct FixedGenerator: RandomNumberGenerator {
    let value: UInt64
    mutating func next() -> UInt64 { value }
}

@Suite("Backoff")
struct BackoffTests {
    @Test func growsExponentiallyUntilTheCap() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(10), multiplier: 2, jitter: 0)
        let expected: [Double] = [1, 2, 4, 8, 10, 10, 10]
        for (attempt, value) in expected.enumerated() {
            for unit in [0.0, 0.25, 0.5, 0.999, 1.0] {
                expectClose(backoff.delay(attempt: attempt, unit: unit), value)
            }
        }
    }

    @Test func otherMultipliers() {
        let triple = Backoff(initial: .milliseconds(100), maximum: .seconds(100), multiplier: 3, jitter: 0)
        expectClose(triple.delay(attempt: 0, unit: 0.5), 0.1)
        expectClose(triple.delay(attempt: 1, unit: 0.5), 0.3)
        expectClose(triple.delay(attempt: 4, unit: 0.5), 8.1)
        let flat = Backoff(initial: .seconds(2), maximum: .seconds(5), multiplier: 1, jitter: 0)
        for attempt in 0..<10 { expectClose(flat.delay(attempt: attempt, unit: 0.5), 2) }
    }

    @Test func jitterBoundsBelowTheCap() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(100), multiplier: 2, jitter: 0.5)
        // attempt 2: base 4 s, spread to [2, 6].
        expectClose(backoff.delay(attempt: 2, unit: 0), 2)
        expectClose(backoff.delay(attempt: 2, unit: 0.5), 4)
        expectClose(backoff.delay(attempt: 2, unit: 1), 6)
        expectClose(backoff.delay(attempt: 0, unit: 0), 0.5)
        expectClose(backoff.delay(attempt: 0, unit: 1), 1.5)
    }

    @Test func jitterNeverExceedsTheMaximum() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(10), multiplier: 2, jitter: 0.5)
        // At the cap: the low end is spread down, the high end is held at the maximum.
        expectClose(backoff.delay(attempt: 10, unit: 0), 5)
        expectClose(backoff.delay(attempt: 10, unit: 1), 10)
        for attempt in 0..<40 {
            let base = min(pow2(attempt), 10)
            for step in 0...20 {
                let unit = Double(step) / 20
                let d = backoff.delay(attempt: attempt, unit: unit).seconds
                #expect(d >= base * 0.5 - 1e-9, "attempt \(attempt) unit \(unit): \(d)")
                #expect(d <= min(base * 1.5, 10) + 1e-9, "attempt \(attempt) unit \(unit): \(d)")
            }
        }
    }

    @Test func jitterIsMonotonicInTheUnit() {
        let backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(5), multiplier: 2, jitter: 0.2)
        for attempt in 0..<8 {
            var previous = -1.0
            for step in 0...10 {
                let d = backoff.delay(attempt: attempt, unit: Double(step) / 10).seconds
                #expect(d >= previous)
                previous = d
            }
        }
    }

    @Test func fullJitter() {
        let backoff = Backoff(initial: .seconds(4), maximum: .seconds(100), multiplier: 2, jitter: 1)
        expectClose(backoff.delay(attempt: 0, unit: 0), 0)
        expectClose(backoff.delay(attempt: 0, unit: 1), 8)
    }

    @Test func unitOutsideZeroOneIsClamped() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(100), multiplier: 2, jitter: 0.5)
        #expect(backoff.delay(attempt: 3, unit: -7) == backoff.delay(attempt: 3, unit: 0))
        #expect(backoff.delay(attempt: 3, unit: 42) == backoff.delay(attempt: 3, unit: 1))
    }

    @Test func negativeAttemptIsTheFirst() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(100), multiplier: 2, jitter: 0)
        #expect(backoff.delay(attempt: -5, unit: 0.5) == backoff.delay(attempt: 0, unit: 0.5))
    }

    @Test func hugeAttemptsStayAtTheMaximum() {
        let backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(5), multiplier: 2, jitter: 0)
        for attempt in [63, 64, 1_000, 1_100, 100_000, Int(Int32.max)] {
            expectClose(backoff.delay(attempt: attempt, unit: 0.5), 5)
        }
    }

    @Test func initClampsItsInputs() {
        let b = Backoff(initial: .seconds(3), maximum: .seconds(1), multiplier: 0.5, jitter: 7)
        #expect(b.maximum == .seconds(3))
        #expect(b.multiplier == 1)
        #expect(b.jitter == 1)
        #expect(Backoff(initial: .seconds(1), maximum: .seconds(2), jitter: -1).jitter == 0)
    }

    @Test func randomDelaysStayInBounds() {
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(30), multiplier: 2, jitter: 0.25)
        for attempt in 0..<10 {
            let base = min(pow2(attempt), 30)
            for _ in 0..<50 {
                let d = backoff.delay(attempt: attempt).seconds
                #expect(d >= base * 0.75 - 1e-9 && d <= min(base * 1.25, 30) + 1e-9)
            }
        }
        var low = FixedGenerator(value: 0)
        expectClose(backoff.delay(attempt: 1, using: &low), 1.5)
        var high = FixedGenerator(value: .max)
        let top = backoff.delay(attempt: 1, using: &high).seconds
        #expect(top > 2.49 && top <= 2.5)
    }

    @Test func durationSeconds() {
        #expect(Duration.seconds(3).seconds == 3)
        #expect(Duration.milliseconds(1500).seconds == 1.5)
        #expect(Duration.zero.seconds == 0)
    }

    /// A zero initial delay (retry at once) must not crash however many attempts pass.
    @Test func zeroInitialDelayNeverCrashes() async {
        await #expect(processExitsWith: .success) {
            let backoff = Backoff(initial: .zero, maximum: .seconds(1), multiplier: 2, jitter: 0.1)
            for attempt in [0, 10, 1_023, 1_024, 1_100, 5_000] {
                precondition(backoff.delay(attempt: attempt, unit: 0.5) == .zero)
            }
        }
    }

    /// `delay(attempt:)` takes any Int; the largest ones must not trap.
    @Test func maximalAttemptNeverCrashes() async {
        await #expect(processExitsWith: .success) {
            let backoff = Backoff(initial: .seconds(1), maximum: .seconds(5), multiplier: 2, jitter: 0)
            precondition(backoff.delay(attempt: .max, unit: 0.5) == .seconds(5))
        }
    }
}

private func pow2(_ n: Int) -> Double {
    var r = 1.0
    for _ in 0..<n { r *= 2 }
    return r
}
