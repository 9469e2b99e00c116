import GatewayCore
import GatewayUpstream
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
import GatewayOpenAI

/// The one worker transport against scripted workers over real sockets.
@Suite("Worker transport", .timeLimit(.minutes(1)))
struct WorkerTransportTests {
    /// One loop, so every request uses the same pool.
    static func withTransport(
        _ configure: (inout WorkerTransport.Configuration) -> Void = { _ in }, _ body: (WorkerTransport) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = WorkerTransport.Configuration(connectTimeout: .seconds(2))
        configure(&configuration)
        let transport = try WorkerTransport(group: group, configuration: configuration)
        do {
            try await body(transport)
        } catch {
            transport.shutdown()
            try await group.shutdownGracefully()
            throw error
        }
        transport.shutdown()
        try await group.shutdownGracefully()
    }

    static func request(_ port: Int, _ body: String = #"{"text":"hi"}"#, wholeAnswerLimit: Int = 0) -> WorkerRequest {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return WorkerRequest(
            method: .POST, url: try! WorkerURL("http://127.0.0.1:\(port)"), path: "/generate", headers: headers, body: ByteBuffer(string: body),
            wholeAnswerLimit: wholeAnswerLimit
        )
    }

    static func text(_ parts: WorkerTransport.AnswerParts) async throws -> String {
        var out = ByteBuffer()
        for try await part in parts {
            switch part {
            case .bytes(let bytes): out.writeImmutableBuffer(bytes)
            case .event(let event): event.write(into: &out)
            }
        }
        return String(buffer: out)
    }

    @Test("Keep-alive: sequential requests share one connection; each sends head and body with Host and Content-Length")
    func keepAlive() async throws {
        let worker = try await ScriptedWorker { i in ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        try await Self.withTransport { transport in
            for i in 0..<5 {
                let answer = try await transport.send(Self.request(worker.port), timeout: .seconds(10))
                #expect(answer.status == 200)
                #expect(String(buffer: answer.body) == #"{"n":\#(i)}"#)
            }
        }
        #expect(worker.connections == 1)
        #expect(worker.requests.count == 5)
        for request in worker.requests {
            #expect(request.hasPrefix("POST /generate HTTP/1.1\r\n"))
            #expect(request.contains("Host: 127.0.0.1:\(worker.port)\r\n"))
            #expect(request.contains("Content-Length: 13\r\n"))
            #expect(request.hasSuffix("\r\n\r\n" + #"{"text":"hi"}"#))
        }
        await worker.close()
    }

    @Test("The worker's key is sent as a Bearer token, replacing any Authorization given")
    func apiKey() async throws {
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}") }
        try await Self.withTransport { transport in
            var request = Self.request(worker.port)
            request.headers.add(name: "Authorization", value: "Bearer client")
            request.apiKey = "worker-key"
            _ = try await transport.send(request, timeout: .seconds(10))
        }
        #expect(worker.requests.first?.contains("Authorization: Bearer worker-key\r\n") == true)
        #expect(worker.requests.first?.contains("client") == false)
        await worker.close()
    }

    @Test("An answer with Connection: close is not reused; the next request opens a new connection")
    func connectionClose() async throws {
        // The worker keeps its side open: only the header can stop the transport reusing it.
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}", close: false, extraHeaders: "Connection: close\r\n") }
        try await Self.withTransport { transport in
            for _ in 0..<3 { _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10)) }
        }
        #expect(worker.connections == 3)
        #expect(worker.requests.count == 3)
        await worker.close()
    }

    @Test("A keep-alive connection the worker closed while idle is replaced; every call succeeds")
    func staleConnection() async throws {
        // Every answer claims keep-alive, and then the worker hangs up.
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}", close: true) }
        try await Self.withTransport { transport in
            for i in 0..<4 {
                #expect(try await transport.send(Self.request(worker.port), timeout: .seconds(10)).status == 200)
                // The next call must find this connection closed, whichever way it learns it.
                try await eventually("the worker closed connection \(i + 1)") { worker.closedConnections == i + 1 }
            }
        }
        #expect(worker.requests.count == 4)
        #expect(worker.connections == 4)
        await worker.close()
    }

    @Test("A reused connection that dies before any answer is retried once on a new one")
    func reusedConnectionRetried() async throws {
        // The first answer keeps the connection; the second request on it is dropped unanswered.
        let worker = try await ScriptedWorker { i in i == 1 ? .hangUp : ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        try await Self.withTransport { transport in
            _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10))
            let answer = try await transport.send(Self.request(worker.port), timeout: .seconds(10))
            #expect(String(buffer: answer.body) == #"{"n":2}"#)
        }
        #expect(worker.requests.count == 3)
        #expect(worker.connections == 2)
        await worker.close()
    }

    @Test("A new connection that dies before answering fails at once, without a second send")
    func freshConnectionNotRetried() async throws {
        let worker = try await ScriptedWorker { _ in .hangUp }
        try await Self.withTransport { transport in
            await #expect(throws: WorkerFailure.broken("the worker closed the connection")) {
                _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10))
            }
        }
        #expect(worker.requests.count == 1)
        await worker.close()
    }

    @Test("Half an answer: the stream fails; the next call succeeds on a new connection")
    func halfAnswer() async throws {
        let worker = try await ScriptedWorker { i in
            i == 0 ? .bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"half\"", close: true) : ScriptedWorker.ok("{}")
        }
        try await Self.withTransport { transport in
            let (head, parts) = try await transport.stream(Self.request(worker.port), timeout: .seconds(10))
            #expect(head.contentLength == 100)
            await #expect(throws: WorkerFailure.self) { _ = try await Self.text(parts) }
            _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10))
        }
        #expect(worker.connections == 2)
        await worker.close()
    }

    @Test("A large body arrives whole and in order; the connection is reused after it")
    func largeBody() async throws {
        let size = 2 << 20
        let worker = try await ScriptedWorker { _ in .large(size: size) }
        try await Self.withTransport { transport in
            let (_, parts) = try await transport.stream(Self.request(worker.port), timeout: .seconds(10))
            var received = 0
            let pattern = (0..<(65536 + 256)).map { UInt8(truncatingIfNeeded: $0) }
            for try await part in parts {
                guard case .bytes(let chunk) = part else { Issue.record("not bytes"); return }
                let start = received % 256
                guard chunk.readableBytes <= 65536, Array(chunk.readableBytesView) == Array(pattern[start..<start + chunk.readableBytes]) else {
                    Issue.record("the chunk at byte \(received) is out of order")
                    return
                }
                received += chunk.readableBytes
            }
            #expect(received == size)
            _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10), bodyLimit: size)
        }
        #expect(worker.connections == 1)
        await worker.close()
    }

    @Test("Reading pauses while the consumer is behind: the worker's socket fills up, and the whole answer still arrives")
    func readingPauses() async throws {
        let size = 32 << 20
        let worker = try await ScriptedWorker { _ in .large(size: size) }
        try await Self.withTransport { transport in
            let (_, parts) = try await transport.stream(Self.request(worker.port), timeout: .seconds(30))
            var iterator = parts.makeAsyncIterator()
            var received = 0
            if case .bytes(let first)? = try await iterator.next() { received += first.readableBytes }
            // Nobody reads: the transport stops reading, and the worker's writes back up.
            // (Without backpressure the 32 MiB would be taken into memory and the worker's
            // socket would never fill.)
            try await eventually("the worker's connection stops taking bytes", timeout: .seconds(10)) { worker.becameUnwritable > 0 }
            #expect(worker.largeBodiesSent == 0)
            while let part = try await iterator.next() {
                if case .bytes(let bytes) = part { received += bytes.readableBytes }
            }
            #expect(received == size)
            try await eventually("the worker's last write completes") { worker.largeBodiesSent == 1 }
        }
        await worker.close()
    }

    @Test("A stream dropped halfway closes its connection; the next request gets a new one")
    func abandonedBody() async throws {
        let worker = try await ScriptedWorker { _ in .large(size: 2 << 20) }
        try await Self.withTransport { transport in
            do {
                let (_, parts) = try await transport.stream(Self.request(worker.port), timeout: .seconds(10))
                var iterator = parts.makeAsyncIterator()
                _ = try await iterator.next()
            }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
            let answer = try await transport.send(Self.request(worker.port), timeout: .seconds(10), bodyLimit: 4 << 20)
            #expect(answer.body.readableBytes == 2 << 20)
        }
        #expect(worker.connections == 2)
        await worker.close()
    }

    @Test("A silent worker: the deadline fails the call and closes the connection")
    func deadline() async throws {
        let worker = try await ScriptedWorker { _ in .silent }
        try await Self.withTransport { transport in
            await #expect(throws: WorkerFailure.timedOut("timed out waiting for the answer")) {
                _ = try await transport.send(Self.request(worker.port), timeout: .milliseconds(200))
            }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
        }
        await worker.close()
    }

    @Test("Cancelling the caller closes the worker connection")
    func cancellation() async throws {
        let worker = try await ScriptedWorker { _ in .silent }
        try await Self.withTransport { transport in
            let call = Task { try await transport.send(Self.request(worker.port), timeout: .seconds(10)) }
            try await eventually("the request reaches the worker") { worker.requests.count == 1 }
            call.cancel()
            await #expect(throws: WorkerFailure.self) { _ = try await call.value }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
        }
        await worker.close()
    }

    @Test("Event streams arrive as decoded events, one per event however the bytes were split")
    func events() async throws {
        let sse = "data: {\"x\":1}\n\nevent: done\ndata: [DONE]\n\n"
        let worker = try await ScriptedWorker { _ in
            .bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: \(sse.utf8.count)\r\n\r\n\(sse)", close: false)
        }
        try await Self.withTransport { transport in
            let (head, parts) = try await transport.stream(Self.request(worker.port), timeout: .seconds(10))
            #expect(head.isEventStream)
            var events: [String] = []
            for try await part in parts {
                guard case .event(let event) = part else { Issue.record("bytes of an event stream"); continue }
                events.append(String(buffer: event.data))
            }
            #expect(events == [#"{"x":1}"#, "[DONE]"])
        }
        await worker.close()
    }

    @Test("Connections per worker are capped: more calls wait for one, and every call is answered")
    func connectionCap() async throws {
        let worker = try await ScriptedWorker { i in ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        try await Self.withTransport({ $0.maxConnectionsPerWorker = 2 }) { transport in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 { group.addTask { try await transport.send(Self.request(worker.port), timeout: .seconds(10)).status } }
                for try await status in group { #expect(status == 200) }
            }
            #expect(transport.waitedTotal > 0)
            #expect(transport.connections(to: try WorkerURL("http://127.0.0.1:\(worker.port)")).waiting == 0)
        }
        #expect(worker.connections <= 2)
        #expect(worker.requests.count == 20)
        await worker.close()
    }

    @Test("Idle connections past the reuse limit are closed, not kept")
    func idleConnectionsClosed() async throws {
        let worker = try await ScriptedWorker { i in ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        try await Self.withTransport({ $0.idleTimeout = .milliseconds(200) }) { transport in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 { group.addTask { _ = try await transport.send(Self.request(worker.port), timeout: .seconds(10)) } }
                try await group.waitForAll()
            }
            let opened = worker.connections
            #expect(opened >= 1)
            try await eventually("every idle connection is closed", timeout: .seconds(5)) { worker.closedConnections == opened }
            #expect(transport.connections(to: try WorkerURL("http://127.0.0.1:\(worker.port)")).open == 0)
        }
        await worker.close()
    }

    @Test("Nothing listening: the failure reads as a refused connection")
    func refused() async throws {
        let port = try await closedPort()
        try await Self.withTransport { transport in
            do throws(WorkerFailure) {
                _ = try await transport.send(Self.request(port), timeout: .seconds(10))
                Issue.record("a closed port answered")
            } catch {
                #expect(error.isRefused)
            }
        }
    }
}
