import GatewayCore
import Testing

@testable import GatewayUpstream

@Suite("Upstream exchange state machine")
struct ExchangeStateMachineTests {
    typealias Machine = ExchangeStateMachine

    static func head(_ status: Int = 200, length: Int? = 10, eventStream: Bool = false, keepAlive: Bool = true) -> Machine.Head {
        .init(status: status, contentLength: length, isEventStream: eventStream, keepAlive: keepAlive)
    }

    @Test("A small known-length answer is gathered and handed over whole; the connection is reused")
    func whole() {
        var m = Machine(wholeAnswerLimit: 1024)
        #expect(m.start() == .acquireConnection)
        #expect(m.connectionAcquired(reused: true) == .writeRequest)
        #expect(!m.hasAnswer)
        #expect(m.receivedHead(Self.head()) == .startGathering)
        #expect(m.hasAnswer)
        #expect(m.receivedPart() == .keepPart)
        #expect(m.receivedEnd() == .finish(whole: true, reuse: true))
        #expect(m.isDone)
    }

    @Test("Event streams, unknown lengths and large answers stream; a small answer with Connection: close is gathered and not reused")
    func streaming() {
        for head in [Self.head(eventStream: true), Self.head(length: nil), Self.head(length: 4096), Self.head(keepAlive: false)] {
            var m = Machine(wholeAnswerLimit: 1024)
            _ = m.start()
            _ = m.connectionAcquired(reused: false)
            let gathered = head.contentLength == 10 && !head.isEventStream
            #expect(m.receivedHead(head) == (gathered ? .startGathering : .deliverHead))
            #expect(m.receivedPart() == (gathered ? .keepPart : .deliverPart))
            #expect(m.receivedEnd() == .finish(whole: gathered, reuse: head.keepAlive))
        }
        var never = Machine(wholeAnswerLimit: 0)
        _ = never.start()
        _ = never.connectionAcquired(reused: false)
        #expect(never.receivedHead(Self.head()) == .deliverHead)
    }

    @Test("A reused connection that fails before any answer byte: once more on a new connection, then a failure")
    func staleKeepAlive() {
        var m = Machine(wholeAnswerLimit: 0)
        _ = m.start()
        _ = m.connectionAcquired(reused: true)
        #expect(m.connectionFailed(.broken("reset")) == .retryOnNewConnection)
        #expect(m.connectionAcquired(reused: false) == .writeRequest)
        #expect(m.connectionFailed(.broken("reset")) == .fail(.broken("reset"), afterHead: false))
    }

    @Test("No second send: a fresh connection, a malformed answer, or a failure after the head")
    func noRetry() {
        var fresh = Machine(wholeAnswerLimit: 0)
        _ = fresh.start()
        _ = fresh.connectionAcquired(reused: false)
        #expect(fresh.connectionFailed(.broken("closed")) == .fail(.broken("closed"), afterHead: false))

        var malformed = Machine(wholeAnswerLimit: 0)
        _ = malformed.start()
        _ = malformed.connectionAcquired(reused: true)
        #expect(malformed.connectionFailed(.broken("not HTTP"), mayBeStale: false) == .fail(.broken("not HTTP"), afterHead: false))

        var streaming = Machine(wholeAnswerLimit: 0)
        _ = streaming.start()
        _ = streaming.connectionAcquired(reused: true)
        _ = streaming.receivedHead(Self.head(length: nil))
        #expect(streaming.connectionFailed(.broken("reset")) == .fail(.broken("reset"), afterHead: true))

        var gathering = Machine(wholeAnswerLimit: 1024)
        _ = gathering.start()
        _ = gathering.connectionAcquired(reused: true)
        _ = gathering.receivedHead(Self.head())
        // Nothing was handed over: for the caller a failure before the head (retryable by the attempt machine).
        #expect(gathering.connectionFailed(.broken("reset")) == .fail(.broken("reset"), afterHead: false))
    }

    @Test("The deadline and a cancel end the exchange once; later events change nothing")
    func endings() {
        var timed = Machine(wholeAnswerLimit: 0)
        _ = timed.start()
        #expect(timed.deadlinePassed() == .fail(.timedOut("timed out waiting for the answer"), afterHead: false))
        #expect(timed.deadlinePassed() == .none)
        #expect(timed.connectionAcquired(reused: false) == .none)

        var cancelled = Machine(wholeAnswerLimit: 0)
        _ = cancelled.start()
        _ = cancelled.connectionAcquired(reused: false)
        #expect(cancelled.cancel() == .abandon)
        #expect(cancelled.receivedHead(Self.head()) == .none)
        #expect(cancelled.receivedEnd() == .none)
        #expect(cancelled.cancel() == .none)

        var refused = Machine(wholeAnswerLimit: 0)
        _ = refused.start()
        #expect(refused.connectFailed(.refused("no")) == .fail(.refused("no"), afterHead: false))
    }
}
