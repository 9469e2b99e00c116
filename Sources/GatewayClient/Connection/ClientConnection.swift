import GatewayWire
import NIOCore
import Synchronization

/// One binary-protocol connection: the call table behind a `Mutex`, the channel it
/// writes to, and the entry points its inbound handler calls.
final class ClientConnection: Sendable {
    private let state = Mutex(ConnectionState())
    /// The server's frame limit, from `HelloReply` (0: unknown, not checked here).
    private let serverMaxFrameBytes = Atomic<Int>(0)

    init() {}

    func attach(_ channel: any Channel) {
        state.withLock { $0.channel = channel }
    }

    private var channel: (any Channel)? { state.withLock { $0.channel } }

    // MARK: Handshake

    /// Sends `Hello` and waits for `HelloReply` (or the server's refusal) for at most `timeout`.
    func handshake(_ hello: Wire.Hello, timeout: TimeAmount) async throws -> Wire.HelloReply {
        guard let channel else { throw GatewayClientError.connectionClosed("not connected") }
        let timer = channel.eventLoop.scheduleTask(in: timeout) { [self] in
            run(state.withLock { $0.failHello(.timedOut("no HelloReply within \(timeout)")) })
        }
        defer { timer.cancel() }
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                run(state.withLock { $0.startHello(continuation) })
                write(Wire.Envelope(streamID: 0, body: .hello(hello)))
            }
        } onCancel: {
            run(state.withLock { $0.failHello(.connectionClosed("the connect was cancelled")) })
        }
        guard reply.protocolVersion == 1 else {
            throw GatewayClientError.protocolViolation("the server speaks protocol version \(reply.protocolVersion), not 1")
        }
        serverMaxFrameBytes.store(Int(reply.maxFrameBytes), ordering: .relaxed)
        state.withLock { $0.maxConcurrentStreams = Int(reply.maxConcurrentStreams) }
        return reply
    }

    // MARK: Calls

    /// How often a call refused with `TOO_MANY_STREAMS` is tried again.
    static let streamLimitRetries = 20

    /// The pause before retry `attempt` (1-based) of a call refused with `TOO_MANY_STREAMS`.
    static func streamLimitBackoff(attempt: Int) -> Duration {
        .milliseconds(min(2 * attempt, 25))
    }

    /// Runs one unary call: reserve a stream, send the request, wait for its terminal message.
    ///
    /// The client keeps within the server's `max_concurrent_streams`, but the server may
    /// still count a call whose terminal message has already arrived here; a call it
    /// refuses with `TOO_MANY_STREAMS` never started, so it is tried again shortly.
    func call(_ body: Wire.Envelope.Body) async throws -> Wire.Envelope.Body {
        try checkSendable(body)
        var attempt = 0
        while true {
            do {
                return try await callOnce(body)
            } catch let error as GatewayClientError where error.code == "TOO_MANY_STREAMS" && attempt < Self.streamLimitRetries {
                attempt += 1
                try await Task.sleep(for: Self.streamLimitBackoff(attempt: attempt))
            }
        }
    }

    private func callOnce(_ body: Wire.Envelope.Body) async throws -> Wire.Envelope.Body {
        let streamID = try await reserveStream()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let (send, effects) = state.withLock { $0.install(streamID, .unary(continuation), isCancelled: Task.isCancelled) }
                run(effects)
                if send { sendRequest(Wire.Envelope(streamID: streamID, body: body)) }
            }
        } onCancel: {
            run(state.withLock { $0.abandon(streamID) })
        }
    }

    /// Starts a streamed call; its events arrive on the returned stream. Ending the
    /// stream early (cancellation, or its last iterator going away) sends `Cancel`.
    func startStream(_ body: Wire.Envelope.Body) async throws -> AsyncThrowingStream<GenerateEvent, any Error> {
        try checkSendable(body)
        let streamID = try await reserveStream()
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GenerateEvent.self, throwing: (any Error).self)
        continuation.onTermination = { [weak self] termination in
            guard case .cancelled = termination, let self else { return }
            run(state.withLock { $0.abandon(streamID) })
        }
        let (send, effects) = state.withLock { $0.install(streamID, .stream(continuation), isCancelled: Task.isCancelled) }
        run(effects)
        if send { sendRequest(Wire.Envelope(streamID: streamID, body: body)) }
        return stream
    }

    /// `Ping` on stream 0, resumed by the matching `Pong`.
    func ping() async throws {
        let nonce = state.withLock { $0.makeToken() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                run(state.withLock { $0.startPing(nonce: nonce, continuation, isCancelled: Task.isCancelled) })
            }
        } onCancel: {
            run(state.withLock { $0.cancelPing(nonce: nonce) })
        }
    }

    /// The `GoAway` the server sent, if any.
    var goAway: Wire.GoAway? { state.withLock { $0.goAway } }

    /// Calls the server may still be running (including cancelled ones not yet acknowledged).
    var activeCalls: Int { state.withLock { $0.activeCalls } }

    private func reserveStream() async throws -> UInt64 {
        let token = state.withLock { $0.makeToken() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                run(state.withLock { $0.reserveSlot(token: token, continuation: continuation, isCancelled: Task.isCancelled) })
            }
        } onCancel: {
            run(state.withLock { $0.cancelSlotWait(token: token) })
        }
    }

    /// Refuses, before a stream is taken, a request that cannot be encoded or whose
    /// frame the server would refuse (which would close the connection for every call).
    private func checkSendable(_ body: Wire.Envelope.Body) throws {
        let frame: ByteBuffer
        do {
            frame = try Frame.encode(Wire.Envelope(streamID: 0, body: body))
        } catch {
            throw GatewayClientError.invalidRequest(error.detail)
        }
        let limit = serverMaxFrameBytes.load(ordering: .relaxed)
        // + 11: the stream id's key and varint, absent from the frame measured here.
        let payload = frame.readableBytes - Frame.headerSize + 11
        if limit > 0 && payload > limit {
            throw GatewayClientError.invalidRequest("the request needs a \(payload)-byte frame; the server accepts at most \(limit)")
        }
    }

    private func sendRequest(_ envelope: Wire.Envelope) {
        let streamID = envelope.streamID
        guard let written = write(envelope) else { return }
        if state.withLock({ $0.markSent(streamID) }) {
            write(Wire.Envelope(streamID: streamID, body: .cancel))
        }
        written.whenFailure { [self] error in
            let reason: GatewayClientError =
                if let error = error as? WireError { .invalidRequest(error.detail) } else { .connectionClosed("the request could not be written: \(error)") }
            run(state.withLock { $0.failCall(streamID, reason) })
        }
    }

    @discardableResult
    private func write(_ envelope: Wire.Envelope) -> EventLoopFuture<Void>? {
        channel?.writeAndFlush(envelope)
    }

    // MARK: Inbound (called on the event loop by the handler)

    func receive(_ envelope: Wire.Envelope) {
        run(state.withLock { $0.receive(envelope) })
    }

    func receiveUndecodable(streamID: UInt64?, _ error: WireError) {
        run(state.withLock { $0.receiveUndecodable(streamID: streamID, error.detail) })
    }

    /// A local failure (a broken frame from the server, a socket error); the channel closes next.
    func transportFailed(_ error: any Error) {
        state.withLock { state in
            if state.transportError == nil { state.transportError = "\(error)" }
        }
    }

    /// The socket is closed: everything still waiting fails.
    func channelClosed() {
        run(state.withLock { $0.close(.connectionClosed($0.closeReason)) })
    }

    // MARK: Close

    /// Fails everything pending with "the client was closed" and closes the socket.
    func close() async {
        let channel = state.withLock { $0.channel }
        run(state.withLock { $0.close(.connectionClosed("the client was closed")) })
        guard let channel else { return }
        channel.close(promise: nil)
        try? await channel.closeFuture.get()
    }

    // MARK: Effects

    private func run(_ effects: [ConnectionState.Effect]) {
        for effect in effects {
            switch effect {
            case .resumeCall(let continuation, let result): continuation.resume(with: result)
            case .yield(let continuation, let event): continuation.yield(event)
            case .finish(let continuation, let error): continuation.finish(throwing: error)
            case .grantSlot(let continuation, let result): continuation.resume(with: result)
            case .resumePing(let continuation, let result): continuation.resume(with: result)
            case .resumeHello(let continuation, let result): continuation.resume(with: result)
            case .send(let envelope): write(envelope)
            }
        }
    }
}

/// Decodes frame payloads into envelopes for the connection and reports the socket's end.
final class ClientInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: ClientConnection

    init(connection: ClientConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        do {
            connection.receive(try Wire.Envelope(payload: payload))
        } catch {
            connection.receiveUndecodable(streamID: Wire.Envelope.peekStreamID(payload: payload), error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.channelClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Only a broken frame header or a socket error gets here: the byte stream
        // cannot be trusted any more.
        connection.transportFailed(error)
        context.close(promise: nil)
    }
}
