import AsyncHTTPClient
import GatewayJSON
import NIOCore
import NIOHTTP1
import NIOPosix
import SimWorker
import Testing

/// A reply, fully read.
struct Reply {
    var status: Int
    var headers: HTTPHeaders
    var body: String

    func json() throws -> JSONValue { try JSONParser.parse(body) }

    /// The `data:` payloads of an SSE body, in order.
    var events: [String] {
        body.split(separator: "\n\n", omittingEmptySubsequences: true).map { event in
            let line = event.hasPrefix("data: ") ? event.dropFirst(6) : event
            return String(line)
        }
    }
}

/// Starts a worker on an ephemeral port, runs `body` with it and a fresh client, and
/// always stops both.
func withWorker(
    _ configuration: SimWorker.Configuration = SimWorker.Configuration(),
    _ body: (SimWorker, TestClient) async throws -> Void
) async throws {
    let worker = SimWorker(configuration: configuration)
    let port = try await worker.start()
    let client = TestClient(port: port)
    do {
        try await body(worker, client)
    } catch {
        try? await client.http.shutdown()
        try? await worker.shutdown()
        throw error
    }
    try await client.http.shutdown()
    try await worker.shutdown()
}

/// An AsyncHTTPClient bound to one worker.
struct TestClient {
    let port: Int
    let http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)

    var base: String { "http://127.0.0.1:\(port)" }

    func send(_ method: HTTPMethod = .GET, _ path: String, body: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: bytes))
    }

    func get(_ path: String) async throws -> Reply { try await send(.GET, path) }

    func post(_ path: String, _ body: String) async throws -> Reply { try await send(.POST, path, body: body) }
}

/// Opens a raw TCP connection to the worker, writes `request`, and hands the inbound
/// byte stream to `body`; the connection is closed when `body` returns.
func withRawConnection<T: Sendable>(
    port: Int,
    write request: String,
    _ body: (NIOAsyncChannelInboundStream<ByteBuffer>) async throws -> T
) async throws -> T {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: request))
        return try await body(inbound)
    }
}

/// Polls `condition` every 10 ms for up to `timeout`.
func eventually(timeout: Duration = .seconds(3), _ condition: () -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
