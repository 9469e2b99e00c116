import Testing

@testable import GatewayCore

/// The combined state machine of a worker's health: active checks and circuit breaker,
/// driven by events.
@Suite("WorkerHealth")
struct WorkerHealthTests {
    static let thresholdPairs: [(Int, Int)] = (1...5).flatMap { f in (1...5).map { s in (f, s) } }
    let start = ContinuousClock.now

    static func policy(_ failure: Int, _ success: Int, disabled: Bool = false) -> WorkerHealth.CheckPolicy {
        .init(failureThreshold: failure, successThreshold: success, checksDisabled: disabled)
    }

    static func breaker(failures: Int = 3, successes: Int = 2, open: Duration = .seconds(10), enabled: Bool = true) -> CircuitBreaker.Configuration {
        .init(failureThreshold: failures, successThreshold: successes, openDuration: open, isEnabled: enabled)
    }

    // MARK: Active checks

    @Test(arguments: thresholdPairs)
    func checksFailExactlyAtTheFailureThreshold(failure: Int, success: Int) {
        let p = Self.policy(failure, success)
        var h = WorkerHealth(passing: true)
        for i in 1..<failure {
            #expect(h.probeFailed(p) == .none, "failure \(i) of \(failure)")
            #expect(h.checksPass)
        }
        #expect(h.probeFailed(p).checks == .becameUnhealthy)
        #expect(!h.checksPass)
        #expect(h.probeFailed(p) == .none)
    }

    @Test(arguments: thresholdPairs)
    func aSuccessResetsTheFailureCount(failure: Int, success: Int) {
        let p = Self.policy(failure, success)
        var h = WorkerHealth(passing: true)
        for _ in 0..<(failure - 1) { #expect(h.probeFailed(p) == .none) }
        #expect(h.probeSucceeded(p) == .none)
        for _ in 0..<(failure - 1) { #expect(h.probeFailed(p) == .none) }
        #expect(h.checksPass)
        #expect(h.probeFailed(p).checks == .becameUnhealthy)
    }

    @Test(arguments: thresholdPairs)
    func checksPassExactlyAtTheSuccessThreshold(failure: Int, success: Int) {
        let p = Self.policy(failure, success)
        var h = WorkerHealth(passing: false)
        for i in 1..<success {
            #expect(h.probeSucceeded(p) == .none, "success \(i) of \(success)")
            #expect(!h.checksPass)
        }
        #expect(h.probeSucceeded(p).checks == .becameHealthy)
        #expect(h.checksPass)
        // A failure in between restarts the count.
        for _ in 0..<(failure - 1) { _ = h.probeFailed(p) }
        #expect(h.probeFailed(p).checks == .becameUnhealthy)
        for _ in 0..<(success - 1) { _ = h.probeSucceeded(p) }
        #expect(h.probeFailed(p) == .none)
        for _ in 0..<(success - 1) { #expect(h.probeSucceeded(p) == .none) }
        #expect(h.probeSucceeded(p).checks == .becameHealthy)
    }

    @Test(arguments: thresholdPairs)
    func aRefusedConnectionFailsTheChecksAtOnce(failure: Int, success: Int) {
        let p = Self.policy(failure, success)
        var h = WorkerHealth(passing: true)
        for _ in 0..<(failure - 1) { _ = h.probeFailed(p) }
        #expect(h.connectionRefused(p).checks == .becameUnhealthy)
        #expect(h.connectionRefused(p) == .none)
        for _ in 0..<(success - 1) { _ = h.probeSucceeded(p) }
        #expect(h.connectionRefused(p) == .none)
        #expect(!h.checksPass)
        for _ in 0..<(success - 1) { #expect(h.probeSucceeded(p) == .none) }
        #expect(h.probeSucceeded(p).checks == .becameHealthy)
    }

    @Test("A refused connection changes nothing when checks are disabled (nothing would pass them again)")
    func refusedIgnoredWithoutChecks() {
        var h = WorkerHealth(passing: true)
        #expect(h.connectionRefused(Self.policy(3, 2, disabled: true)) == .none)
        #expect(h.checksPass)
    }

    @Test func thresholdsAreAtLeastOneAndBounded() {
        let p = Self.policy(0, -3)
        #expect(p.failureThreshold == 1 && p.successThreshold == 1)
        #expect(Self.policy(Int.max, 5).failureThreshold == WorkerHealth.maxCount)
        #expect(CircuitBreaker.Configuration(failureThreshold: 0, successThreshold: Int.max).failureThreshold == 1)
        var h = WorkerHealth(passing: true)
        #expect(h.probeFailed(p).checks == .becameUnhealthy)
        #expect(h.probeSucceeded(p).checks == .becameHealthy)
    }

    // MARK: Breaker

    @Test("Opens exactly at the failure threshold; a success in between resets the count")
    func opensAtThreshold() {
        let c = Self.breaker(failures: 3)
        var h = WorkerHealth(passing: true)
        #expect(h.requestFailed(at: start, c) == nil)
        #expect(h.requestFailed(at: start, c) == nil)
        #expect(h.requestSucceeded(c) == nil)
        #expect(h.requestFailed(at: start, c) == nil)
        #expect(h.requestFailed(at: start, c) == nil)
        #expect(h.breakerState(at: start) == .closed)
        #expect(h.requestFailed(at: start, c) == .opened)
        #expect(h.breakerState(at: start) == .open)
        #expect(h.admitRequest(at: start + .seconds(1), c).allowed == false)
        // The checks know nothing of it.
        #expect(h.checksPass)
    }

    @Test("Half-opens after the open duration; closes after the success threshold")
    func halfOpensAndCloses() {
        let c = Self.breaker(failures: 1, successes: 2, open: .seconds(5))
        var h = WorkerHealth(passing: true)
        #expect(h.requestFailed(at: start, c) == .opened)
        #expect(h.admitRequest(at: start + .seconds(4.9), c).allowed == false)
        #expect(h.breakerState(at: start + .seconds(5)) == .halfOpen)
        let (allowed, transition) = h.admitRequest(at: start + .seconds(5), c)
        #expect(allowed && transition == .halfOpened)
        #expect(h.requestSucceeded(c) == nil)
        #expect(h.breakerState(at: start + .seconds(5)) == .halfOpen)
        #expect(h.requestSucceeded(c) == .closed)
        #expect(h.breakerState(at: start + .seconds(5)) == .closed)
    }

    @Test("A failure while half-open opens it again for a full duration")
    func failureInHalfOpenReopens() {
        let c = Self.breaker(failures: 1, successes: 3, open: .seconds(5))
        var h = WorkerHealth(passing: true)
        _ = h.requestFailed(at: start, c)
        _ = h.admitRequest(at: start + .seconds(6), c)
        #expect(h.requestFailed(at: start + .seconds(6), c) == .opened)
        #expect(h.admitRequest(at: start + .seconds(10), c).allowed == false)
        #expect(h.admitRequest(at: start + .seconds(11), c).allowed)
    }

    @Test("A disabled breaker never opens")
    func disabledBreaker() {
        let c = Self.breaker(failures: 1, enabled: false)
        var h = WorkerHealth(passing: true)
        for _ in 0..<100 { #expect(h.requestFailed(at: start, c) == nil) }
        #expect(h.admitRequest(at: start, c).allowed)
        #expect(h.breakerState(at: start) == .closed)
    }

    // MARK: Both together

    @Test("A passing active check moves an open breaker to half-open at once (issue 16 D)")
    func passingProbeHalfOpensTheBreaker() {
        let c = Self.breaker(failures: 2, successes: 2, open: .seconds(60))
        let p = Self.policy(3, 2)
        var h = WorkerHealth(passing: true)
        _ = h.requestFailed(at: start, c)
        #expect(h.requestFailed(at: start, c) == .opened)
        #expect(h.breakerLetsThrough(at: start + .seconds(1)) == false)
        // The worker came back: its next probe passes, long before the open time is over.
        #expect(h.probeSucceeded(p) == WorkerHealth.Change(breaker: .halfOpened))
        #expect(h.breakerState(at: start + .seconds(1)) == .halfOpen)
        #expect(h.admitRequest(at: start + .seconds(1), c) == (true, nil))
        // Trials close it; a failed trial would open it again.
        #expect(h.requestSucceeded(c) == nil)
        #expect(h.requestSucceeded(c) == .closed)
        // A probe on a closed or half-open breaker changes nothing there.
        #expect(h.probeSucceeded(p) == .none)
    }

    @Test("A worker that failed its checks and whose breaker opened: the probe that heals it also half-opens the breaker")
    func recoveryFromBoth() {
        let c = Self.breaker(failures: 1, open: .seconds(60))
        let p = Self.policy(1, 2)
        var h = WorkerHealth(passing: true)
        #expect(h.requestFailed(at: start, c) == .opened)
        #expect(h.connectionRefused(p).checks == .becameUnhealthy)
        #expect(h.probeSucceeded(p) == WorkerHealth.Change(breaker: .halfOpened))
        #expect(!h.checksPass)
        #expect(h.probeSucceeded(p) == WorkerHealth.Change(checks: .becameHealthy))
        #expect(h.checksPass && h.breakerState(at: start) == .halfOpen)
        // A failed probe does not touch the breaker.
        #expect(h.probeFailed(p).breaker == nil)
        #expect(h.breakerState(at: start) == .halfOpen)
    }

    @Test("setChecks keeps the breaker; a fresh state closes it")
    func setChecksKeepsTheBreaker() {
        let c = Self.breaker(failures: 1)
        var h = WorkerHealth(passing: false)
        _ = h.requestFailed(at: start, c)
        h.setChecks(passing: true)
        #expect(h.checksPass && h.breakerState(at: start) == .open)
        h = WorkerHealth(passing: true)
        #expect(h.breakerState(at: start) == .closed)
    }

    // MARK: Encoding

    @Test("Every state survives its 64-bit encoding")
    func encodingRoundTrips() {
        let c = Self.breaker(failures: 5, successes: 4, open: .seconds(30))
        let p = Self.policy(6, 5)
        var h = WorkerHealth(passing: true)
        var seed: UInt64 = 0x2545_F491_4F6C_DD1D
        var now = start
        for step in 0..<3_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            now = now + .milliseconds(Int64((seed >> 40) % 5_000))
            switch (seed >> 33) % 7 {
            case 0: _ = h.probeSucceeded(p)
            case 1: _ = h.probeFailed(p)
            case 2: _ = h.connectionRefused(p)
            case 3: _ = h.admitRequest(at: now, c)
            case 4: _ = h.requestSucceeded(c)
            default: _ = h.requestFailed(at: now, c)
            }
            let decoded = WorkerHealth(bits: h.bits)
            #expect(decoded == h, "step \(step)")
            #expect(decoded.breakerState(at: now) == h.breakerState(at: now), "step \(step)")
            let fast = WorkerHealth.admitsWithoutChange(bits: h.bits, at: now)
            switch h.breakerState(at: now) {
            case .open: #expect(fast == false, "step \(step)")
            case .closed: #expect(fast == true, "step \(step)")
            case .halfOpen: #expect(fast != false, "step \(step)")
            }
        }
    }

    @Test("A long event sequence matches a reference model of both parts")
    func longSequenceMatchesAModel() {
        let c = Self.breaker(failures: 3, successes: 2, open: .seconds(10))
        let p = Self.policy(3, 2)
        var h = WorkerHealth(passing: true)
        // The model.
        var passing = true, checkCount = 0
        enum B { case closed(Int), open(ContinuousClock.Instant), half(Int) }
        var b = B.closed(0)
        var now = start
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for step in 0..<4_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            now = now + .milliseconds(Int64((seed >> 45) % 3_000))
            switch (seed >> 33) % 6 {
            case 0:
                let change = h.probeSucceeded(p)
                var expected = WorkerHealth.Change()
                if passing { checkCount = 0 } else {
                    checkCount += 1
                    if checkCount >= 2 { passing = true; checkCount = 0; expected.checks = .becameHealthy }
                }
                if case .open = b { b = .half(0); expected.breaker = .halfOpened }
                #expect(change == expected, "step \(step)")
            case 1:
                let change = h.probeFailed(p)
                var expected = WorkerHealth.Change()
                if passing {
                    checkCount += 1
                    if checkCount >= 3 { passing = false; checkCount = 0; expected.checks = .becameUnhealthy }
                } else { checkCount = 0 }
                #expect(change == expected, "step \(step)")
            case 2:
                let change = h.connectionRefused(p)
                #expect(change.checks == (passing ? .becameUnhealthy : nil), "step \(step)")
                passing = false
                checkCount = 0
            case 3:
                let (allowed, transition) = h.admitRequest(at: now, c)
                if case .open(let until) = b {
                    if now >= until { b = .half(0); #expect(allowed && transition == .halfOpened, "step \(step)") }
                    else { #expect(!allowed && transition == nil, "step \(step)") }
                } else { #expect(allowed && transition == nil, "step \(step)") }
            case 4:
                let transition = h.requestSucceeded(c)
                switch b {
                case .closed: b = .closed(0); #expect(transition == nil, "step \(step)")
                case .half(let s):
                    if s + 1 >= 2 { b = .closed(0); #expect(transition == .closed, "step \(step)") }
                    else { b = .half(s + 1); #expect(transition == nil, "step \(step)") }
                case .open: #expect(transition == nil, "step \(step)")
                }
            default:
                let transition = h.requestFailed(at: now, c)
                switch b {
                case .closed(let f):
                    if f + 1 >= 3 { b = .open(now + .seconds(10)); #expect(transition == .opened, "step \(step)") }
                    else { b = .closed(f + 1); #expect(transition == nil, "step \(step)") }
                case .half: b = .open(now + .seconds(10)); #expect(transition == .opened, "step \(step)")
                case .open: #expect(transition == nil, "step \(step)")
                }
            }
            #expect(h.checksPass == passing, "step \(step)")
            h = WorkerHealth(bits: h.bits)
        }
    }

    // MARK: The handle

    @Test("The worker handle keeps the state in one word: breaker and checks change together, reads are lock-free")
    func handle() {
        let handle = WorkerHandle(id: .random(), breaker: .init(failureThreshold: 2, successThreshold: 1, openDuration: .seconds(1)), passing: true)
        let p = Self.policy(3, 2)
        #expect(handle.breakerAllows(at: start).allowed)
        _ = handle.recordFailure(at: start)
        #expect(handle.breakerAllows(at: start).allowed)
        #expect(handle.recordFailure(at: start) == .opened)
        #expect(handle.breakerAllows(at: start + .milliseconds(999)).allowed == false)
        #expect(handle.breakerState(at: start) == .open)
        let later = handle.breakerAllows(at: start + .seconds(1))
        #expect(later.allowed && later.transition == .halfOpened)
        #expect(handle.recordSuccess() == .closed)
        #expect(handle.breakerState(at: start + .seconds(1)) == .closed)
        // A passing probe half-opens it; the transition is counted.
        _ = handle.recordFailure(at: start)
        _ = handle.recordFailure(at: start)
        #expect(handle.recordProbe(succeeded: true, p) == WorkerHealth.Change(breaker: .halfOpened))
        #expect(handle.breakerTransitions == (opened: 2, halfOpened: 2, closed: 1))
        #expect(handle.breakerAllows(at: start).allowed)
        #expect(handle.checksPass)
        handle.beginRequest()
        handle.beginRequest()
        handle.endRequest()
        #expect(handle.load == 1)
    }

    @Test("Concurrent breaker events from many tasks are all applied (compare-and-swap)")
    func concurrentEvents() async {
        let handle = WorkerHandle(id: .random(), breaker: .init(failureThreshold: 1_000_000, successThreshold: 1, openDuration: .seconds(1)), passing: true)
        let start = self.start
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<1_000 { _ = handle.recordFailure(at: start) } }
            }
        }
        // 8,000 consecutive failures counted, none lost to a race.
        var h = handle.healthNow
        #expect(h.requestFailed(at: start, .init(failureThreshold: 8_001, successThreshold: 1)) == .opened)
    }
}
