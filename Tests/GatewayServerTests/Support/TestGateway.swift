import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayJSON
import Logging
import NIOCore
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer
import GatewayWorkers

/// A response as the tests look at it.
struct TestResponse {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as JSON; records an issue (and returns null) when it is not JSON.
    var json: JSONValue {
        do {
            return try JSONParser.parse(body)
        } catch {
            Issue.record("body is not JSON (\(error)): \(text)")
            return .null
        }
    }

    /// The `code` of a control-plane error body.
    var errorCode: String? { json["code"]?.stringValue }
}

/// The real gateway, started on 127.0.0.1 port 0 with test-friendly timings,
/// and an HTTP client to call it.
struct TestGateway {
    let gateway: Gateway
    let port: Int
    let client: HTTPClient

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Test defaults: fast health checks and registration retries, quiet logs.
    static func configuration() -> GatewayConfiguration {
        GatewayConfiguration(
            http: .init(host: "127.0.0.1", port: 0),
            binary: .init(port: 0),
            shutdownGracePeriod: .seconds(5),
            registration: .init(startupTimeout: .seconds(10), maxCheckInterval: .milliseconds(200)),
            healthCheck: HealthCheckConfig(timeout: .seconds(2), interval: .seconds(1), failureThreshold: 3, successThreshold: 2),
            logLevel: .warning
        )
    }

    /// Runs `body` against a fresh gateway; stops it afterwards.
    /// - Parameter logHandler: where the gateway's logs go (default: swift-log's bootstrap).
    static func with<T>(
        _ configure: (inout GatewayConfiguration) -> Void = { _ in },
        logHandler: (any LogHandler)? = nil,
        _ body: (TestGateway) async throws -> T
    ) async throws -> T {
        var configuration = Self.configuration()
        configure(&configuration)
        var logger = logHandler.map { handler in Logger(label: "test-gateway", factory: { _ in handler }) } ?? Logger(label: "test-gateway")
        logger.logLevel = configuration.logLevel
        let gateway = try Gateway(configuration: configuration, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await run(gateway, ports: ports, continuation: continuation, client: client, body)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func run<T>(
        _ gateway: Gateway,
        ports: AsyncStream<Int>,
        continuation: AsyncStream<Int>.Continuation,
        client: HTTPClient,
        _ body: (TestGateway) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try await gateway.run { port in continuation.yield(port) }
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.next()
                throw TestFailure("the gateway stopped before listening")
            }
            let test = TestGateway(gateway: gateway, port: port, client: client)
            do {
                let result = try await body(test)
                await gateway.shutdown()
                try await group.waitForAll()
                return result
            } catch {
                await gateway.shutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    // MARK: Calls

    func request(_ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> TestResponse {
        var request = HTTPClientRequest(url: baseURL + path)
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

    func get(_ path: String) async throws -> TestResponse { try await request(.GET, path) }
    func post(_ path: String, _ body: String) async throws -> TestResponse { try await request(.POST, path, body: body) }
    func put(_ path: String, _ body: String) async throws -> TestResponse { try await request(.PUT, path, body: body) }
    func delete(_ path: String) async throws -> TestResponse { try await request(.DELETE, path) }

    /// POST /workers with `fields` (JSON object members); returns the response.
    func addWorker(_ json: String) async throws -> TestResponse {
        try await post("/workers", json)
    }

    /// Registers `url` and returns its id (asserting 202).
    func addWorker(url: String, extra: String = "") async throws -> String {
        let response = try await addWorker(#"{"url": "\#(url)"\#(extra.isEmpty ? "" : ", " + extra)}"#)
        #expect(response.status == 202, "POST /workers \(url): \(response.status) \(response.text)")
        return try #require(response.json["worker_id"]?.stringValue)
    }

    func worker(_ id: String) async throws -> JSONValue {
        let response = try await get("/workers/\(id)")
        #expect(response.status == 200, "GET /workers/\(id): \(response.status) \(response.text)")
        return response.json
    }

    /// Waits until worker `id` is ready and healthy.
    func waitUntilHealthy(_ id: String, timeout: Duration = .seconds(10)) async throws {
        try await eventually("worker \(id) becomes healthy", timeout: timeout) {
            try await worker(id)["is_healthy"] == .bool(true)
        }
    }
}

/// Sim workers on ephemeral ports, stopped afterwards.
func withSimWorkers<T>(
    _ count: Int = 1,
    _ configure: (Int, inout SimWorker.Configuration) -> Void = { _, _ in },
    _ body: ([SimWorker], [String]) async throws -> T
) async throws -> T {
    var workers: [SimWorker] = []
    var urls: [String] = []
    do {
        for index in 0..<count {
            var configuration = SimWorker.Configuration(name: "sim-\(index)")
            configure(index, &configuration)
            let worker = SimWorker(configuration: configuration)
            let port = try await worker.start()
            workers.append(worker)
            urls.append("http://127.0.0.1:\(port)")
        }
        let result = try await body(workers, urls)
        for worker in workers { try? await worker.shutdown() }
        return result
    } catch {
        for worker in workers { try? await worker.shutdown() }
        throw error
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
///
/// Chosen below Linux's ephemeral range (32768+), so a worker that another test
/// running in parallel binds to port 0 cannot get it.
func closedPort() async throws -> Int {
    for _ in 0..<100 {
        let worker = SimWorker(configuration: .init(port: Int.random(in: 10_000..<30_000)))
        guard let port = try? await worker.start() else { continue }
        try await worker.shutdown()
        return port
    }
    throw TestFailure("no free port found below the ephemeral range")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 20 ms until it holds; fails the test after `timeout`.
func eventually(
    _ what: String,
    timeout: Duration = .seconds(10),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout): \(what)", sourceLocation: sourceLocation)
    throw TestFailure("timed out: \(what)")
}
