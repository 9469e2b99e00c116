import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Forwards bytes to its partner channel, reading only while the partner can take them.
private final class GlueHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    // Set on the loop before any read; both sides of a pair share one event loop.
    var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReading() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, let partnerContext = partner.context, !partnerContext.channel.isWritable {
            pendingRead = true
            return
        }
        context.read()
    }

    private func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}

/// `gateway-bench split`: a round-robin TCP splitter on loopback. Each accepted connection
/// goes to the next target whole (HTTP keep-alive requests follow their connection), as a
/// layer-4 load balancer in front of gateway replicas does.
func runSplitCommand(listenHost: String, listenPort: Int, targets: [LoopbackURL]) async throws {
    precondition(!targets.isEmpty)
    let next = Atomic<Int>(0)
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.backlog, value: 1024)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelOption(.autoRead, value: false)
        .childChannelInitializer { inbound in
            let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % targets.count
            let target = targets[index]
            return ClientBootstrap(group: inbound.eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: target.host, port: target.port)
                .flatMap { outbound in
                    inbound.eventLoop.makeCompletedFuture {
                        let a = GlueHandler()
                        let b = GlueHandler()
                        a.partner = b
                        b.partner = a
                        try inbound.pipeline.syncOperations.addHandler(a)
                        try outbound.pipeline.syncOperations.addHandler(b)
                        inbound.closeFuture.whenComplete { _ in outbound.close(promise: nil) }
                        outbound.closeFuture.whenComplete { _ in inbound.close(promise: nil) }
                        _ = inbound.setOption(.autoRead, value: true)
                    }
                }
        }
        .bind(host: listenHost, port: listenPort)
        .get()
    let port = channel.localAddress?.port ?? listenPort
    print("gateway-bench split listening on http://\(listenHost):\(port) -> \(targets.map { "\($0.host):\($0.port)" }.joined(separator: ","))")
    fflushStdout()
    try await channel.closeFuture.get()
}

func fflushStdout() { fflush(nil) }
