import GatewayCore
import GatewayInference
import GatewayObservability
import GatewayWire
import GatewayWorkers
import Logging
import NIOCore

/// The binary door: what every connection of the binary listener shares.
public final class BinaryDoor: Sendable {
    public struct Configuration: Sendable {
        /// Largest frame payload accepted (longer frames close the connection).
        public var maxFrameBytes: Int
        /// Calls one connection may have running at once (`TOO_MANY_STREAMS` above).
        public var maxConcurrentStreams: Int
        /// A connection with no call and no frame for this long gets `GoAway` and is closed.
        public var idleTimeout: Duration
        public var serverName: String

        public init(maxFrameBytes: Int = 4 * 1024 * 1024, maxConcurrentStreams: Int = 100, idleTimeout: Duration = .seconds(300), serverName: String = "model-gateway") {
            self.maxFrameBytes = maxFrameBytes
            self.maxConcurrentStreams = maxConcurrentStreams
            self.idleTimeout = idleTimeout
            self.serverName = serverName
        }
    }

    /// The series of each binary call, looked up once.
    struct Routes: Sendable {
        private let table: [String: RouteMetrics]

        init(_ metrics: GatewayMetrics) {
            var table: [String: RouteMetrics] = [:]
            for name in Wire.Envelope.Body.callNames { table[name] = metrics.route("binary:" + name) }
            self.table = table
        }

        func metrics(for body: Wire.Envelope.Body) -> RouteMetrics {
            table[body.callName] ?? table["other"]!
        }
    }

    let configuration: Configuration
    let engine: InferenceEngine?
    let calls: BinaryCalls
    let authorizer: Authorizer
    let metrics: GatewayMetrics
    let routes: Routes
    let logger: Logger

    public init(configuration: Configuration, engine: InferenceEngine, workers: WorkerService, authorizer: Authorizer, metrics: GatewayMetrics, logger: Logger) {
        self.configuration = configuration
        self.engine = engine
        self.calls = BinaryCalls(workers: workers, registry: workers.registry)
        self.authorizer = authorizer
        self.metrics = metrics
        self.routes = Routes(metrics)
        self.logger = logger
    }

    /// Sets up a new connection's pipeline: the frame codec and the connection's handler.
    /// Runs on the channel's event loop.
    public func initialize(_ channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadBytes: configuration.maxFrameBytes)))
        try pipeline.addHandler(BinaryConnectionHandler(door: self, loop: channel.eventLoop))
    }
}
