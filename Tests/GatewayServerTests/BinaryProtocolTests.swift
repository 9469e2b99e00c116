import Foundation
import GatewayClient
import GatewayCore
import GatewayJSON
import GatewayWire
import SimWorker
import Testing

@testable import GatewayServer

extension TestGateway {
    /// A GatewayClient on this gateway's binary port.
    func binaryClient(apiKey: String? = nil) async throws -> GatewayClient {
        let port = try #require(gateway.binaryPort, "the binary listener is not bound")
        return try await GatewayClient.connect(host: "127.0.0.1", port: port, apiKey: apiKey, clientName: "binary-tests")
    }
}

/// The code and HTTP status of a server error thrown by `body`, or nil if it did not throw one.
private func serverError(_ body: () async throws -> Void) async -> (code: String, status: Int)? {
    do {
        try await body()
        return nil
    } catch let error as GatewayClientError {
        guard let code = error.code, let status = error.httpStatus else { return nil }
        return (code, status)
    } catch {
        return nil
    }
}

@Suite("Binary protocol through the gateway")
struct BinaryProtocolTests {
    @Test("A worker added over binary is on REST at once and the other way round; updates, removal and errors agree")
    func restBinaryParity() async throws {
        try await withSimWorkers(2) { _, urls in
            try await TestGateway.with { gw in
                let client = try await gw.binaryClient()
                defer { Task { await client.close() } }

                // Binary → REST.
                let added = try await client.addWorker(Wire.AddWorkerRequest(url: urls[0], priority: 60, labels: ["zone": "a"]))
                #expect(added.status == "accepted")
                #expect(added.location == "/workers/\(added.workerID)")
                let overREST = try await gw.worker(added.workerID)
                #expect(overREST["url"] == .string(urls[0]))
                #expect(overREST["priority"] == .int(60))
                #expect(overREST["labels"]?["zone"] == .string("a"))

                // REST → binary.
                let restID = try await gw.addWorker(url: urls[1], extra: #""max_load": 7"#)
                let overBinary = try await client.getWorker(id: restID)
                #expect(overBinary.url == urls[1])
                #expect(overBinary.maxLoad == 7)
                #expect(overBinary.hasAPIKey == false)
                #expect(overBinary.circuitBreaker == "closed")
                #expect(try await client.listWorkers().workers.map(\.id).sorted() == [added.workerID, restID].sorted())

                // Updates over binary show on REST: max_load set, then removed with 0.
                _ = try await client.updateWorker(Wire.UpdateWorkerRequest(workerID: added.workerID, priority: 7, maxLoad: 3))
                try await eventually("the update is applied") {
                    let json = try await gw.worker(added.workerID)
                    return json["priority"] == .int(7) && json["max_load"] == .int(3)
                }
                _ = try await client.updateWorker(Wire.UpdateWorkerRequest(workerID: added.workerID, maxLoad: 0))
                try await eventually("max_load is removed") { try await gw.worker(added.workerID)["max_load"] == nil }
                let outOfRange = await serverError {
                    _ = try await client.updateWorker(Wire.UpdateWorkerRequest(workerID: added.workerID, maxLoad: 2_000_000))
                }
                #expect(outOfRange?.code == "INVALID_FIELD" && outOfRange?.status == 400)

                // The same errors, with the same codes and statuses, on both doors.
                let unknown = "3f2c6a1e-8d4b-4c1a-9e2f-0a1b2c3d4e5f"
                for id in [unknown, "not-a-uuid"] {
                    let rest = try await gw.get("/workers/\(id)")
                    let binary = await serverError { _ = try await client.getWorker(id: id) }
                    #expect(binary?.code == rest.errorCode, "GET \(id): binary \(String(describing: binary)), REST \(rest.text)")
                    #expect(binary?.status == rest.status)
                }
                for url in ["ftp://x", ""] {
                    let binary = await serverError { _ = try await client.addWorker(Wire.AddWorkerRequest(url: url)) }
                    let rest = try await gw.post("/workers", #"{"url": "\#(url)"}"#)
                    #expect(binary?.code == rest.errorCode, "url \(url): binary \(String(describing: binary)), REST \(rest.text)")
                    #expect(binary?.status == rest.status)
                }

                // Removal over binary: gone from REST.
                _ = try await client.removeWorker(id: added.workerID)
                try await eventually("the worker is removed") { try await gw.get("/workers/\(added.workerID)").status == 404 }
                let models = try await client.listModels()
                #expect(models.models.map(\.id) == ["sim-model"])
            }
        }
    }

    @Test("Cancelling a streamed generate stops the upstream request; the connection goes on")
    func cancelStopsUpstream() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 40
            c.chunkInterval = .milliseconds(100)
        }) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let client = try await gw.binaryClient()
                defer { Task { await client.close() } }
                let request = Wire.GenerateRequest(input: .text("cancel me"), sampling: .init(maxTokens: 40), stream: true)
                let (firstChunk, firstChunkSeen) = AsyncStream<Void>.makeStream()
                let consumer = Task {
                    var chunks = 0
                    for try await event in client.generateStream(request) {
                        if case .chunk = event {
                            chunks += 1
                            firstChunkSeen.yield()
                        }
                    }
                    return chunks
                }
                var waiter = firstChunk.makeAsyncIterator()
                _ = await waiter.next()
                #expect(gw.gateway.registry.workers().first?.load == 1)
                let cancelledAt = ContinuousClock.now
                consumer.cancel()
                await #expect(throws: CancellationError.self) { _ = try await consumer.value }
                // The stream would run 4 s; the worker's slot is free long before.
                try await eventually("the upstream request is cancelled", timeout: .seconds(2)) {
                    gw.gateway.registry.workers().first?.load == 0
                }
                #expect(ContinuousClock.now - cancelledAt < .seconds(2))
                // The connection is still good for calls, streamed ones included.
                #expect(try await client.health().status == "ok")
                var events = 0
                for try await _ in client.generateStream(Wire.GenerateRequest(input: .text("again"), sampling: .init(maxTokens: 2), stream: true)) {
                    events += 1
                }
                #expect(events >= 2)
            }
        }
    }

    @Test("max_frame_bytes holds both ways: a reply over it is an Error on its stream, and the connection lives on")
    func replyOverTheFrameLimit() async throws {
        try await TestGateway.with({ $0.binary.maxFrameBytes = 1024 }) { gw in
            // Unreachable workers (refused ports) still list: 20 of them are well over 1 KiB.
            for port in 1...20 { _ = try await gw.addWorker(url: "http://127.0.0.1:\(port)", extra: #""labels": {"zone": "a-long-label-value-\#(port)"}"#) }
            let client = try await gw.binaryClient()
            defer { Task { await client.close() } }
            let tooLarge = await serverError { _ = try await client.listWorkers() }
            #expect(tooLarge?.code == "REPLY_TOO_LARGE")
            #expect(tooLarge?.status == 500)
            // The same connection still answers, and a small reply passes.
            #expect(try await client.health().totalWorkers == 20)
        }
    }

    @Test("Bad payloads and unknown streams get an error on that stream; the connection lives on")
    func errorsKeepTheConnection() async throws {
        try await TestGateway.with { gw in
            let client = try await gw.binaryClient()
            defer { Task { await client.close() } }
            let missing = await serverError { _ = try await client.generate(Wire.GenerateRequest(stream: false)) }
            #expect(missing?.code == "missing_required_field", "the REST twin's code (/v1/completions without a prompt)")
            #expect(missing?.status == 400)
            let noModel = await serverError {
                _ = try await client.generate(Wire.GenerateRequest(model: "nope", input: .text("hi")))
            }
            #expect(noModel?.status == 404 || noModel?.status == 503, "\(String(describing: noModel))")
            #expect(try await client.health().totalWorkers == 0)
            _ = try await client.ping()
        }
    }

    @Test("1,000 concurrent streamed generates over 10 connections: every chunk reaches its own stream, none is lost")
    func thousandStreams() async throws {
        let connections = 10
        let perConnection = 100
        let tokens = 6
        try await withSimWorkers(2, { _, c in
            c.chunkCount = tokens
            c.chunkInterval = .milliseconds(10)
        }) { _, urls in
            try await TestGateway.with({ $0.binary.maxConcurrentStreams = 128 }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                var clients: [GatewayClient] = []
                for _ in 0..<connections { clients.append(try await gw.binaryClient()) }
                let outcomes = try await withThrowingTaskGroup(of: String?.self) { group in
                    for (c, client) in clients.enumerated() {
                        for i in 0..<perConnection {
                            group.addTask {
                                let tag = "@c\(c)s\(i)"
                                let request = Wire.GenerateRequest(
                                    input: .text("\(tag) tell me"), sampling: .init(maxTokens: UInt32(tokens)), stream: true,
                                    requestID: "req-\(c)-\(i)"
                                )
                                var text = ""
                                var chunks = 0
                                var result: Wire.GenerateResult?
                                for try await event in client.generateStream(request) {
                                    switch event {
                                    case .chunk(let chunk):
                                        chunks += 1
                                        // Every token of this chunk carries this stream's tag.
                                        for token in chunk.text.split(separator: " ") where !token.hasSuffix(tag) {
                                            return "stream \(tag) got a foreign token \(token)"
                                        }
                                        text += chunk.text
                                    case .result(let r):
                                        result = r
                                    }
                                }
                                let expected = (0..<tokens).map { "tok\($0)\(tag)" }.joined(separator: " ")
                                if text != expected { return "stream \(tag): text \(text) != \(expected)" }
                                if chunks == 0 { return "stream \(tag): no chunk" }
                                guard let result else { return "stream \(tag): no result" }
                                if result.requestID != "req-\(c)-\(i)" { return "stream \(tag): result of \(result.requestID)" }
                                if result.usage?.completionTokens != UInt32(tokens) { return "stream \(tag): usage \(String(describing: result.usage))" }
                                return nil
                            }
                        }
                    }
                    var problems: [String] = []
                    var finished = 0
                    for try await outcome in group {
                        finished += 1
                        if let outcome { problems.append(outcome) }
                    }
                    return (finished, problems)
                }
                #expect(outcomes.0 == connections * perConnection)
                #expect(outcomes.1.isEmpty, "\(outcomes.1.count) bad streams, first: \(outcomes.1.prefix(3))")
                for client in clients { await client.close() }
                try await eventually("every worker slot is released") {
                    gw.gateway.registry.workers().allSatisfy { $0.load == 0 }
                }
            }
        }
    }
}
