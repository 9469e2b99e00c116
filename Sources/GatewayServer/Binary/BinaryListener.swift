import GatewayWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The binary protocol's TCP listener: a service beside the REST server, sharing
/// its registry, policies, retries and breakers through `BinaryCalls`.
///
/// One task per connection in a discarding task group, so one bad client cannot
/// take the listener down. On graceful shutdown it stops accepting, sends every
/// connection `GoAway`, lets running calls finish within the grace period, then
/// closes.
final class BinaryListener: Service {
    typealias Connection = NIOAsyncChannel<ByteBuffer, Wire.Envelope>

    let port: Int
    private let server: NIOAsyncChannel<Connection, Never>
    private let calls: BinaryCalls
    private let configuration: GatewayConfiguration.Binary
    private let grace: Duration
    private let authorizer: Authorizer
    private let logger: Logger
    private let metrics: BinaryMetrics
    private let connections = Mutex<[ObjectIdentifier: BinaryConnection]>([:])

    /// Binds at once (so the port is known before the gateway reports it is listening).
    init(host: String, configuration: GatewayConfiguration.Binary, grace: Duration, authorizer: Authorizer, calls: BinaryCalls, metrics: GatewayMetrics, logger: Logger) async throws {
        let maxFrame = configuration.maxFrameBytes
        self.server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: configuration.port ?? 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadBytes: maxFrame)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(EnvelopeFrameEncoder()))
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        self.port = server.channel.localAddress?.port ?? 0
        self.calls = calls
        self.configuration = configuration
        self.grace = grace
        self.authorizer = authorizer
        self.logger = logger
        self.metrics = BinaryMetrics(metrics)
    }

    /// Connections open now.
    var connectionCount: Int { connections.withLock { $0.count } }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    } catch {
                        logger.debug("binary listener stopped accepting", metadata: ["error": "\(error)"])
                    }
                }
            }
        } onGracefulShutdown: {
            self.server.channel.close(promise: nil)
            let open = self.connections.withLock { Array($0.values) }
            for connection in open {
                Task { await connection.goAway(reason: "server shutting down", grace: self.grace) }
            }
        }
    }

    /// Closes the listener (used when the gateway stops without a graceful shutdown).
    func close() {
        server.channel.close(promise: nil)
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                let handler = BinaryConnection(
                    channel: connection.channel, outbound: outbound, calls: calls, configuration: configuration, authorizer: authorizer,
                    metrics: metrics, logger: logger
                )
                metrics.gateway.binaryConnections.add()
                defer { metrics.gateway.binaryConnections.sub() }
                let key = ObjectIdentifier(handler)
                connections.withLock { $0[key] = handler }
                defer { _ = connections.withLock { $0.removeValue(forKey: key) } }
                await handler.serve(inbound)
            }
        } catch {
            logger.debug("binary connection closed with an error", metadata: ["error": "\(error)"])
        }
    }
}
