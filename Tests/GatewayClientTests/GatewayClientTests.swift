#if canImport(Glibc)
import Glibc
#endif
import GatewayWire
import NIOCore
import Synchronization
import Testing

@testable import GatewayClient

/// Runs `body` with a fake server and a client connected to it; stops both after.
@discardableResult
func withFakeServer<T>(
    _ options: FakeServer.Options = FakeServer.Options(),
    behavior: @escaping FakeServer.Behavior = FakeServer.cannedReplies,
    _ body: (FakeServer, GatewayClient) async throws -> T
) async throws -> T {
    let server = try await FakeServer.start(options, behavior: behavior)
    let client: GatewayClient
    do {
        client = try await GatewayClient.connect(host: "127.0.0.1", port: server.port, apiKey: "secret", clientName: "tests")
    } catch {
        await server.shutdown()
        throw error
    }
    do {
        let result = try await body(server, client)
        await client.close()
        await server.shutdown()
        return result
    } catch {
        await client.close()
        await server.shutdown()
        throw error
    }
}

/// Waits until `condition` holds (polling), for at most `timeout`.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

func isGenerate(_ body: Wire.Envelope.Body) -> Bool {
    if case .generate = body { return true }
    return false
}

func isGetWorker(_ id: String) -> (Wire.Envelope.Body) -> Bool {
    { body in
        if case .getWorker(let request) = body { return request.workerID == id }
        return false
    }
}

@Suite("Hello handshake", .timeLimit(.minutes(1)))
struct HandshakeTests {
    @Test("Hello carries version 1, the key and the name; HelloReply is kept")
    func hello() async throws {
        var options = FakeServer.Options()
        options.helloReply = .init(protocolVersion: 1, serverName: "fake", maxFrameBytes: 1 << 20, maxConcurrentStreams: 7)
        try await withFakeServer(options) { server, client throws in
            #expect(client.serverHello == options.helloReply)
            #expect(server.received.first == Wire.Envelope(streamID: 0, body: .hello(.init(protocolVersion: 1, apiKey: "secret", clientName: "tests"))))
        }
    }

    @Test("a refused Hello throws the server's error")
    func refused() async throws {
        var options = FakeServer.Options()
        options.refuseHello = .init(code: "UNAUTHORIZED", message: "wrong API key", httpStatus: 401)
        let server = try await FakeServer.start(options)
        defer { Task { await server.shutdown() } }
        await #expect(throws: GatewayClientError.server(code: "UNAUTHORIZED", message: "wrong API key", httpStatus: 401)) {
            _ = try await GatewayClient.connect(host: "127.0.0.1", port: server.port, apiKey: "wrong")
        }
    }

    @Test("another protocol version in HelloReply is refused")
    func wrongVersion() async throws {
        var options = FakeServer.Options()
        options.helloReply.protocolVersion = 2
        let server = try await FakeServer.start(options)
        defer { Task { await server.shutdown() } }
        await #expect(throws: GatewayClientError.self) {
            _ = try await GatewayClient.connect(host: "127.0.0.1", port: server.port)
        }
    }

    @Test("nothing listening: connectionFailed")
    func nothingListening() async throws {
        // A socket bound but never listening: connects are refused, and no other test's
        // listener can take the port meanwhile (a freed port could be reused at once).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        do {
            _ = try await GatewayClient.connect(host: "127.0.0.1", port: port)
            Issue.record("connected to a closed port")
        } catch let error as GatewayClientError {
            guard case .connectionFailed = error else {
                Issue.record("unexpected \(error)")
                return
            }
        }
    }
}

@Suite("Calls", .timeLimit(.minutes(1)))
struct CallTests {
    @Test("every call round-trips")
    func roundTrips() async throws {
        try await withFakeServer { server, client throws in
            let add = Wire.AddWorkerRequest(
                url: "http://10.0.0.5:8000", modelID: "m", priority: 7, cost: 2.5, labels: ["a": "1", "b": "2"],
                workerType: .prefill, runtimeType: .openai, bootstrapPort: 9000, apiKey: "sk", disableHealthCheck: true
            )
            let added = try await client.addWorker(add)
            #expect(added == .init(status: "accepted", workerID: "w-1", url: "http://10.0.0.5:8000", location: "/workers/w-1", message: "queued 2 labels"))
            #expect(server.received.contains { $0.body == .addWorker(add) })

            let list = try await client.listWorkers()
            #expect(list.total == 2)
            #expect(list.workers.map(\.id) == ["w-1", "w-2"])
            #expect(list.stats == .init(regularCount: 2))

            #expect(try await client.getWorker(id: "abc") == FakeServer.sampleWorker(id: "abc"))

            let updated = try await client.updateWorker(.init(workerID: "abc", priority: 80, labels: ["zone": "b", "old": ""], apiKey: ""))
            #expect(updated == .init(status: "accepted", workerID: "abc", message: "priority=80 labels=old=,zone=b key="))

            #expect(try await client.removeWorker(id: "abc") == .init(status: "accepted", workerID: "abc", message: "removed"))
            #expect(try await client.listModels().models == [.init(id: "sim-model", workerCount: 2, healthyWorkerCount: 1)])
            #expect(try await client.health() == .init(status: "ok", healthyWorkers: 1, totalWorkers: 2))

            // Unary generate forces stream = false.
            let result = try await client.generate(.init(model: "sim-model", input: .text("hello there"), stream: true))
            #expect(result.text == "hello there")
            #expect(result.finishReason == "stop")
            #expect(result.usage == .init(promptTokens: 2, completionTokens: 2, totalTokens: 4))
            #expect(server.received.contains {
                if case .generate(let request) = $0.body { return request.stream == false && request.model == "sim-model" }
                return false
            })

            let rtt = try await client.ping()
            #expect(rtt > .zero)
            #expect(server.received.contains { if case .ping = $0.body { $0.streamID == 0 } else { false } })
        }
    }

    @Test("stream ids are odd, increasing, never reused")
    func streamIDs() async throws {
        try await withFakeServer { server, client throws in
            for _ in 0..<5 { _ = try await client.health() }
            let ids = server.received.filter { $0.streamID != 0 }.map(\.streamID)
            #expect(ids == [1, 3, 5, 7, 9])
        }
    }

    @Test("a server Error becomes GatewayClientError.server; the connection lives on")
    func serverError() async throws {
        try await withFakeServer { _, client throws in
            await #expect(throws: GatewayClientError.server(code: "WORKER_NOT_FOUND", message: "worker missing not found", httpStatus: 404)) {
                _ = try await client.getWorker(id: "missing")
            }
            #expect(try await client.health().status == "ok")
        }
    }

    @Test("a reply of the wrong kind is a protocol violation")
    func wrongReply() async throws {
        try await withFakeServer { _, client throws in
            await #expect(throws: GatewayClientError.protocolViolation("expected GetWorkerReply, the server answered HealthReply")) {
                _ = try await client.getWorker(id: "bad-reply")
            }
            #expect(try await client.health().status == "ok")
        }
    }

    @Test("a request that cannot be encoded, or is too large for the server, is refused locally")
    func invalidRequests() async throws {
        var options = FakeServer.Options()
        options.helloReply.maxFrameBytes = 1024
        try await withFakeServer(options) { server, client throws in
            await #expect(throws: GatewayClientError.self) {
                _ = try await client.getWorker(id: "nul\u{0}byte")
            }
            await #expect(throws: GatewayClientError.self) {
                _ = try await client.generate(.init(input: .text(String(repeating: "x", count: 2000))))
            }
            #expect(server.received.count == 1)  // the Hello only
            #expect(try await client.health().status == "ok")
        }
    }

    @Test("200 concurrent calls answered in random order reach the right callers")
    func concurrentCalls() async throws {
        try await withFakeServer { server, client throws in
            while server.peers.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
            server.peers[0].delays.store(true, ordering: .relaxed)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask { () throws in
                        let worker = try await client.getWorker(id: "worker-\(index)")
                        #expect(worker.id == "worker-\(index)")
                    }
                }
                try await group.waitForAll()
            }
            let ids = server.received.filter { $0.streamID != 0 }.map(\.streamID)
            #expect(ids.count == 200)
            #expect(Set(ids).count == 200)
            #expect(server.peers[0].maxActive > 1)
            #expect(client.connection.activeCalls == 0)
        }
    }

    @Test("calls over max_concurrent_streams wait for a free slot")
    func concurrencyLimit() async throws {
        var options = FakeServer.Options()
        options.helloReply.maxConcurrentStreams = 8
        try await withFakeServer(options) { server, client throws in
            while server.peers.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
            server.peers[0].delays.store(true, ordering: .relaxed)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<100 {
                    group.addTask { () throws in
                        #expect(try await client.getWorker(id: "w\(index)").id == "w\(index)")
                    }
                }
                try await group.waitForAll()
            }
            #expect(server.peers[0].maxActive <= 8)
            #expect(server.peers[0].maxActive > 1)
        }
    }
}

@Suite("Stream limit", .timeLimit(.minutes(1)))
struct StreamLimitTests {
    /// Refuses the first `count` calls with TOO_MANY_STREAMS (as a server that still
    /// counts a call it has just answered), then behaves as `cannedReplies`.
    static func refusingFirst(_ count: Int) -> FakeServer.Behavior {
        let refused = Mutex(0)
        return { envelope, peer in
            if envelope.body != .cancel, refused.withLock({ state in
                defer { state += 1 }
                return state < count
            }) {
                peer.send(envelope.streamID, .error(.init(code: "TOO_MANY_STREAMS", message: "at most 1 call", httpStatus: 429)))
                return
            }
            FakeServer.cannedReplies(envelope, peer)
        }
    }

    @Test("a unary call refused with TOO_MANY_STREAMS is retried on a new stream")
    func unaryRetry() async throws {
        try await withFakeServer(behavior: Self.refusingFirst(3)) { server, client throws in
            #expect(try await client.getWorker(id: "x").id == "x")
            #expect(server.received.filter { $0.streamID != 0 }.map(\.streamID) == [1, 3, 5, 7])
        }
    }

    @Test("a stream refused with TOO_MANY_STREAMS before any event is retried")
    func streamRetry() async throws {
        try await withFakeServer(behavior: Self.refusingFirst(2)) { server, client throws in
            var texts: [String] = []
            for try await event in client.generateStream(.init(input: .text("a b"))) {
                if case .chunk(let chunk) = event { texts.append(chunk.text) }
            }
            #expect(texts == ["a", "b"])
        }
    }

    @Test("a server that keeps refusing: the error surfaces after the retries")
    func retriesGiveUp() async throws {
        try await withFakeServer(behavior: Self.refusingFirst(1000)) { _, client throws in
            await #expect(throws: GatewayClientError.server(code: "TOO_MANY_STREAMS", message: "at most 1 call", httpStatus: 429)) {
                _ = try await client.health()
            }
        }
    }
}

@Suite("Streamed generate", .timeLimit(.minutes(1)))
struct StreamTests {
    @Test("chunks arrive in order, then the result, with many streams interleaved")
    func interleavedStreams() async throws {
        try await withFakeServer { _, client throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask { () throws in
                        let words = (0..<8).map { "s\(index)w\($0)" }
                        var events: [GenerateEvent] = []
                        for try await event in client.generateStream(.init(model: "m", input: .text(words.joined(separator: " ")))) {
                            events.append(event)
                        }
                        let chunks = words.enumerated().map { GenerateEvent.chunk(.init(text: $1, index: UInt32($0))) }
                        #expect(Array(events.dropLast()) == chunks)
                        guard case .result(let result) = events.last else {
                            Issue.record("no result last: \(events)")
                            return
                        }
                        #expect(result.finishReason == "stop")
                        #expect(result.usage?.completionTokens == 8)
                    }
                    group.addTask { _ = try await client.listWorkers() }
                }
                try await group.waitForAll()
            }
            #expect(client.connection.activeCalls == 0)
        }
    }

    @Test("a server Error ends the stream with GatewayClientError.server")
    func streamError() async throws {
        try await withFakeServer { _, client throws in
            await #expect(throws: GatewayClientError.server(code: "invalid_field", message: "text only here", httpStatus: 400)) {
                for try await _ in client.generateStream(.init(input: .tokenIDs([1, 2, 3]))) {}
            }
        }
    }

    @Test("cancelling the consuming task sends Cancel for the stream")
    func cancelByTask() async throws {
        try await withFakeServer { server, client throws in
            let (chunks, chunkSeen) = AsyncStream.makeStream(of: Void.self)
            let consumer = Task {
                do {
                    for try await event in client.generateStream(.init(input: .text("hold"))) {
                        if case .chunk = event { chunkSeen.yield() }
                    }
                    return "ended"
                } catch is CancellationError {
                    return "cancelled"
                } catch {
                    return "\(error)"
                }
            }
            var iterator = chunks.makeAsyncIterator()
            _ = await iterator.next()
            consumer.cancel()
            #expect(await consumer.value == "cancelled")
            let streamID = try #require(server.streamID(where: isGenerate))
            #expect(try await server.waitUntil { _ in server.receivedCancel(on: streamID) })
            // The server's CANCELLED answer frees the slot.
            #expect(try await eventually { client.connection.activeCalls == 0 })
            #expect(try await client.health().status == "ok")
        }
    }

    @Test("dropping the iterator before the result sends Cancel")
    func dropIterator() async throws {
        try await withFakeServer { server, client throws in
            do {
                var iterator = client.generateStream(.init(input: .text("hold"))).makeAsyncIterator()
                #expect(try await iterator.next() == .chunk(.init(text: "first", index: 0)))
            }
            let streamID = try #require(server.streamID(where: isGenerate))
            #expect(try await server.waitUntil { _ in server.receivedCancel(on: streamID) })
            #expect(try await eventually { client.connection.activeCalls == 0 })
        }
    }

    @Test("a stream read to its end sends no Cancel")
    func noCancelAfterResult() async throws {
        try await withFakeServer { server, client throws in
            for try await _ in client.generateStream(.init(input: .text("a b c"))) {}
            _ = try await client.health()
            #expect(!server.received.contains { $0.body == .cancel })
        }
    }
}

@Suite("Cancellation, connection loss, GoAway, close", .timeLimit(.minutes(1)))
struct LifecycleTests {
    @Test("cancelling a unary call throws CancellationError and sends Cancel")
    func cancelUnary() async throws {
        try await withFakeServer { server, client throws in
            let call = Task { try await client.getWorker(id: "hold") }
            #expect(try await server.waitUntil { $0.contains { $0.body.map(isGetWorker("hold")) == true } })
            call.cancel()
            await #expect(throws: CancellationError.self) { try await call.value }
            let streamID = try #require(server.streamID(where: isGetWorker("hold")))
            #expect(try await server.waitUntil { _ in server.receivedCancel(on: streamID) })
            #expect(try await eventually { client.connection.activeCalls == 0 })
        }
    }

    @Test("a dropped connection fails every pending call, and later ones")
    func connectionDrop() async throws {
        try await withFakeServer { server, client throws in
            let calls = (0..<3).map { _ in Task { try await client.getWorker(id: "hold") } }
            let stream = Task { for try await _ in client.generateStream(.init(input: .text("hold"))) {} }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 4 })
            server.peers[0].close()
            for call in calls {
                await #expect(throws: GatewayClientError.connectionClosed("the server closed the connection")) { try await call.value }
            }
            await #expect(throws: GatewayClientError.connectionClosed("the server closed the connection")) { try await stream.value }
            await #expect(throws: GatewayClientError.connectionClosed("the server closed the connection")) { try await client.health() }
            await #expect(throws: GatewayClientError.connectionClosed("the server closed the connection")) { try await client.ping() }
        }
    }

    @Test("an Error on stream 0 before the close is the reason given")
    func connectionError() async throws {
        try await withFakeServer { server, client throws in
            let call = Task { try await client.getWorker(id: "hold") }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 1 })
            let peer = server.peers[0]
            peer.write([Wire.Envelope(streamID: 0, body: .error(.init(code: "FRAME_TOO_LARGE", message: "too big", httpStatus: 413)))])
            peer.channel.eventLoop.execute { peer.close() }
            await #expect(throws: GatewayClientError.connectionClosed("server error FRAME_TOO_LARGE (413): too big")) { try await call.value }
        }
    }

    @Test("a broken frame header from the server closes the connection")
    func brokenFrame() async throws {
        try await withFakeServer { server, client throws in
            let call = Task { try await client.getWorker(id: "hold") }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 1 })
            server.peers[0].writeRaw(ByteBuffer(bytes: [0x02, 0, 0, 0, 0]))
            do {
                _ = try await call.value
                Issue.record("the call succeeded")
            } catch let error as GatewayClientError {
                guard case .connectionClosed(let reason) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(reason.contains("reserved"))
            }
        }
    }

    @Test("after GoAway new calls throw goingAway, running ones finish")
    func goAway() async throws {
        try await withFakeServer { server, client throws in
            let running = Task { try await client.getWorker(id: "hold") }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 1 })
            let peer = server.peers[0]
            let heldID = peer.heldStreams[0]
            peer.write([Wire.Envelope(streamID: 0, body: .goAway(.init(reason: "shutting down", lastStreamID: heldID)))])
            #expect(try await eventually { client.goAway != nil })
            await #expect(throws: GatewayClientError.goingAway(reason: "shutting down")) { try await client.health() }
            await #expect(throws: GatewayClientError.goingAway(reason: "shutting down")) {
                for try await _ in client.generateStream(.init(input: .text("a"))) {}
            }
            // The running call still gets its answer.
            _ = peer.takeHeld(heldID)
            peer.send(heldID, .getWorkerReply(.init(worker: FakeServer.sampleWorker(id: "hold"))))
            #expect(try await running.value.id == "hold")
            peer.close()
            await #expect(throws: GatewayClientError.self) { try await client.health() }
        }
    }

    @Test("GoAway fails calls still waiting for a slot")
    func goAwayFailsSlotWaiters() async throws {
        var options = FakeServer.Options()
        options.helloReply.maxConcurrentStreams = 1
        try await withFakeServer(options) { server, client throws in
            let running = Task { try await client.getWorker(id: "hold") }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 1 })
            let waiting = Task { try await client.health() }
            try await Task.sleep(for: .milliseconds(50))
            server.peers[0].write([Wire.Envelope(streamID: 0, body: .goAway(.init(reason: "bye")))])
            await #expect(throws: GatewayClientError.goingAway(reason: "bye")) { try await waiting.value }
            running.cancel()
            await #expect(throws: CancellationError.self) { try await running.value }
        }
    }

    @Test("close() fails pending calls, is idempotent, and refuses later calls")
    func close() async throws {
        try await withFakeServer { server, client throws in
            let call = Task { try await client.getWorker(id: "hold") }
            #expect(try await eventually { server.peers.first?.heldStreams.count == 1 })
            await client.close()
            await #expect(throws: GatewayClientError.connectionClosed("the client was closed")) { try await call.value }
            await client.close()
            await #expect(throws: GatewayClientError.connectionClosed("the client was closed")) { try await client.health() }
        }
    }
}
