import NIOCore
import NIOPosix
import Synchronization

/// A request count shared by a server's connection handlers.
final class RequestCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// A TCP server that misbehaves as a worker: it never answers, answers garbage,
/// or answers half a response and hangs up.
final class BadWorker: Sendable {
    enum Mode: Sendable {
        /// Accepts, reads, never answers.
        case silent
        /// Answers bytes that are not HTTP, then closes.
        case garbage
        /// Answers a head announcing 100 bytes, sends 10, then closes.
        case halfResponse
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        let requests: RequestCounter

        init(mode: Mode, requests: RequestCounter) {
            self.mode = mode
            self.requests = requests
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            requests.increment()
            let reply: String
            switch mode {
            case .silent: return
            case .garbage: reply = "THIS IS NOT HTTP\r\n\r\n"
            case .halfResponse: reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"choices\""
            }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    let channel: any Channel
    private let counter = RequestCounter()
    var port: Int { channel.localAddress?.port ?? 0 }
    var url: String { "http://127.0.0.1:\(port)" }
    /// Requests received (reads on any connection).
    var requests: Int { counter.value }

    init(_ mode: Mode) async throws {
        let counter = counter
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(mode: mode, requests: counter)) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// A raw TCP client for slow or idle connections.
final class RawClient: Sendable {
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }
    }

    let channel: any Channel
    private let collector = Collector()

    /// Everything the server sent so far, as text.
    var received: String { collector.bytes.withLock { String(decoding: $0, as: UTF8.self) } }

    init(port: Int) async throws {
        let collector = collector
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
    }

    var isOpen: Bool { channel.isActive }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    func close() async {
        try? await channel.close()
    }
}
