import GatewayCore
import Testing

@testable import GatewayBinary

@Suite("Binary session")
struct BinarySessionTests {
    static func open(_ streams: Int = 2) -> BinarySession {
        var session = BinarySession(maxConcurrentStreams: streams)
        session.helloAccepted()
        return session
    }

    @Test("A stream id is free again as soon as its terminal message is written")
    func reuse() {
        var session = Self.open()
        let first = session.request(on: 1)
        #expect(first == .start)
        let closeAfterFirst = session.terminalWritten(on: 1)
        #expect(!closeAfterFirst)
        let again = session.request(on: 1)
        #expect(again == .start)
    }

    @Test("A call on a stream in use is refused on stream 0, so the running call keeps its one terminal message")
    func inUse() {
        var session = Self.open()
        _ = session.request(on: 5)
        guard case .refuse(let error, let stream) = session.request(on: 5) else {
            Issue.record("a second call on stream 5 started")
            return
        }
        #expect(stream == 0)
        #expect(error.code == ErrorCode("STREAM_ID_IN_USE"))
        #expect(session.activeCalls == 1)
    }

    @Test("Stream 0, too many calls, and refusals (admin) are answered on the call's stream")
    func refusals() {
        var session = Self.open(1)
        guard case .refuse(let zero, 0) = session.request(on: 0) else { Issue.record("stream 0 started"); return }
        #expect(zero.code == ErrorCode("INVALID_STREAM_ID"))
        guard case .refuse(let admin, 3) = session.request(on: 3, refusal: Authorizer.unauthorized("no")) else { Issue.record("refusal ignored"); return }
        #expect(admin.status == 401)
        let started = session.request(on: 1)
        #expect(started == .start)
        guard case .refuse(let busy, 2) = session.request(on: 2) else { Issue.record("over the limit"); return }
        #expect(busy.status == 429)
    }

    @Test("GoAway: the highest accepted id is announced, new calls get GOING_AWAY, the close comes with the last terminal")
    func goAway() {
        var session = Self.open(4)
        _ = session.request(on: 7)
        _ = session.request(on: 3)
        let announced = session.goAway()
        #expect(announced?.lastStreamID == 7)
        #expect(announced?.closeNow == false)
        let second = session.goAway()
        #expect(second == nil)
        guard case .refuse(let error, 9) = session.request(on: 9) else { Issue.record("a call started after GoAway"); return }
        #expect(error.status == 503)
        let closeAfter3 = session.terminalWritten(on: 3)
        #expect(!closeAfter3)
        let closeAfter7 = session.terminalWritten(on: 7)
        #expect(closeAfter7)
    }

    @Test("A half-closed client gets its running calls' answers, then the close")
    func halfClose() {
        var session = Self.open()
        _ = session.request(on: 1)
        let closeAtEnd = session.inputEnded()
        #expect(!closeAtEnd)
        let closeAfterLast = session.terminalWritten(on: 1)
        #expect(closeAfterLast)
        var idle = Self.open()
        let closeIdle = idle.inputEnded()
        #expect(closeIdle)
    }
}
