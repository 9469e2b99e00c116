import Testing

@testable import GatewayCore

@Suite("Circuit breaker")
struct CircuitBreakerTests {
    let start = ContinuousClock.now

    func breaker(failures: Int = 3, successes: Int = 2, open: Duration = .seconds(10), enabled: Bool = true) -> CircuitBreaker {
        CircuitBreaker(configuration: .init(failureThreshold: failures, successThreshold: successes, openDuration: open, isEnabled: enabled))
    }

    @Test("Opens exactly at the failure threshold; a success in between resets the count")
    func opensAtThreshold() {
        var b = breaker(failures: 3)
        #expect(b.recordFailure(at: start) == nil)
        #expect(b.recordFailure(at: start) == nil)
        #expect(b.recordSuccess() == nil)
        #expect(b.recordFailure(at: start) == nil)
        #expect(b.recordFailure(at: start) == nil)
        #expect(b.state(at: start) == .closed)
        #expect(b.recordFailure(at: start) == .opened)
        #expect(b.state(at: start) == .open)
        #expect(b.allowsRequest(at: start + .seconds(1)).allowed == false)
    }

    @Test("Half-opens after the open duration; closes after the success threshold")
    func halfOpensAndCloses() {
        var b = breaker(failures: 1, successes: 2, open: .seconds(5))
        #expect(b.recordFailure(at: start) == .opened)
        #expect(b.allowsRequest(at: start + .seconds(4.9)).allowed == false)
        #expect(b.state(at: start + .seconds(5)) == .halfOpen)
        let (allowed, transition) = b.allowsRequest(at: start + .seconds(5))
        #expect(allowed)
        #expect(transition == .halfOpened)
        #expect(b.recordSuccess() == nil)
        #expect(b.state(at: start + .seconds(5)) == .halfOpen)
        #expect(b.recordSuccess() == .closed)
        #expect(b.state(at: start + .seconds(5)) == .closed)
    }

    @Test("A failure while half-open opens it again for a full duration")
    func failureInHalfOpenReopens() {
        var b = breaker(failures: 1, successes: 3, open: .seconds(5))
        _ = b.recordFailure(at: start)
        _ = b.allowsRequest(at: start + .seconds(6))
        #expect(b.recordFailure(at: start + .seconds(6)) == .opened)
        #expect(b.allowsRequest(at: start + .seconds(10)).allowed == false)
        #expect(b.allowsRequest(at: start + .seconds(11)).allowed)
    }

    @Test("A disabled breaker never opens")
    func disabled() {
        var b = breaker(failures: 1, enabled: false)
        for _ in 0..<100 { #expect(b.recordFailure(at: start) == nil) }
        #expect(b.allowsRequest(at: start).allowed)
        #expect(b.state(at: start) == .closed)
    }

    @Test("The worker handle mirrors the breaker lock-free")
    func handle() {
        let handle = WorkerHandle(id: .random(), breaker: .init(failureThreshold: 2, successThreshold: 1, openDuration: .seconds(1)))
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
        handle.beginRequest()
        handle.beginRequest()
        handle.endRequest()
        #expect(handle.load == 1)
    }
}
