import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOPosix
import Synchronization
import Testing

@testable import GatewayServer

/// A worker that answers each request as its script says, counting connections and
/// requests (one read is one request: the client sends each in one write).
final class ScriptedWorker: Sendable {
    enum Reply: Sendable {
        /// These bytes, then keep the connection (or close it).
        case bytes(String, close: Bool)
        /// Close the connection without answering.
        case hangUp
        /// Never answer.
        case silent
        /// A 200 with a body of `size` bytes, sent in 64 KiB writes.
        case large(size: Int)
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let worker: ScriptedWorker

        init(worker: ScriptedWorker) { self.worker = worker }

        func channelActive(context: ChannelHandlerContext) {
            worker.state.withLock { $0.connections += 1 }
        }

        func channelInactive(context: ChannelHandlerContext) {
            worker.state.withLock { $0.closedConnections += 1 }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = String(buffer: unwrapInboundIn(data))
            let index = worker.state.withLock { state in
                state.requests.append(request)
                return state.requests.count - 1
            }
            switch worker.script(index) {
            case .bytes(let text, let close):
                let done = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)))
                if close { done.whenComplete { _ in context.close(promise: nil) } }
            case .hangUp:
                context.close(promise: nil)
            case .silent:
                break
            case .large(let size):
                context.write(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n")), promise: nil)
                // Byte i of the body is i % 256; every 64 KiB part starts at a multiple of 256.
                let pattern = ByteBuffer(bytes: (0..<65536).map { UInt8(truncatingIfNeeded: $0) })
                var left = size
                while left > 0 {
                    let part = min(left, 65536)
                    left -= part
                    let written = context.writeAndFlush(wrapOutboundOut(pattern.getSlice(at: 0, length: part)!))
                    if left == 0 { written.whenSuccess { [worker] in worker.state.withLock { $0.largeBodiesSent += 1 } } }
                }
            }
        }
    }

    struct State {
        var connections = 0
        var closedConnections = 0
        var requests: [String] = []
        /// `.large` bodies whose last byte the socket took.
        var largeBodiesSent = 0
    }

    let script: @Sendable (Int) -> Reply
    let state = Mutex(State())
    private let channelBox = Mutex<(any Channel)?>(nil)
    var port: Int { channelBox.withLock { $0?.localAddress?.port ?? 0 } }
    var connections: Int { state.withLock { $0.connections } }
    var closedConnections: Int { state.withLock { $0.closedConnections } }
    var requests: [String] { state.withLock { $0.requests } }
    var largeBodiesSent: Int { state.withLock { $0.largeBodiesSent } }

    init(_ script: @escaping @Sendable (Int) -> Reply) async throws {
        self.script = script
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(worker: self)) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        channelBox.withLock { $0 = channel }
    }

    func close() async {
        try? await channelBox.withLock { $0 }?.close()
    }

    static func ok(_ body: String, close: Bool = false, extraHeaders: String = "") -> Reply {
        .bytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extraHeaders)\r\n\(body)", close: close)
    }
}

@Suite("Upstream HTTP client", .timeLimit(.minutes(1)))
struct UpstreamClientTests {
    /// One loop, so every request uses the same pool.
    static func withClient(_ body: (UpstreamHTTPClient) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamHTTPClient(group: group, connectTimeout: .seconds(2))
        do {
            try await body(client)
        } catch {
            client.shutdown()
            try await group.shutdownGracefully()
            throw error
        }
        client.shutdown()
        try await group.shutdownGracefully()
    }

    static func request(_ port: Int, _ body: String = #"{"text":"hi"}"#) -> UpstreamHTTPClient.Request {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        return .init(host: "127.0.0.1", port: port, authority: "127.0.0.1:\(port)", path: "/generate", headers: headers, body: ByteBuffer(string: body))
    }

    static func soon() -> NIODeadline { .now() + .seconds(10) }

    @Test("Keep-alive: sequential requests share one connection; each sends head and body with Host")
    func keepAlive() async throws {
        let worker = try await ScriptedWorker { i in ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            for i in 0..<5 {
                let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
                #expect(response.status == .ok)
                #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == #"{"n":\#(i)}"#)
            }
        }
        #expect(worker.connections == 1)
        #expect(worker.requests.count == 5)
        for request in worker.requests {
            #expect(request.hasPrefix("POST /generate HTTP/1.1\r\n"))
            #expect(request.contains("Host: 127.0.0.1:\(worker.port)\r\n"))
            #expect(request.hasSuffix("\r\n\r\n" + #"{"text":"hi"}"#))
        }
    }

    @Test("An answer with Connection: close is not reused; the next request opens a new connection")
    func connectionClose() async throws {
        // The worker keeps its side open: only the header can stop the client reusing it.
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}", close: false, extraHeaders: "Connection: close\r\n") }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            for _ in 0..<3 {
                let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
                _ = try await response.body.collect(upTo: 1024)
            }
        }
        #expect(worker.connections == 3)
        #expect(worker.requests.count == 3)
    }

    @Test("A keep-alive connection the worker closed while idle is replaced; every call succeeds")
    func staleConnection() async throws {
        // Every answer claims keep-alive, and then the worker hangs up.
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}", close: true) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            for _ in 0..<4 {
                let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
                #expect(response.status == .ok)
                _ = try await response.body.collect(upTo: 1024)
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(worker.requests.count == 4)
        #expect(worker.connections == 4)
    }

    @Test("A reused connection that dies before any answer is retried once on a new one")
    func reusedConnectionRetried() async throws {
        // The first answer keeps the connection; the second request on it is dropped unanswered.
        let worker = try await ScriptedWorker { i in i == 1 ? .hangUp : ScriptedWorker.ok(#"{"n":\#(i)}"#) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            _ = try await client.execute(Self.request(worker.port), deadline: Self.soon()).body.collect(upTo: 1024)
            let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            #expect(String(buffer: try await response.body.collect(upTo: 1024)) == #"{"n":2}"#)
        }
        #expect(worker.requests.count == 3)
        #expect(worker.connections == 2)
    }

    @Test("A new connection that dies before answering fails at once, without a second send")
    func freshConnectionNotRetried() async throws {
        let worker = try await ScriptedWorker { _ in .hangUp }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            await #expect(throws: UpstreamClientError.remoteClosed) {
                _ = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            }
        }
        #expect(worker.requests.count == 1)
        #expect(UpstreamFailure(UpstreamClientError.remoteClosed) == .transport("the worker closed the connection"))
    }

    @Test("Half an answer: the body fails with remoteClosed; the next call succeeds on a new connection")
    func halfAnswer() async throws {
        let worker = try await ScriptedWorker { i in
            i == 0 ? .bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"half\"", close: true) : ScriptedWorker.ok("{}")
        }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            await #expect(throws: UpstreamClientError.remoteClosed) {
                _ = try await response.body.collect(upTo: 1024)
            }
            _ = try await client.execute(Self.request(worker.port), deadline: Self.soon()).body.collect(upTo: 1024)
        }
        #expect(worker.connections == 2)
    }

    @Test("A large body arrives whole and in order while it is read slowly")
    func largeBodyWithBackpressure() async throws {
        let size = 2 << 20
        let worker = try await ScriptedWorker { _ in .large(size: size) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            var received = 0
            var chunks = 0
            let pattern = (0..<(65536 + 256)).map { UInt8(truncatingIfNeeded: $0) }
            for try await chunk in response.body {
                let start = received % 256
                guard chunk.readableBytes <= 65536, Array(chunk.readableBytesView) == Array(pattern[start..<start + chunk.readableBytes]) else {
                    Issue.record("the chunk at byte \(received) is out of order")
                    return
                }
                received += chunk.readableBytes
                chunks += 1
                if chunks % 8 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(received == size)
            // The connection is back in the pool: the next request reuses it.
            _ = try await client.execute(Self.request(worker.port), deadline: Self.soon()).body.collect(upTo: size)
        }
        #expect(worker.connections == 1)
    }

    @Test("Reading pauses while the consumer is behind: a 32 MiB answer is not all sent until it is read")
    func readingPauses() async throws {
        let size = 32 << 20
        let worker = try await ScriptedWorker { _ in .large(size: size) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            var iterator = response.body.makeAsyncIterator()
            var received = try await iterator.next()?.readableBytes ?? 0
            // Unread, the body would all be in the client's memory well within this pause.
            try await Task.sleep(for: .milliseconds(500))
            #expect(worker.largeBodiesSent == 0, "the worker sent the whole body while nobody read it")
            while let chunk = try await iterator.next() { received += chunk.readableBytes }
            #expect(received == size)
            try await eventually("the worker's last write completes") { worker.largeBodiesSent == 1 }
        }
    }

    @Test("A body dropped halfway closes its connection; the next request gets a new one")
    func abandonedBody() async throws {
        let worker = try await ScriptedWorker { _ in .large(size: 2 << 20) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            do {
                let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
                var iterator = response.body.makeAsyncIterator()
                _ = try await iterator.next()
            }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
            let response = try await client.execute(Self.request(worker.port), deadline: Self.soon())
            #expect(try await response.body.collect(upTo: 4 << 20).readableBytes == 2 << 20)
        }
        #expect(worker.connections == 2)
    }

    @Test("A silent worker: the deadline fails the call and closes the connection")
    func deadline() async throws {
        let worker = try await ScriptedWorker { _ in .silent }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            await #expect(throws: UpstreamClientError.deadlineExceeded) {
                _ = try await client.execute(Self.request(worker.port), deadline: .now() + .milliseconds(200))
            }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
        }
        #expect(UpstreamFailure(UpstreamClientError.deadlineExceeded) == .timeout("timed out waiting for the answer"))
    }

    @Test("Cancelling the caller closes the upstream connection")
    func cancellation() async throws {
        let worker = try await ScriptedWorker { _ in .silent }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            let call = Task { try await client.execute(Self.request(worker.port), deadline: Self.soon()) }
            try await eventually("the request reaches the worker") { worker.requests.count == 1 }
            call.cancel()
            await #expect(throws: CancellationError.self) { _ = try await call.value }
            try await eventually("the worker sees the connection closed") { worker.closedConnections == 1 }
        }
    }

    @Test("Small known-length answers come whole with the head; larger ones and event streams stream")
    func wholeAnswers() async throws {
        let sse = "data: {\"x\":1}\n\n"
        let worker = try await ScriptedWorker { i in
            switch i {
            case 0: ScriptedWorker.ok(#"{"n":0}"#)
            case 1: .large(size: 4096)
            default: .bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: \(sse.utf8.count)\r\n\r\n\(sse)", close: false)
            }
        }
        defer { Task { await worker.close() } }
        func isWhole(_ body: UpstreamBody) -> Bool {
            if case .whole = body.backing { return true }
            return false
        }
        try await Self.withClient { client in
            var request = Self.request(worker.port)
            request.wholeAnswerLimit = 1024
            let small = try await client.execute(request, deadline: Self.soon())
            #expect(isWhole(small.body))
            #expect(String(buffer: try await small.body.collect(upTo: 1024)) == #"{"n":0}"#)
            let large = try await client.execute(request, deadline: Self.soon())
            #expect(!isWhole(large.body))
            #expect(try await large.body.collect(upTo: 8192).readableBytes == 4096)
            let stream = try await client.execute(request, deadline: Self.soon())
            #expect(!isWhole(stream.body))
            #expect(String(buffer: try await stream.body.collect(upTo: 1024)) == sse)
        }
        #expect(worker.connections == 1)
    }

    @Test("A whole answer cut off mid-body fails the call itself (nothing was handed over)")
    func wholeAnswerCutOff() async throws {
        let worker = try await ScriptedWorker { _ in .bytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"half\"", close: true) }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            var request = Self.request(worker.port)
            request.wholeAnswerLimit = 1024
            await #expect(throws: UpstreamClientError.remoteClosed) {
                _ = try await client.execute(request, deadline: Self.soon())
            }
        }
    }

    @Test("A caller cancelled before the call starts gets CancellationError at once; nothing is sent")
    func cancelledBeforeStart() async throws {
        let worker = try await ScriptedWorker { _ in ScriptedWorker.ok("{}") }
        defer { Task { await worker.close() } }
        try await Self.withClient { client in
            let call = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await client.execute(Self.request(worker.port), deadline: Self.soon())
            }
            await #expect(throws: CancellationError.self) { _ = try await call.value }
        }
        #expect(worker.requests.isEmpty)
    }

    @Test("Nothing listening: the failure reads as a refused connection")
    func refused() async throws {
        // Below the ephemeral range: no parallel test's listener can take it meanwhile.
        let port = try await closedPort()
        try await Self.withClient { client in
            do {
                _ = try await client.execute(Self.request(port), deadline: Self.soon())
                Issue.record("a closed port answered")
            } catch {
                #expect(UpstreamFailure(error).isConnectionRefused)
            }
        }
    }
}
