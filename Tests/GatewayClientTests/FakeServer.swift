import GatewayWire
import NIOCore
import NIOPosix
import Synchronization

/// A small stand-in for the gateway's binary listener: it answers `Hello`, logs every
/// envelope it receives and hands the rest to a test-supplied behaviour. Replies are
/// written as raw frames cut into random small pieces, so the client's decoder sees
/// frames split across reads and several frames in one read.
final class FakeServer: Sendable {
    struct Options: Sendable {
        var helloReply = Wire.HelloReply(protocolVersion: 1, serverName: "fake-gateway", maxFrameBytes: 4 << 20, maxConcurrentStreams: 0)
        /// Answer `Hello` with this error on stream 0, then close.
        var refuseHello: Wire.CallError?
        /// Never answer `Hello`.
        var ignoreHello = false
        /// Cut outgoing bytes into random pieces of 1-16 bytes.
        var splitWrites = true
    }

    typealias Behavior = @Sendable (Wire.Envelope, FakePeer) -> Void

    let port: Int
    let options: Options
    let behavior: Behavior
    private let serverChannel = Mutex<(any Channel)?>(nil)
    private let log = Mutex<[Wire.Envelope]>([])
    private let connected = Mutex<[FakePeer]>([])

    private init(port: Int, options: Options, behavior: @escaping Behavior) {
        self.port = port
        self.options = options
        self.behavior = behavior
    }

    /// Starts listening on a free port of 127.0.0.1.
    static func start(_ options: Options = Options(), behavior: @escaping Behavior = FakeServer.cannedReplies) async throws -> FakeServer {
        let box = Mutex<FakeServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let server = box.withLock({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(FakeServerHandler(server: server))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let server = FakeServer(port: channel.localAddress!.port!, options: options, behavior: behavior)
        server.serverChannel.withLock { $0 = channel }
        box.withLock { $0 = server }
        return server
    }

    /// Closes the listener and every connection.
    func shutdown() async {
        for peer in peers { peer.close() }
        if let channel = serverChannel.withLock({ $0 }) {
            try? await channel.close()
        }
    }

    var received: [Wire.Envelope] { log.withLock { $0 } }
    var peers: [FakePeer] { connected.withLock { $0 } }

    fileprivate func record(_ envelope: Wire.Envelope) { log.withLock { $0.append(envelope) } }
    fileprivate func add(_ peer: FakePeer) { connected.withLock { $0.append(peer) } }

    /// Waits (polling) until `condition` holds for what the server has received.
    @discardableResult
    func waitUntil(timeout: Duration = .seconds(5), _ condition: ([Wire.Envelope]) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(received) { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return condition(received)
    }

    func receivedCancel(on streamID: UInt64) -> Bool {
        received.contains { $0.streamID == streamID && $0.body == .cancel }
    }

    /// The stream id the server saw for the first request matching `predicate`.
    func streamID(where predicate: (Wire.Envelope.Body) -> Bool) -> UInt64? {
        received.first { $0.streamID != 0 && $0.body.map(predicate) == true }?.streamID
    }

    /// A canned answer for every request kind; `getWorker("missing")` answers
    /// `WORKER_NOT_FOUND`; a generate of text "hold" sends one chunk and holds the
    /// stream open, a `getWorker("hold")` holds it unanswered (both until `Cancel`,
    /// answered `CANCELLED`, or until the test releases them).
    static let cannedReplies: Behavior = { envelope, peer in
        let id = envelope.streamID
        guard let body = envelope.body else { return }
        switch body {
        case .cancel:
            if peer.takeHeld(id) != nil {
                peer.send(id, .error(.init(code: "CANCELLED", message: "the call was cancelled", httpStatus: 499)))
            }
        case .addWorker(let request):
            peer.send(id, .addWorkerReply(.init(status: "accepted", workerID: "w-1", url: request.url, location: "/workers/w-1", message: "queued \(request.labels.count) labels")))
        case .listWorkers:
            peer.send(id, .listWorkersReply(.init(workers: [sampleWorker(id: "w-1"), sampleWorker(id: "w-2")], total: 2, stats: .init(regularCount: 2))))
        case .getWorker(let request):
            switch request.workerID {
            case "missing": peer.send(id, .error(.init(code: "WORKER_NOT_FOUND", message: "worker missing not found", httpStatus: 404)))
            case "hold": peer.hold(id, body)
            case "bad-reply": peer.send(id, .healthReply(.init()))
            default: peer.send(id, .getWorkerReply(.init(worker: sampleWorker(id: request.workerID))), after: peer.randomDelay)
            }
        case .updateWorker(let request):
            let summary = "priority=\(request.priority.map(String.init) ?? "-") labels=\(request.labels?.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") ?? "-") key=\(request.apiKey ?? "-")"
            peer.send(id, .updateWorkerReply(.init(status: "accepted", workerID: request.workerID, message: summary)))
        case .removeWorker(let request):
            peer.send(id, .removeWorkerReply(.init(status: "accepted", workerID: request.workerID, message: "removed")))
        case .listModels:
            peer.send(id, .listModelsReply(.init(models: [.init(id: "sim-model", workerCount: 2, healthyWorkerCount: 1)])))
        case .health:
            peer.send(id, .healthReply(.init(status: "ok", healthyWorkers: 1, totalWorkers: 2)))
        case .generate(let request):
            guard case .text(let text) = request.input else {
                peer.send(id, .error(.init(code: "invalid_field", message: "text only here", httpStatus: 400)))
                return
            }
            if text == "hold" {
                peer.send(id, .generateChunk(.init(text: "first", index: 0)))
                peer.hold(id, body)
                return
            }
            let words = text.split(separator: " ").map(String.init)
            let usage = Wire.Usage(promptTokens: UInt32(words.count), completionTokens: UInt32(words.count), totalTokens: UInt32(2 * words.count))
            if request.stream {
                var bodies: [Wire.Envelope.Body] = words.enumerated().map { .generateChunk(.init(text: $1, index: UInt32($0))) }
                bodies.append(.generateResult(.init(finishReason: "stop", usage: usage, model: request.model, workerID: "w-1", requestID: "r-\(id)")))
                peer.sendSpread(id, bodies)
            } else {
                peer.send(id, .generateResult(.init(text: text, finishReason: "stop", usage: usage, model: request.model, workerID: "w-1", requestID: "r-\(id)")))
            }
        default:
            peer.send(id, .error(.init(code: "UNEXPECTED_MESSAGE", message: "not a request", httpStatus: 400)))
        }
    }

    static func sampleWorker(id: String) -> Wire.WorkerInfo {
        Wire.WorkerInfo(
            id: id, url: "http://127.0.0.1:8000", modelID: "sim-model", priority: 50, cost: 1, workerType: .regular,
            isHealthy: true, load: 3, connectionMode: "HTTP", runtimeType: .sglang, metadata: ["tp_size": "1"], labels: ["zone": "a"]
        )
    }
}

/// One accepted connection, as the behaviour sees it.
final class FakePeer: Sendable {
    struct State {
        var active: Set<UInt64> = []
        var maxActive = 0
        var held: [UInt64: Wire.Envelope.Body] = [:]
    }

    let channel: any Channel
    let split: Bool
    /// Random reply delays (0-15 ms) when set, so concurrent calls finish out of order.
    let delays = Atomic<Bool>(false)
    private let state = Mutex(State())

    init(channel: any Channel, split: Bool) {
        self.channel = channel
        self.split = split
    }

    var randomDelay: TimeAmount? { delays.load(ordering: .relaxed) ? .milliseconds(Int64.random(in: 0...15)) : nil }
    var maxActive: Int { state.withLock { $0.maxActive } }
    var heldStreams: [UInt64] { state.withLock { Array($0.held.keys).sorted() } }

    fileprivate func requestArrived(_ streamID: UInt64) {
        state.withLock {
            $0.active.insert(streamID)
            $0.maxActive = max($0.maxActive, $0.active.count)
        }
    }

    func hold(_ streamID: UInt64, _ body: Wire.Envelope.Body) { state.withLock { $0.held[streamID] = body } }
    func takeHeld(_ streamID: UInt64) -> Wire.Envelope.Body? { state.withLock { $0.held.removeValue(forKey: streamID) } }

    /// Sends `body` on `streamID`, now or after `delay`.
    func send(_ streamID: UInt64, _ body: Wire.Envelope.Body, after delay: TimeAmount? = nil) {
        let envelope = Wire.Envelope(streamID: streamID, body: body)
        if let delay {
            channel.eventLoop.scheduleTask(in: delay) { self.write([envelope]) }
        } else {
            write([envelope])
        }
    }

    /// Sends several messages of one stream, each after a short random pause, so they
    /// interleave with other streams' messages.
    func sendSpread(_ streamID: UInt64, _ bodies: [Wire.Envelope.Body]) {
        var delay: Int64 = 0
        for body in bodies {
            delay += Int64.random(in: 0...3)
            let envelope = Wire.Envelope(streamID: streamID, body: body)
            channel.eventLoop.scheduleTask(in: .milliseconds(delay)) { self.write([envelope]) }
        }
    }

    /// Writes envelopes as frames (all in one task on the event loop, so pieces of two
    /// sends never mix), cut into random pieces when `split`.
    func write(_ envelopes: [Wire.Envelope]) {
        var bytes = ByteBuffer()
        for envelope in envelopes {
            try! Frame.write(envelope, into: &bytes)
            if envelope.streamID != 0, let body = envelope.body, body.isTerminal {
                _ = state.withLock { $0.active.remove(envelope.streamID) }
            }
        }
        writeRaw(bytes)
    }

    func writeRaw(_ bytes: ByteBuffer) {
        let split = self.split
        channel.eventLoop.execute {
            var bytes = bytes
            guard split else {
                self.channel.writeAndFlush(bytes, promise: nil)
                return
            }
            while bytes.readableBytes > 0 {
                let piece = bytes.readSlice(length: min(bytes.readableBytes, Int.random(in: 1...16)))!
                self.channel.writeAndFlush(piece, promise: nil)
            }
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

extension Wire.Envelope.Body {
    var isTerminal: Bool {
        switch self {
        case .generateChunk, .cancel, .ping, .pong, .hello, .helloReply, .goAway: false
        default: true
        }
    }
}

private final class FakeServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let server: FakeServer
    var peer: FakePeer?
    var greeted = false

    init(server: FakeServer) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let peer = FakePeer(channel: context.channel, split: server.options.splitWrites)
        self.peer = peer
        server.add(peer)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let peer else { return }
        let envelope: Wire.Envelope
        do {
            envelope = try Wire.Envelope(payload: unwrapInboundIn(data))
        } catch {
            peer.write([Wire.Envelope(streamID: 0, body: .error(.init(code: "MALFORMED_PAYLOAD", message: "\(error)", httpStatus: 400)))])
            return
        }
        server.record(envelope)
        if !greeted {
            guard case .hello = envelope.body else {
                peer.write([Wire.Envelope(streamID: 0, body: .error(.init(code: "HELLO_REQUIRED", message: "say Hello first", httpStatus: 400)))])
                context.eventLoop.execute { peer.close() }
                return
            }
            if server.options.ignoreHello { return }
            if let refusal = server.options.refuseHello {
                peer.write([Wire.Envelope(streamID: 0, body: .error(refusal))])
                context.eventLoop.execute { peer.close() }
                return
            }
            greeted = true
            peer.write([Wire.Envelope(streamID: 0, body: .helloReply(server.options.helloReply))])
            return
        }
        if envelope.streamID == 0 {
            if case .ping(let nonce) = envelope.body {
                peer.write([Wire.Envelope(streamID: 0, body: .pong(nonce: nonce))])
            }
            return
        }
        if let body = envelope.body, body != .cancel { peer.requestArrived(envelope.streamID) }
        server.behavior(envelope, peer)
    }
}
