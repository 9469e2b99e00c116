import NIOCore
import NIOPosix
import Synchronization

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

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            // The client stopped reading long enough for the socket's buffers to fill.
            if !context.channel.isWritable { worker.state.withLock { $0.becameUnwritable += 1 } }
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
        /// Times the connection to the client stopped taking bytes.
        var becameUnwritable = 0
    }

    let script: @Sendable (Int) -> Reply
    let state = Mutex(State())
    private let channelBox = Mutex<(any Channel)?>(nil)
    var port: Int { channelBox.withLock { $0?.localAddress?.port ?? 0 } }
    var connections: Int { state.withLock { $0.connections } }
    var closedConnections: Int { state.withLock { $0.closedConnections } }
    var requests: [String] { state.withLock { $0.requests } }
    var largeBodiesSent: Int { state.withLock { $0.largeBodiesSent } }
    var becameUnwritable: Int { state.withLock { $0.becameUnwritable } }

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

