import GatewayWire
import Logging
import NIOCore
import Synchronization

/// One client connection of the binary protocol.
///
/// Reads frames in order; answers connection messages (Ping, Cancel, GoAway) at
/// once and runs each call in its own task, so calls proceed concurrently and
/// their replies interleave. Writes go through the channel's async writer, which
/// suspends while the socket is not writable: a slow reader slows its own calls
/// down instead of making the gateway buffer without bound.
final class BinaryConnection: Sendable {
    static let protocolVersion: UInt32 = 1

    private struct Call {
        let token: UInt64
        let task: Task<Void, Never>
    }

    private struct State {
        var calls: [UInt64: Call] = [:]
        var nextToken: UInt64 = 0
        var goingAway = false
        var lastActivity = ContinuousClock.now
        var highestStreamID: UInt64 = 0
        /// What Hello established: the client's key, and why it may not manage workers
        /// (nil: it may). Neither the key nor the peer changes on a connection.
        var clientKey: String?
        var adminRefusal: GatewayError?
    }

    let channel: any Channel
    private let outbound: NIOAsyncChannelOutboundWriter<Wire.Envelope>
    private let calls: BinaryCalls
    private let configuration: GatewayConfiguration.Binary
    private let authorizer: Authorizer
    private let logger: Logger
    private let metrics: BinaryMetrics
    private let state = Mutex(State())

    init(
        channel: any Channel, outbound: NIOAsyncChannelOutboundWriter<Wire.Envelope>, calls: BinaryCalls,
        configuration: GatewayConfiguration.Binary, authorizer: Authorizer, metrics: BinaryMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.channel = channel
        self.outbound = outbound
        self.calls = calls
        self.configuration = configuration
        self.authorizer = authorizer
        self.logger = logger
    }

    /// The number of calls running.
    var activeCalls: Int { state.withLock { $0.calls.count } }

    // MARK: Reading

    /// Serves the connection until the client leaves, a frame header is broken, or the
    /// gateway closes it. Running calls are cancelled when the client is gone.
    func serve(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async {
        var iterator = inbound.makeAsyncIterator()
        do {
            guard let first = try await iterator.next() else { return }
            guard await handshake(first) else {
                channel.close(promise: nil)
                return
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.closeWhenIdle() }
                while let payload = try await iterator.next() {
                    state.withLock { $0.lastActivity = .now }
                    await handle(payload)
                }
                group.cancelAll()
            }
        } catch let error as WireError {
            // A broken frame header: the byte stream cannot be trusted any more.
            await send(streamID: 0, .error(Self.frameError(error).wire))
            channel.close(promise: nil)
        } catch {
            logger.debug("binary connection ended", metadata: ["error": "\(error)"])
        }
        let running = state.withLock { state in
            let tasks = state.calls.values.map(\.task)
            state.calls.removeAll()
            return tasks
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }

    static func frameError(_ error: WireError) -> GatewayError {
        switch error.kind {
        case .frameTooLarge: .protocolError("FRAME_TOO_LARGE", 413, error.detail)
        case .compressedFrame: .protocolError("COMPRESSION_UNSUPPORTED", 400, error.detail)
        case .reservedFlags: .protocolError("RESERVED_FLAGS", 400, error.detail)
        case .malformedPayload, .invalidUTF8, .embeddedNUL: .protocolError("MALFORMED_PAYLOAD", 400, error.detail)
        }
    }

    /// The first frame must be Hello with our version (and key, when one is required).
    private func handshake(_ payload: ByteBuffer) async -> Bool {
        guard let envelope = try? Wire.Envelope(payload: payload), case .hello(let hello) = envelope.body else {
            await send(streamID: 0, .error(GatewayError.protocolError("HELLO_REQUIRED", 400, "the first message must be Hello").wire))
            return false
        }
        guard hello.protocolVersion == Self.protocolVersion else {
            await send(
                streamID: 0,
                .error(
                    GatewayError.protocolError(
                        "UNSUPPORTED_VERSION", 400, "protocol version \(hello.protocolVersion) is not supported (this server speaks \(Self.protocolVersion))"
                    ).wire
                )
            )
            return false
        }
        let key = hello.apiKey.isEmpty ? nil : hello.apiKey
        do {
            try authorizer.check(.inference, key: key, peer: channel.remoteAddress, style: .control)
        } catch {
            await send(streamID: 0, .error(GatewayError.protocolError("UNAUTHORIZED", 401, "a valid API key is required").wire))
            return false
        }
        var adminRefusal: GatewayError?
        do throws(GatewayError) {
            try authorizer.check(.admin, key: key, peer: channel.remoteAddress, style: .control)
        } catch {
            adminRefusal = error
        }
        state.withLock { [adminRefusal] state in
            state.clientKey = key
            state.adminRefusal = adminRefusal
        }
        await send(
            streamID: 0,
            .helloReply(
                Wire.HelloReply(
                    protocolVersion: Self.protocolVersion, serverName: "model-gateway",
                    maxFrameBytes: UInt32(clamping: configuration.maxFrameBytes),
                    maxConcurrentStreams: UInt32(clamping: configuration.maxConcurrentStreams)
                )
            )
        )
        return true
    }

    private func handle(_ payload: ByteBuffer) async {
        let envelope: Wire.Envelope
        do {
            envelope = try Wire.Envelope(payload: payload)
        } catch {
            let stream = Wire.Envelope.peekStreamID(payload: payload) ?? 0
            await send(streamID: stream, .error(GatewayError.protocolError("MALFORMED_PAYLOAD", 400, error.detail).wire))
            return
        }
        let stream = envelope.streamID
        guard let body = envelope.body else {
            await send(streamID: stream, .error(GatewayError.protocolError("UNKNOWN_MESSAGE", 400, "the envelope has no body this server knows").wire))
            return
        }
        switch body {
        case .ping(let nonce):
            await send(streamID: stream, .pong(nonce: nonce))
        case .cancel:
            let call = state.withLock { $0.calls[stream] }
            call?.task.cancel()
        case .goAway:
            // The client will not start new calls; it closes when it is done.
            break
        case .addWorker, .listWorkers, .getWorker, .updateWorker, .removeWorker, .listModels, .health, .generate:
            start(body, on: stream)
        case .hello:
            await send(streamID: stream, .error(GatewayError.protocolError("UNEXPECTED_MESSAGE", 400, "Hello was already exchanged").wire))
        case .helloReply, .pong, .error, .addWorkerReply, .listWorkersReply, .getWorkerReply, .updateWorkerReply, .removeWorkerReply,
            .listModelsReply, .healthReply, .generateChunk, .generateResult:
            await send(streamID: stream, .error(GatewayError.protocolError("UNEXPECTED_MESSAGE", 400, "a client cannot send server messages").wire))
        }
    }

    // MARK: Calls

    private enum Admission {
        case started
        case refused(GatewayError)
    }

    private func start(_ body: Wire.Envelope.Body, on stream: UInt64) {
        let admission: Admission = state.withLock { state in
            if stream == 0 { return .refused(.protocolError("INVALID_STREAM_ID", 400, "calls need a stream id of 1 or more")) }
            if state.goingAway { return .refused(.protocolError("GOING_AWAY", 503, "the server is shutting down this connection")) }
            if state.calls[stream] != nil {
                return .refused(.protocolError("STREAM_ID_IN_USE", 400, "stream \(stream) already has a call running"))
            }
            if body.isWorkerManagement, let refusal = state.adminRefusal {
                return .refused(refusal)
            }
            if state.calls.count >= configuration.maxConcurrentStreams {
                return .refused(.protocolError("TOO_MANY_STREAMS", 429, "at most \(configuration.maxConcurrentStreams) calls may run at once on a connection"))
            }
            state.highestStreamID = max(state.highestStreamID, stream)
            state.nextToken += 1
            let token = state.nextToken
            let key = state.clientKey
            let task = Task { await self.run(body, on: stream, token: token, clientKey: key) }
            state.calls[stream] = Call(token: token, task: task)
            return .started
        }
        if case .refused(let error) = admission {
            Task { await self.send(streamID: stream, .error(error.wire)) }
        }
    }

    private func run(_ body: Wire.Envelope.Body, on stream: UInt64, token: UInt64, clientKey: String?) async {
        metrics.gateway.binaryStreams.increment()
        metrics.gateway.binaryStreamsActive.add()
        defer { metrics.gateway.binaryStreamsActive.sub() }
        let observation = RequestObservation()
        let recorder = RequestRecorder(metrics: metrics.gateway, route: metrics.route(for: body), observation: observation, logger: logger)
        let outcome = CallOutcome()
        do {
            try await RequestObservation.$current.withValue(observation) {
                try await calls.run(body, clientKey: clientKey) { reply in
                    try Task.checkCancellation()
                    recorder.firstByte()
                    outcome.note(reply)
                    try await self.outbound.write(Wire.Envelope(streamID: stream, body: reply))
                }
            }
        } catch {
            if Task.isCancelled {
                outcome.status.store(499, ordering: .relaxed)
                // This task is cancelled, and a cancelled task's channel write fails at
                // once: the answer goes out from a task of its own.
                await Task {
                    await self.send(streamID: stream, .error(GatewayError.protocolError("CANCELLED", 499, "the call was cancelled").wire))
                }.value
            } else if !(error is CancellationError) {
                outcome.status.store(500, ordering: .relaxed)
                logger.debug("binary call failed", metadata: ["stream_id": "\(stream)", "error": "\(error)"])
                await send(streamID: stream, .error(GatewayError.internalError("the call failed: \(error)").wire))
            } else {
                outcome.status.store(499, ordering: .relaxed)
            }
        }
        recorder.finish(status: outcome.status.load(ordering: .relaxed))
        state.withLock { state in
            if state.calls[stream]?.token == token { state.calls.removeValue(forKey: stream) }
            state.lastActivity = .now
        }
    }

    // MARK: Writing and closing

    private func send(streamID: UInt64, _ body: Wire.Envelope.Body) async {
        do {
            try await outbound.write(Wire.Envelope(streamID: streamID, body: body))
        } catch {
            logger.trace("binary write failed", metadata: ["error": "\(error)"])
        }
    }

    /// Announces the end: no new calls; running calls finish within `grace`; then close.
    func goAway(reason: String, grace: Duration) async {
        let last = state.withLock { state in
            state.goingAway = true
            return state.highestStreamID
        }
        await send(streamID: 0, .goAway(Wire.GoAway(reason: reason, lastStreamID: last)))
        let deadline = ContinuousClock.now + grace
        while activeCalls > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await channel.close()
    }

    private func closeWhenIdle() async {
        let timeout = configuration.idleTimeout
        let tick = min(max(timeout / 4, .milliseconds(20)), .seconds(1))
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { return }
            let idle = state.withLock { state in state.calls.isEmpty && ContinuousClock.now - state.lastActivity >= timeout }
            if idle {
                await send(streamID: 0, .goAway(Wire.GoAway(reason: "idle timeout", lastStreamID: state.withLock { $0.highestStreamID })))
                try? await channel.close()
                return
            }
        }
    }
}

/// The status a binary call ended with, as its REST twin would have answered.
private final class CallOutcome: Sendable {
    /// 0 until a terminal message is sent.
    let status = Atomic<Int>(0)

    func note(_ reply: Wire.Envelope.Body) {
        switch reply {
        case .generateChunk:
            return
        case .error(let error):
            status.store(error.httpStatus == 0 ? 500 : Int(error.httpStatus), ordering: .relaxed)
        default:
            status.store(200, ordering: .relaxed)
        }
    }
}

/// The gateway's metrics and the series of each binary call, held by the listener.
struct BinaryMetrics: Sendable {
    let gateway: GatewayMetrics
    private let routes: [String: RouteMetrics]
    private let other: RouteMetrics

    init(_ gateway: GatewayMetrics) {
        self.gateway = gateway
        var routes: [String: RouteMetrics] = [:]
        for name in Wire.Envelope.Body.callNames {
            routes[name] = gateway.route("binary:" + name)
        }
        self.routes = routes
        self.other = gateway.route("binary:other")
    }

    func route(for body: Wire.Envelope.Body) -> RouteMetrics {
        routes[body.callName] ?? other
    }
}

extension Wire.Envelope.Body {
    static let callNames = ["add_worker", "list_workers", "get_worker", "update_worker", "remove_worker", "list_models", "health", "generate"]

    /// The call's name as a metric and log label.
    var callName: String {
        switch self {
        case .addWorker: "add_worker"
        case .listWorkers: "list_workers"
        case .getWorker: "get_worker"
        case .updateWorker: "update_worker"
        case .removeWorker: "remove_worker"
        case .listModels: "list_models"
        case .health: "health"
        case .generate: "generate"
        default: "other"
        }
    }

    /// Calls that change or read the worker registry (admin only, as on REST).
    var isWorkerManagement: Bool {
        switch self {
        case .addWorker, .listWorkers, .getWorker, .updateWorker, .removeWorker: true
        default: false
        }
    }
}

/// Comparison whose time does not depend on where two strings first differ.
enum ConstantTime {
    static func equals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for index in 0..<max(x.count, y.count) {
            let p = index < x.count ? x[index] : 0
            let q = index < y.count ? y[index] : 0
            difference |= p ^ q
        }
        return difference == 0 && x.count == y.count
    }
}
