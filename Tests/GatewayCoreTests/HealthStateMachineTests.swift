import Testing
import GatewayCore

@Suite("HealthStateMachine")
struct HealthStateMachineTests {
    static let thresholdPairs: [(Int, Int)] = (1...5).flatMap { f in (1...5).map { s in (f, s) } }

    @Test(arguments: thresholdPairs)
    func becomesUnhealthyExactlyAtTheFailureThreshold(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: true)
        for i in 1..<failure {
            #expect(m.probeFailed(t) == nil, "failure \(i) of \(failure)")
            #expect(m.isHealthy)
        }
        #expect(m.probeFailed(t) == .becameUnhealthy)
        #expect(!m.isHealthy)
        // Further failures report nothing new.
        #expect(m.probeFailed(t) == nil)
        #expect(!m.isHealthy)
    }

    @Test(arguments: thresholdPairs)
    func aSuccessResetsTheFailureCount(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: true)
        for _ in 0..<(failure - 1) { #expect(m.probeFailed(t) == nil) }
        #expect(m.probeSucceeded(t) == nil)
        #expect(m.isHealthy)
        for _ in 0..<(failure - 1) { #expect(m.probeFailed(t) == nil) }
        #expect(m.isHealthy)
        #expect(m.probeFailed(t) == .becameUnhealthy)
    }

    @Test(arguments: thresholdPairs)
    func becomesHealthyExactlyAtTheSuccessThreshold(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: false)
        #expect(!m.isHealthy)
        for i in 1..<success {
            #expect(m.probeSucceeded(t) == nil, "success \(i) of \(success)")
            #expect(!m.isHealthy)
        }
        #expect(m.probeSucceeded(t) == .becameHealthy)
        #expect(m.isHealthy)
        #expect(m.probeSucceeded(t) == nil)
        // And back down takes the full failure threshold again.
        for _ in 0..<(failure - 1) { #expect(m.probeFailed(t) == nil) }
        #expect(m.probeFailed(t) == .becameUnhealthy)
    }

    @Test(arguments: thresholdPairs)
    func aFailureResetsTheSuccessCount(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: false)
        for _ in 0..<(success - 1) { #expect(m.probeSucceeded(t) == nil) }
        #expect(m.probeFailed(t) == nil)
        #expect(!m.isHealthy)
        for _ in 0..<(success - 1) { #expect(m.probeSucceeded(t) == nil) }
        #expect(!m.isHealthy)
        #expect(m.probeSucceeded(t) == .becameHealthy)
    }

    @Test(arguments: thresholdPairs)
    func connectionRefusedIsImmediate(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: true)
        #expect(m.connectionRefused() == .becameUnhealthy)
        #expect(!m.isHealthy)
        #expect(m.connectionRefused() == nil)

        // While unhealthy it also restarts the success count.
        for _ in 0..<(success - 1) { #expect(m.probeSucceeded(t) == nil) }
        #expect(m.connectionRefused() == nil)
        for _ in 0..<(success - 1) { #expect(m.probeSucceeded(t) == nil) }
        #expect(!m.isHealthy)
        #expect(m.probeSucceeded(t) == .becameHealthy)

        // Partway to the failure threshold, a refusal still acts at once.
        for _ in 0..<(failure - 1) { _ = m.probeFailed(t) }
        #expect(m.isHealthy)
        #expect(m.connectionRefused() == .becameUnhealthy)
    }

    @Test(arguments: thresholdPairs)
    func resetClearsCounters(failure: Int, success: Int) {
        let t = HealthStateMachine.Thresholds(failure: failure, success: success)
        var m = HealthStateMachine(healthy: true)
        for _ in 0..<(failure - 1) { _ = m.probeFailed(t) }
        m.reset(healthy: true)
        #expect(m.isHealthy)
        for _ in 0..<(failure - 1) { #expect(m.probeFailed(t) == nil) }
        #expect(m.probeFailed(t) == .becameUnhealthy)

        for _ in 0..<(success - 1) { _ = m.probeSucceeded(t) }
        m.reset(healthy: false)
        #expect(!m.isHealthy)
        for _ in 0..<(success - 1) { #expect(m.probeSucceeded(t) == nil) }
        #expect(m.probeSucceeded(t) == .becameHealthy)

        m.reset(healthy: false)
        #expect(!m.isHealthy)
        #expect(m == HealthStateMachine(healthy: false))
        m.reset(healthy: true)
        #expect(m == HealthStateMachine(healthy: true))
    }

    @Test func thresholdsAreAtLeastOne() {
        let t = HealthStateMachine.Thresholds(failure: 0, success: -3)
        #expect(t.failure == 1)
        #expect(t.success == 1)
        var m = HealthStateMachine(healthy: true)
        #expect(m.probeFailed(t) == .becameUnhealthy)
        #expect(m.probeSucceeded(t) == .becameHealthy)
    }

    @Test func longRandomishSequenceMatchesAModel() {
        // A simple reference model, driven by a fixed pseudo-random sequence.
        let t = HealthStateMachine.Thresholds(failure: 3, success: 2)
        var m = HealthStateMachine(healthy: true)
        var healthy = true
        var failures = 0
        var successes = 0
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for step in 0..<2_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let kind = (seed >> 33) % 5
            let expected: HealthStateMachine.Transition?
            let actual: HealthStateMachine.Transition?
            switch kind {
            case 0, 1:
                actual = m.probeSucceeded(t)
                if healthy { failures = 0; expected = nil } else {
                    successes += 1
                    if successes >= 2 { healthy = true; failures = 0; expected = .becameHealthy } else { expected = nil }
                }
            case 2, 3:
                actual = m.probeFailed(t)
                if healthy {
                    failures += 1
                    if failures >= 3 { healthy = false; successes = 0; expected = .becameUnhealthy } else { expected = nil }
                } else { successes = 0; expected = nil }
            default:
                actual = m.connectionRefused()
                expected = healthy ? .becameUnhealthy : nil
                healthy = false
                successes = 0
            }
            #expect(actual == expected, "step \(step)")
            #expect(m.isHealthy == healthy, "step \(step)")
        }
    }
}
