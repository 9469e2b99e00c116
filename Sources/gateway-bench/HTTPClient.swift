import NIOCore
import NIOHTTP1
import NIOPosix

/// One answer as the load generator sees it.
struct HTTPResult: Sendable {
    var status: Int
    /// Nanoseconds from sending the request to the first body byte (0: no body).
    var firstBodyNanos: UInt64
    var bodyBytes: Int
}

struct HTTPClientFailure: Error, CustomStringConvertible {
    var description: String
}

/// A prepared request: the same head and body are sent every time.
struct HTTPRequestTemplate: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?

    init(method: HTTPMethod, path: String, host: String, body: String?) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
        }
        head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        self.body = body.map { ByteBuffer(string: $0) }
    }
}

/// Tracks the single outstanding request of a keep-alive connection (HTTP/1.1
/// without pipelining: one request at a time per connection). Touched only on
/// the channel's event loop.
final class HTTPClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    var pending: EventLoopPromise<HTTPResult>?
    var start: UInt64 = 0
    private var status = 0
    private var first: UInt64 = 0
    private var bytes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let buffer):
            if first == 0 { first = nowNanos() }
            bytes += buffer.readableBytes
        case .end:
            let result = HTTPResult(status: status, firstBodyNanos: first == 0 ? 0 : first - start, bodyBytes: bytes)
            status = 0
            first = 0
            bytes = 0
            let promise = pending
            pending = nil
            promise?.succeed(result)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let promise = pending
        pending = nil
        promise?.fail(HTTPClientFailure(description: "connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let promise = pending
        pending = nil
        promise?.fail(error)
        context.close(promise: nil)
    }
}

/// An HTTP/1.1 keep-alive connection on SwiftNIO.
final class HTTPConnection: Sendable {
    let channel: any Channel
    private let handler: HTTPClientHandler

    private init(channel: any Channel, handler: HTTPClientHandler) {
        self.channel = channel
        self.handler = handler
    }

    static func connect(host: String, port: Int) async throws -> HTTPConnection {
        let handler = HTTPClientHandler()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port)
            .get()
        return HTTPConnection(channel: channel, handler: handler)
    }

    func send(_ request: HTTPRequestTemplate) async throws -> HTTPResult {
        let promise = channel.eventLoop.makePromise(of: HTTPResult.self)
        let channel = self.channel
        let handler = self.handler
        channel.eventLoop.execute {
            guard handler.pending == nil else {
                promise.fail(HTTPClientFailure(description: "a request is already outstanding on this connection"))
                return
            }
            handler.pending = promise
            handler.start = nowNanos()
            channel.write(HTTPClientRequestPart.head(request.head), promise: nil)
            if let body = request.body {
                channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }
}
