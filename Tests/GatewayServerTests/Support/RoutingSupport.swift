import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayJSON
import NIOCore
import NIOHTTP1
import SimWorker
import Synchronization
import Testing

@testable import GatewayServer

// Helpers of the Routing* suites: registering fleets, telling which sim worker
// answered, and reading streamed answers chunk by chunk with arrival times.

extension TestResponse {
    /// The sim worker that produced the reply (its `X-Sim-Worker` header); nil when
    /// the gateway answered on its own.
    var simWorker: String? { headers.first(name: "X-Sim-Worker") }

    /// The `error` object of an OpenAI-shaped error body.
    var openAIError: JSONValue? { json["error"] }
}

extension TestGateway {
    /// Registers every URL (with `extra(index)` as additional POST /workers fields)
    /// and waits until all of them are ready and healthy; returns their ids in order.
    func addHealthyWorkers(_ urls: [String], extra: (Int) -> String = { _ in "" }, timeout: Duration = .seconds(10)) async throws -> [String] {
        var ids: [String] = []
        for (index, url) in urls.enumerated() {
            ids.append(try await addWorker(url: url, extra: extra(index)))
        }
        for id in ids { try await waitUntilHealthy(id, timeout: timeout) }
        // Every worker is in the routing snapshot (not only listed as healthy).
        try await eventually("all \(ids.count) workers routable", timeout: timeout) {
            gateway.registry.routableWorkers().count == ids.count
        }
        return ids
    }

    /// A request to any URL (a sim worker directly, say) with the gateway's test client.
    func send(_ method: HTTPMethod, to url: String, body: String? = nil, headers: [(String, String)] = []) async throws -> TestResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    /// POST /v1/completions with `prompt` and extra body members.
    func complete(
        prompt: String = "hello world", fields: String = "", headers: [(String, String)] = []
    ) async throws -> TestResponse {
        let body = #"{"prompt": \#(JSONValue.string(prompt).jsonString)\#(fields.isEmpty ? "" : ", " + fields)}"#
        return try await request(.POST, "/v1/completions", body: body, headers: headers)
    }

    /// Sends `count` requests made by `makeBody(i)` to `path`, at most `parallel` at a
    /// time; every answer must be 200. Returns how many each sim worker answered and
    /// the answering workers in request order (sequential sends only keep order).
    func distribution(
        count: Int, parallel: Int = 1, path: String = "/v1/completions",
        headers: [(String, String)] = [],
        body makeBody: @escaping @Sendable (Int) -> String = { _ in #"{"prompt": "hello world"}"# }
    ) async throws -> (counts: [String: Int], sequence: [String]) {
        let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var next = 0
            var results: [(Int, String)] = []
            func start() {
                let index = next
                next += 1
                group.addTask {
                    let response = try await self.request(.POST, path, body: makeBody(index), headers: headers)
                    #expect(response.status == 200, "request \(index): \(response.status) \(response.text)")
                    return (index, response.simWorker ?? "<none>")
                }
            }
            while next < min(parallel, count) { start() }
            while let result = try await group.next() {
                results.append(result)
                if next < count { start() }
            }
            return results
        }
        let sequence = results.sorted { $0.0 < $1.0 }.map(\.1)
        return (Dictionary(sequence.map { ($0, 1) }, uniquingKeysWith: +), sequence)
    }

    /// Starts a request whose answer is read in the background, chunk by chunk;
    /// returns once the response head has arrived.
    func openStream(
        _ body: String, path: String = "/v1/completions", headers: [(String, String)] = [], deadline: Duration = .seconds(60)
    ) async throws -> OpenStream {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let started = ContinuousClock.now
        let response = try await client.execute(request, deadline: .now() + .seconds(Int64(deadline.components.seconds)))
        return OpenStream(response: response, started: started)
    }

    /// A whole streamed answer, with the arrival time of each chunk.
    func stream(_ body: String, path: String = "/v1/completions", headers: [(String, String)] = [], timeout: Duration = .seconds(15)) async throws -> StreamRecording {
        let stream = try await openStream(body, path: path, headers: headers)
        return try await stream.finish(timeout: timeout)
    }

    /// The `load` of worker `id` in GET /workers/{id}.
    func load(of id: String) async throws -> Int64? {
        try await worker(id)["load"]?.intValue
    }

    /// The load GET /get_loads reports for worker `id`.
    func reportedLoad(of id: String) async throws -> Int64? {
        let loads = try await get("/get_loads")
        #expect(loads.status == 200)
        return loads.json["workers"]?.arrayValue?.first { $0["worker_id"] == .string(id) }?["load"]?.intValue
    }

    /// The circuit-breaker state of worker `id` in WorkerInfo.
    func breakerState(of id: String) async throws -> String? {
        try await worker(id)["circuit_breaker"]?.stringValue
    }
}

/// What a streamed answer looked like once it ended.
struct StreamRecording: Sendable {
    let status: Int
    let headers: HTTPHeaders
    /// Each body chunk with its arrival time, counted from the moment the request was sent.
    let chunks: [(at: Duration, bytes: [UInt8])]
    /// When the body ended (or failed), counted from the same moment.
    let endedAt: Duration
    /// The transport error that ended the body, if it did not end cleanly.
    let error: String?

    var text: String { String(decoding: chunks.flatMap(\.bytes), as: UTF8.self) }
    /// The data of every SSE event, in order.
    var events: [String] { RoutingSSE.events(in: text) }
    /// Events that are JSON objects (everything but `[DONE]`).
    var jsonEvents: [JSONValue] { events.filter { $0 != "[DONE]" }.compactMap { try? JSONParser.parse(Array($0.utf8)) } }
    var firstChunkAt: Duration? { chunks.first?.at }
    var simWorker: String? { headers.first(name: "X-Sim-Worker") }
}

enum RoutingSSE {
    /// The data of each SSE event in `text` (events end with a blank line).
    static func events(in text: String) -> [String] {
        text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").compactMap { event in
            let lines = event.split(separator: "\n").filter { $0.hasPrefix("data:") }
            guard !lines.isEmpty else { return nil }
            return lines.map { line in
                var data = line.dropFirst(5)
                if data.first == " " { data = data.dropFirst() }
                return String(data)
            }.joined(separator: "\n")
        }
    }
}

/// A response whose body a background task reads, recording each chunk as it comes.
/// Dropping it (or `cancel()`) cancels the read, which closes the client's connection.
final class OpenStream: Sendable {
    struct State {
        var chunks: [(at: Duration, bytes: [UInt8])] = []
        var endedAt: Duration?
        var error: String?
    }

    let status: Int
    let headers: HTTPHeaders
    let started: ContinuousClock.Instant
    private let state = Mutex(State())
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(response: HTTPClientResponse, started: ContinuousClock.Instant) {
        self.status = Int(response.status.code)
        self.headers = response.headers
        self.started = started
        let box = StateBox(self)
        let reader = Task {
            do {
                for try await chunk in response.body {
                    box.append(Array(chunk.readableBytesView))
                }
                box.end(error: nil)
            } catch {
                box.end(error: "\(error)")
            }
        }
        task.withLock { $0 = reader }
    }

    deinit {
        task.withLock { $0?.cancel() }
    }

    /// A weak route from the reading task back to the stream, so dropping the stream
    /// still cancels its task.
    private final class StateBox: Sendable {
        weak let owner: OpenStream?
        let started: ContinuousClock.Instant
        init(_ owner: OpenStream) {
            self.owner = owner
            self.started = owner.started
        }
        func append(_ bytes: [UInt8]) {
            let at = ContinuousClock.now - started
            owner?.state.withLock { $0.chunks.append((at, bytes)) }
        }
        func end(error: String?) {
            let at = ContinuousClock.now - started
            owner?.state.withLock { state in
                state.endedAt = at
                state.error = error
            }
        }
    }

    var simWorker: String? { headers.first(name: "X-Sim-Worker") }
    var chunkCount: Int { state.withLock { $0.chunks.count } }
    var hasEnded: Bool { state.withLock { $0.endedAt != nil } }
    var text: String { state.withLock { String(decoding: $0.chunks.flatMap(\.bytes), as: UTF8.self) } }

    /// Waits until at least `count` chunks have arrived.
    func waitForChunks(_ count: Int = 1, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually("\(count) chunk(s) of the stream arrive", timeout: timeout, sourceLocation: sourceLocation) {
            chunkCount >= count
        }
    }

    /// The client goes away: the read is cancelled, the connection closed.
    func cancel() async {
        let reader = task.withLock { $0 }
        reader?.cancel()
        await reader?.value
    }

    /// Waits until the body ends; fails the test (and throws) if it does not within `timeout`.
    func finish(timeout: Duration = .seconds(15), sourceLocation: SourceLocation = #_sourceLocation) async throws -> StreamRecording {
        try await eventually("the stream ends", timeout: timeout, sourceLocation: sourceLocation) { hasEnded }
        return state.withLock { state in
            StreamRecording(
                status: status, headers: headers, chunks: state.chunks, endedAt: state.endedAt ?? .zero, error: state.error
            )
        }
    }
}
