import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One answer, read whole, with the times the replayer needs.
struct ReplayAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
    /// Monotonic nanoseconds of the first body byte (nil: no body).
    var firstBodyAt: UInt64?
    var endAt: UInt64
}

/// The outstanding request of one keep-alive connection (HTTP/1.1, no pipelining).
private final class ReplayHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    // Touched only on the channel's event loop.
    var pending: EventLoopPromise<ReplayAnswer>?
    private var status = 0
    private var headers = HTTPHeaders()
    private var body: ByteBuffer?
    private var firstAt: UInt64?
    var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            headers = head.headers
            keepAlive = head.isKeepAlive
        case .body(var part):
            if firstAt == nil { firstAt = nowNanos() }
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            let answer = ReplayAnswer(
                status: status, headers: headers, body: body.map { String(buffer: $0) } ?? "", firstBodyAt: firstAt, endAt: nowNanos()
            )
            status = 0
            headers = HTTPHeaders()
            body = nil
            firstAt = nil
            let promise = pending
            pending = nil
            promise?.succeed(answer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let promise = pending
        pending = nil
        promise?.fail(HTTPClientFailure(description: "connection closed before the answer ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let promise = pending
        pending = nil
        promise?.fail(error)
        context.close(promise: nil)
    }
}

/// Keep-alive HTTP/1.1 connections to one loopback server, opened as needed and reused
/// when idle, so an open-loop load is never held back by a fixed pool.
final class ReplayHTTPClient: Sendable {
    private struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<ReplayHandler>
    }

    let host: String
    let port: Int
    private let idle = Mutex<[Connection]>([])

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Sends one request and reads its answer whole (`timeout` from the send).
    func send(method: HTTPMethod, path: String, headers extra: [(String, String)] = [], body: [UInt8]?, timeout: TimeAmount) async throws -> ReplayAnswer {
        let connection = try await checkout()
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        for (name, value) in extra { headers.add(name: name, value: value) }
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        let channel = connection.channel
        let promise = channel.eventLoop.makePromise(of: ReplayAnswer.self)
        let handler = connection.handler
        let buffer = body.map { channel.allocator.buffer(bytes: $0) }
        channel.eventLoop.execute {
            handler.value.pending = promise
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let buffer { channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(HTTPClientFailure(description: "no complete answer within \(timeout.nanoseconds / 1_000_000_000) s"))
            channel.close(promise: nil)
        }
        do {
            let answer = try await promise.futureResult.get()
            timer.cancel()
            let reusable = try await channel.eventLoop.submit { handler.value.keepAlive }.get()
            if reusable, channel.isActive {
                idle.withLock { $0.append(connection) }
            } else {
                try? await channel.close()
            }
            return answer
        } catch {
            timer.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// Closes every idle connection.
    func close() async {
        let connections = idle.withLock { list -> [Connection] in
            defer { list.removeAll() }
            return list
        }
        for connection in connections { try? await connection.channel.close() }
    }

    private func checkout() async throws -> Connection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if connection.channel.isActive { return connection }
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port)
            .get()
        let handler = try await channel.eventLoop.submit {
            let handler = ReplayHandler()
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
        return Connection(channel: channel, handler: handler)
    }
}

/// A URL of a loopback server: `http://127.0.0.1:30000` (the replayer and the splitter
/// refuse any other host, so a mistyped flag cannot send load off this machine).
struct LoopbackURL: Sendable, Equatable {
    var host: String
    var port: Int
    var path: String

    init(_ text: String) throws {
        var rest = Substring(text)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) } else if rest.contains("://") {
            throw HTTPClientFailure(description: "\(text): only http:// URLs are supported")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        path = String(rest[slash...])
        let authority = rest[..<slash]
        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            portText = after.hasPrefix(":") ? after.dropFirst() : nil
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
            portText = nil
        }
        guard let port = Int(portText ?? "80"), (1...65535).contains(port) else {
            throw HTTPClientFailure(description: "\(text): bad port")
        }
        guard Self.isLoopback(String(host)) else {
            throw HTTPClientFailure(description: "\(text): only loopback hosts (127.0.0.0/8, localhost, ::1) are allowed")
        }
        self.host = host == "localhost" ? "127.0.0.1" : String(host)
        self.port = port
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
