import Testing

@testable import GatewayCore

/// The retry policy, event by event, with no socket and no clock but the one passed in.
@Suite("Attempt state machine")
struct AttemptStateMachineTests {
    static let a = WorkerID("00000000-0000-4000-8000-00000000000a")!
    static let b = WorkerID("00000000-0000-4000-8000-00000000000b")!
    static let c = WorkerID("00000000-0000-4000-8000-00000000000c")!
    static let now = ContinuousClock.now

    /// No jitter, 10 ms then 20 ms then 40 ms …
    static func machine(attempts: Int = 3, deadline: Duration = .seconds(60), whole: Int = 256 * 1024) -> AttemptStateMachine {
        AttemptStateMachine(
            configuration: .init(
                maxAttempts: attempts, backoff: Backoff(initial: .milliseconds(10), maximum: .seconds(1), multiplier: 2, jitter: 0), wholeAnswerLimit: whole
            ),
            deadline: now + deadline, seed: 1
        )
    }

    static let ok = AttemptStateMachine.AnswerHead(status: 200, contentLength: 10)

    @Test("A first answer of known small length is gathered whole, then delivered; the breaker records a success")
    func wholeAnswer() {
        var m = Self.machine()
        #expect(m.start() == .init(next: .choose(excluding: [])))
        #expect(m.chose(Self.a) == .init(next: .send(attempt: 0, isLastAttempt: false)))
        #expect(m.answered(Self.ok, now: Self.now) == .init(breaker: .success, next: .gatherWhole))
        #expect(m.gathered() == .init(next: .deliver))
        #expect(m.retries == 0)
    }

    @Test("Event streams, answers without a length and answers over the limit are relayed as they come")
    func relayed() {
        for head in [
            AttemptStateMachine.AnswerHead(status: 200, isEventStream: true, contentLength: 10),
            AttemptStateMachine.AnswerHead(status: 200),
            AttemptStateMachine.AnswerHead(status: 200, contentLength: 2048),
        ] {
            var m = Self.machine(whole: 1024)
            _ = m.start()
            _ = m.chose(Self.a)
            #expect(m.answered(head, now: Self.now).next == .relay)
            #expect(m.isRelaying)
            #expect(m.relayEnded().next == .stop)
        }
    }

    @Test("Retryable statuses are kept and retried on another worker after the backoff; the last attempt relays")
    func retryableStatus() {
        var m = Self.machine(attempts: 3)
        _ = m.start()
        _ = m.chose(Self.a)
        #expect(m.answered(.init(status: 503, contentLength: 5), now: Self.now) == .init(breaker: .failure, next: .keepAnswer))
        #expect(m.keptAnswer(now: Self.now) == .init(next: .wait(.milliseconds(10))))
        #expect(m.waited() == .init(next: .choose(excluding: [Self.a])))
        #expect(m.chose(Self.b) == .init(next: .send(attempt: 1, isLastAttempt: false)))
        // 429 is retryable too, and counts as a success for the breaker (the worker answered).
        #expect(m.answered(.init(status: 429, contentLength: 5), now: Self.now) == .init(breaker: .success, next: .keepAnswer))
        #expect(m.keptAnswer(now: Self.now).next == .wait(.milliseconds(20)))
        _ = m.waited()
        #expect(m.chose(Self.c) == .init(next: .send(attempt: 2, isLastAttempt: true)))
        // The last attempt gets whatever the worker says.
        #expect(m.answered(.init(status: 503, contentLength: 5), now: Self.now) == .init(breaker: .failure, next: .gatherWhole))
        #expect(m.retries == 2)
        #expect(m.tried == [Self.a, Self.b, Self.c])
    }

    @Test("A 4xx is the client's: relayed at once, never retried, a success for the breaker")
    func clientError() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        #expect(m.answered(.init(status: 400, contentLength: 20), now: Self.now) == .init(breaker: .success, next: .gatherWhole))
    }

    @Test("A refused connection: breaker failure, the worker marked unhealthy, another worker tried")
    func refused() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        #expect(m.failed(.refused("connection refused"), now: Self.now) == .init(breaker: .failure, markUnhealthy: true, next: .wait(.milliseconds(10))))
        #expect(m.waited().next == .choose(excluding: [Self.a]))
    }

    @Test("Transport failures after the last attempt give up with the last failure")
    func exhausted() {
        var m = Self.machine(attempts: 2)
        _ = m.start()
        _ = m.chose(Self.a)
        _ = m.failed(.broken("reset"), now: Self.now)
        _ = m.waited()
        _ = m.chose(Self.b)
        #expect(m.failed(.timedOut("slow"), now: Self.now) == .init(breaker: .failure, next: .fail(.workerFailed(.timedOut("slow"), worker: Self.b))))
    }

    @Test("A backoff that would end past the deadline is not waited: the last failure stands")
    func deadline() {
        var m = Self.machine(deadline: .milliseconds(5))
        _ = m.start()
        _ = m.chose(Self.a)
        #expect(m.failed(.broken("reset"), now: Self.now).next == .fail(.workerFailed(.broken("reset"), worker: Self.a)))
        var kept = Self.machine(deadline: .milliseconds(5))
        _ = kept.start()
        _ = kept.chose(Self.a)
        _ = kept.answered(.init(status: 502, contentLength: 3), now: Self.now)
        #expect(kept.keptAnswer(now: Self.now).next == .fail(.keptAnswer(worker: Self.a)))
    }

    @Test("An answer that breaks off while read whole is retried: nothing reached the client")
    func brokenWhileGathering() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        _ = m.answered(Self.ok, now: Self.now)
        #expect(m.failed(.broken("closed mid-answer"), now: Self.now) == .init(breaker: .failure, next: .wait(.milliseconds(10))))
    }

    @Test("A failure while relaying cuts the stream: no retry once bytes reached the client")
    func brokenWhileRelaying() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        _ = m.answered(.init(status: 200, isEventStream: true), now: Self.now)
        #expect(m.failed(.broken("reset"), now: Self.now) == .init(breaker: .failure, next: .cutStream(.workerFailed(.broken("reset"), worker: Self.a))))
    }

    @Test("No worker at all: the selection failure is the answer")
    func noWorker() {
        var m = Self.machine()
        _ = m.start()
        #expect(m.foundNoWorker(.modelNotFound("x", served: ["y"])).next == .fail(.noWorker(.modelNotFound("x", served: ["y"]))))
    }

    @Test("Every worker tried: the retry may go to any of them again, once per attempt")
    func fallbackToTried() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        _ = m.answered(.init(status: 503, contentLength: 1), now: Self.now)
        _ = m.keptAnswer(now: Self.now)
        #expect(m.waited().next == .choose(excluding: [Self.a]))
        #expect(m.foundNoWorker(.noAvailableWorkers(model: "m")).next == .choose(excluding: []))
        #expect(m.chose(Self.a).next == .send(attempt: 1, isLastAttempt: false))
        // A second miss within the same attempt ends it with what was kept.
        _ = m.answered(.init(status: 503, contentLength: 1), now: Self.now)
        _ = m.keptAnswer(now: Self.now)
        _ = m.waited()
        _ = m.foundNoWorker(.noAvailableWorkers(model: "m"))
        #expect(m.foundNoWorker(.noAvailableWorkers(model: "m")).next == .fail(.keptAnswer(worker: Self.a)))
    }

    @Test("A cancelled request records nothing against the worker and stops")
    func cancelled() {
        var m = Self.machine()
        _ = m.start()
        _ = m.chose(Self.a)
        #expect(m.cancelled() == .init(next: .fail(.cancelled)))
        #expect(m.cancelled().next == .stop)
        #expect(m.answered(Self.ok, now: Self.now).next == .stop)
    }

    @Test("One attempt only: a 503 is relayed as the worker gave it")
    func singleAttempt() {
        var m = Self.machine(attempts: 1)
        _ = m.start()
        #expect(m.chose(Self.a).next == .send(attempt: 0, isLastAttempt: true))
        #expect(m.answered(.init(status: 503, contentLength: 4), now: Self.now).next == .gatherWhole)
    }

    @Test("Events out of order change nothing")
    func outOfOrder() {
        var m = Self.machine()
        #expect(m.gathered().next == .stop)
        #expect(m.waited().next == .stop)
        #expect(m.keptAnswer(now: Self.now).next == .stop)
        #expect(m.chose(Self.a).next == .stop)
        #expect(m.failed(.broken("x"), now: Self.now).next == .stop)
        #expect(m.start().next == .choose(excluding: []))
        #expect(m.start().next == .stop)
    }
}
