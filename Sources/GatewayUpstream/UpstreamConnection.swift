import GatewayCore
import NIOCore
import NIOHTTP1

/// One connection to a worker: writes an exchange's request, feeds the answer back, and
/// holds reads while the exchange's receiver is not keeping up.
///
/// Loop-confined, like its pool.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let key: ConnectionPool.Key
    private let pool: ConnectionPool
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    private var pendingRead = false
    private var closed = false

    init(pool: ConnectionPool, key: ConnectionPool.Key) {
        self.pool = pool
        self.key = key
    }

    var isUsable: Bool { !closed && (context?.channel.isActive ?? false) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes the exchange's request: head, body and end in one flush.
    func send(_ exchange: Exchange) {
        self.exchange = exchange
        guard let context, !closed else {
            self.exchange = nil
            exchange.connectionFailed(TransportError.remoteClosed, mayBeStale: true)
            return
        }
        let request = exchange.request
        var headers = request.headers
        if !headers.contains(name: "host") {
            headers.add(name: "Host", value: request.url.port.map { "\(request.url.host):\($0)" } ?? request.url.host)
        }
        if let key = request.apiKey {
            headers.replaceOrAdd(name: "Authorization", value: "Bearer \(key)")
        }
        if let body = request.body {
            headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        } else if request.method == .POST || request.method == .PUT {
            headers.replaceOrAdd(name: "Content-Length", value: "0")
        }
        let path = request.url.path + (request.path.hasPrefix("/") ? request.path : "/" + request.path)
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: request.method, uri: path, headers: headers))), promise: nil)
        if let body = request.body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else {
            // An answer nobody asked for: the connection is out of step.
            close()
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            exchange.receivedHead(head)
        case .body(let buffer):
            exchange.receivedBody(buffer)
        case .end:
            self.exchange = nil
            exchange.receivedEnd()
        }
    }

    func read(context: ChannelHandlerContext) {
        if let exchange, exchange.isPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A socket error on a reused connection may be a stale keep-alive; a parse error
        // is the worker's answer and is not sent again.
        if let exchange {
            self.exchange = nil
            exchange.connectionFailed(error, mayBeStale: error is IOError)
        }
        close()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        if let exchange {
            self.exchange = nil
            exchange.connectionFailed(TransportError.remoteClosed, mayBeStale: true)
        }
        pool.closed(self)
        context.fireChannelInactive()
    }

    /// The exchange gave up (cancelled, timed out, failed): this connection is
    /// mid-answer and cannot be reused.
    func abort(_ exchange: Exchange) {
        if self.exchange === exchange { self.exchange = nil }
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}
