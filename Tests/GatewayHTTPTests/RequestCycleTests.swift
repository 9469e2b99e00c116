import GatewayCore
import GatewayOpenAI
import NIOHTTP1
import Testing

@testable import GatewayHTTP

@Suite("HTTP request cycle")
struct RequestCycleTests {
    typealias Action = RequestCycle.Action

    @Test("Idle, head, body, answer: each phase arms its own clock, and a whole request in one read arms none")
    func phases() {
        var cycle = RequestCycle()
        #expect(cycle.opened() == .arm(.idle))
        #expect(cycle.bytesArrived() == .cancelTimer)
        #expect(cycle.phase == .readingHead)
        #expect(cycle.readComplete() == .arm(.head))
        #expect(cycle.readComplete() == .none)
        #expect(cycle.receivedHead(keepAlive: true) == .cancelTimer)
        #expect(cycle.readComplete() == .arm(.body))
        #expect(cycle.receivedEnd() == .cancelTimer)
        #expect(cycle.phase == .answering)
        #expect(cycle.answerEnded() == .arm(.idle))
        #expect(cycle.isIdle)

        // Head and body in one read: no timer between.
        #expect(cycle.bytesArrived() == .cancelTimer)
        #expect(cycle.receivedHead(keepAlive: true) == .none)
        #expect(cycle.receivedEnd() == .none)
        #expect(cycle.readComplete() == .none)
    }

    @Test("A fired timer closes the connection only if it is still the armed one")
    func timers() {
        var cycle = RequestCycle()
        _ = cycle.opened()
        _ = cycle.bytesArrived()
        _ = cycle.readComplete()
        #expect(cycle.timerFired(.idle) == .none)
        #expect(cycle.timerFired(.head) == Action(timer: nil, close: true))
        #expect(cycle.phase == .closed)
    }

    @Test("A client that takes no bytes of its answer for the send timeout is cut off; taking some again stops the clock")
    func sendTimeout() {
        var cycle = RequestCycle()
        _ = cycle.bytesArrived()
        _ = cycle.receivedHead(keepAlive: true)
        _ = cycle.receivedEnd()
        #expect(cycle.writabilityChanged(isWritable: false) == .arm(.send))
        #expect(cycle.writabilityChanged(isWritable: false) == .none)
        #expect(cycle.writabilityChanged(isWritable: true) == .cancelTimer)
        _ = cycle.writabilityChanged(isWritable: false)
        #expect(cycle.timerFired(.send).close)
    }

    @Test("Connection: close, a half-close and a shutdown close after the answer; idle connections close at once")
    func closing() {
        var close = RequestCycle()
        _ = close.bytesArrived()
        _ = close.receivedHead(keepAlive: false)
        _ = close.receivedEnd()
        #expect(close.answerCloses)
        #expect(close.answerEnded() == .close)

        var halfClosed = RequestCycle()
        _ = halfClosed.bytesArrived()
        _ = halfClosed.receivedHead(keepAlive: true)
        _ = halfClosed.receivedEnd()
        #expect(halfClosed.inputEnded() == .none)
        #expect(halfClosed.answerEnded() == .close)

        var quiescing = RequestCycle()
        _ = quiescing.bytesArrived()
        _ = quiescing.receivedHead(keepAlive: true)
        _ = quiescing.receivedEnd()
        #expect(quiescing.quiesce() == .none)
        #expect(quiescing.answerCloses)
        #expect(quiescing.answerEnded() == .close)

        var idle = RequestCycle()
        _ = idle.opened()
        #expect(idle.quiesce() == .close)
        var idleHalfClosed = RequestCycle()
        #expect(idleHalfClosed.inputEnded() == .close)
        var midBody = RequestCycle()
        _ = midBody.bytesArrived()
        _ = midBody.receivedHead(keepAlive: true)
        #expect(midBody.inputEnded() == .close)
    }
}

@Suite("REST routes")
struct RESTRouteTests {
    @Test("Paths name their route once; a worker id is captured and percent-decoded")
    func matching() throws {
        #expect(try RESTRoute.match("/workers")?.route == .workers)
        #expect(try RESTRoute.match("/v1/chat/completions")?.route == .inference(.chatCompletions))
        let worker = try RESTRoute.match("/workers/ab%2Dcd")
        #expect(worker?.route == .worker)
        #expect(worker?.workerID == "ab-cd")
        #expect(try RESTRoute.match("/workers/a/b") == nil)
        #expect(try RESTRoute.match("/nothing") == nil)
    }

    @Test("An invalid percent escape is a 400, never a silently changed id", arguments: ["%zz", "%4", "%", "a%g1"])
    func invalidEscape(segment: String) {
        do {
            _ = try RESTRoute.match(Substring("/workers/" + segment))
            Issue.record("'\(segment)' was accepted")
        } catch {
            #expect(error.status == 400)
            #expect(error.code == .badRequest)
        }
    }

    @Test("Queries decode + and %XX; an invalid escape is a 400")
    func query() throws {
        let query = try QueryParameters("model=a+b%2Fc&x")
        #expect(query["model"] == "a b/c")
        #expect(query["x"] == "")
        #expect(throws: GatewayError.self) { try QueryParameters("model=%zz") }
    }

    @Test("HTTP/1.1 needs exactly one valid Host")
    func host() {
        func problem(_ hosts: [String], minor: Int = 1) -> String? {
            HTTPConnectionHandler.hostProblem(
                HTTPRequestHead(version: .init(major: 1, minor: minor), method: .GET, uri: "/", headers: HTTPHeaders(hosts.map { ("Host", $0) }))
            )
        }
        #expect(problem(["example.com:80"]) == nil)
        #expect(problem(["[::1]:8080"]) == nil)
        #expect(problem([""]) == nil)
        #expect(problem([]) != nil)
        #expect(problem([], minor: 0) == nil)
        #expect(problem(["a", "b"]) != nil)
        #expect(problem(["bad host"]) != nil)
        #expect(problem(["a/b"]) != nil)
        #expect(problem(["user@host"]) != nil)
    }

    @Test("Date header values", arguments: [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (1_795_960_738, "Sun, 29 Nov 2026 13:58:58 GMT"),
    ])
    func dateFormat(seconds: Int, expected: String) {
        #expect(DateHeader.format(seconds) == expected)
    }
}
