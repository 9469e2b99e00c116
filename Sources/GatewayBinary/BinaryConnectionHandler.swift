import GatewayCore
import GatewayInference
import GatewayObservability
import GatewayWire
import GatewayWorkers
import Logging
import NIOCore

/// One client connection of the binary protocol, on its event loop.
///
/// Frames are read in order. Connection messages (Ping, Cancel, GoAway) are answered at
/// once; each call runs concurrently with the others, and their messages interleave. A
/// `generate` is handed to the inference core on this same loop and its answer mapped to
/// chunks as it arrives (``GenerateRelay``); worker-management calls run in a task on the
/// shared pool. The rules (handshake, stream ids, GoAway, half-close) are
/// ``BinarySession``'s. While the client is not reading, running generates pause
/// instead of buffering without bound.
final class BinaryConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    static let protocolVersion: UInt32 = 1

    private enum Work {
        /// A generate whose call is being started.
        case starting
        case inference(InferenceTask, GenerateRelay)
        case control(Task<Void, Never>)
    }

    private struct Call {
        let token: UInt64
        let work: Work
        /// A management call's record (a generate's is the inference core's).
        var record: RequestRecord?
    }

    private let door: BinaryDoor
    private let loop: any EventLoop
    private var context: ChannelHandlerContext?
    private var session: BinarySession
    private var calls: [UInt64: Call] = [:]
    private var nextToken: UInt64 = 0
    /// What Hello established: the client's rate-limit principal, and why it may not
    /// manage workers (nil: it may).
    private var principal = "ip:unknown"
    private var adminRefusal: GatewayError?
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?

    init(door: BinaryDoor, loop: any EventLoop) {
        self.door = door
        self.loop = loop
        self.session = BinarySession(maxConcurrentStreams: door.configuration.maxConcurrentStreams)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        door.metrics.binaryConnections.add()
        scheduleIdleCheck()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        door.metrics.binaryConnections.sub()
        tearDown()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    /// The connection is gone: every running call stops.
    private func tearDown() {
        idleTimer?.cancel()
        idleTimer = nil
        session.closed()
        let running = calls
        calls = [:]
        for (_, call) in running {
            stop(call)
            if var record = call.record { record.finish(status: 499, aborted: true, metrics: door.metrics, logger: door.logger) }
            door.metrics.binaryStreamsActive.sub()
        }
    }

    private func stop(_ call: Call) {
        switch call.work {
        case .starting: break
        case .inference(let task, _): task.cancel()
        case .control(let task): task.cancel()
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        lastActivity = .now()
        if session.phase == .awaitingHello {
            handshake(payload)
            return
        }
        guard session.phase != .closed else { return }
        let envelope: Wire.Envelope
        do {
            envelope = try Wire.Envelope(payload: payload)
        } catch {
            let stream = Wire.Envelope.peekStreamID(payload: payload) ?? 0
            refuse(.protocolError("MALFORMED_PAYLOAD", 400, error.detail), on: stream)
            return
        }
        let stream = envelope.streamID
        guard let body = envelope.body else {
            refuse(.protocolError("UNKNOWN_MESSAGE", 400, "the envelope has no body this server knows"), on: stream)
            return
        }
        switch body {
        case .ping(let nonce):
            send(.pong(nonce: nonce), on: stream)
        case .cancel:
            cancel(stream)
        case .goAway:
            // The client will not start new calls; it closes when it is done.
            break
        case .addWorker, .listWorkers, .getWorker, .updateWorker, .removeWorker, .listModels, .health, .generate:
            start(body, on: stream)
        case .hello:
            refuse(.protocolError("UNEXPECTED_MESSAGE", 400, "Hello was already exchanged"), on: stream)
        case .helloReply, .pong, .error, .addWorkerReply, .listWorkersReply, .getWorkerReply, .updateWorkerReply, .removeWorkerReply,
            .listModelsReply, .healthReply, .generateChunk, .generateResult:
            refuse(.protocolError("UNEXPECTED_MESSAGE", 400, "a client cannot send server messages"), on: stream)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let wire = error as? WireError else {
            door.logger.debug("binary connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        // A broken frame header: the byte stream cannot be trusted any more.
        let failure: GatewayError =
            switch wire.kind {
            case .frameTooLarge: .protocolError("FRAME_TOO_LARGE", 413, wire.detail)
            case .compressedFrame: .protocolError("COMPRESSION_UNSUPPORTED", 400, wire.detail)
            case .reservedFlags: .protocolError("RESERVED_FLAGS", 400, wire.detail)
            case .malformedPayload, .invalidUTF8, .embeddedNUL: .protocolError("MALFORMED_PAYLOAD", 400, wire.detail)
            }
        closeAfter(.error(failure.wire(.control)))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            if session.inputEnded() { context.close(promise: nil) }
        } else if event is ChannelShouldQuiesceEvent {
            goAway(reason: "server shutting down")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        for call in calls.values {
            if case .inference(let task, _) = call.work {
                if writable { task.resume() } else { task.pause() }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// The first frame must be Hello with our version (and key, when one is required).
    /// Errors of the handshake arrive on stream 0, then the connection closes.
    private func handshake(_ payload: ByteBuffer) {
        guard let envelope = try? Wire.Envelope(payload: payload), case .hello(let hello) = envelope.body else {
            closeAfter(.error(GatewayError.protocolError("HELLO_REQUIRED", 400, "the first message must be Hello").wire(.control)))
            return
        }
        guard hello.protocolVersion == Self.protocolVersion else {
            let message = "protocol version \(hello.protocolVersion) is not supported (this server speaks \(Self.protocolVersion))"
            closeAfter(.error(GatewayError.protocolError("UNSUPPORTED_VERSION", 400, message).wire(.control)))
            return
        }
        // Either key opens the connection (the admin key also allows inference); which
        // calls it may make is checked per call.
        let key = hello.apiKey.isEmpty ? nil : hello.apiKey
        let peer = context?.channel.remoteAddress?.ipAddress
        do throws(GatewayError) {
            try door.authorizer.check(.inference, key: key, peerIP: peer)
        } catch {
            closeAfter(.error(GatewayError.protocolError("UNAUTHORIZED", 401, "a valid API key is required").wire(.control)))
            return
        }
        do throws(GatewayError) {
            try door.authorizer.check(.admin, key: key, peerIP: peer)
        } catch {
            adminRefusal = error
        }
        principal = InferenceCall.principal(presentedKey: key, authorizer: door.authorizer, peerAddress: peer)
        session.helloAccepted()
        send(
            .helloReply(
                Wire.HelloReply(
                    protocolVersion: Self.protocolVersion, serverName: door.configuration.serverName,
                    maxFrameBytes: UInt32(clamping: door.configuration.maxFrameBytes),
                    maxConcurrentStreams: UInt32(clamping: door.configuration.maxConcurrentStreams)
                )
            ),
            on: 0
        )
    }

    // MARK: Calls

    private func start(_ body: Wire.Envelope.Body, on stream: UInt64) {
        let refusal = body.isWorkerManagement ? adminRefusal : nil
        switch session.request(on: stream, refusal: refusal) {
        case .refuse(let error, let errorStream):
            send(.error(error.wire(body.style)), on: errorStream)
            return
        case .start:
            break
        }
        nextToken += 1
        let token = nextToken
        door.metrics.binaryStreams.increment()
        door.metrics.binaryStreamsActive.add()
        if case .generate(let request) = body, let engine = door.engine, let context {
            let requestID = RequestIDs.accept(request.requestID)
            let relay = GenerateRelay(stream: stream, requestID: requestID, connection: self)
            let call = InferenceCall(
                input: .generate(request), requestID: requestID, routingKey: request.routingKey.isEmpty ? nil : request.routingKey,
                principal: principal
            )
            // Placed before the call starts: a call answered at once ends it right away.
            calls[stream] = Call(token: token, work: .starting, record: nil)
            let task = engine.start(call, on: loop, route: door.routes.metrics(for: body), receiver: relay)
            if !relay.isDone, calls[stream]?.token == token {
                calls[stream] = Call(token: token, work: .inference(task, relay), record: nil)
                if !context.channel.isWritable { task.pause() }
            }
            return
        }
        let record = RequestRecord(route: door.routes.metrics(for: body), metrics: door.metrics)
        let calls = door.calls
        let bound = NIOLoopBound(self, eventLoop: loop)
        let style = body.style
        let task = Task {
            let reply: Wire.Envelope.Body
            do throws(GatewayError) {
                reply = try await calls.answer(body)
            } catch {
                reply = .error(error.wire(style))
            }
            let answer = reply
            bound.eventLoop.execute {
                let handler = bound.value
                guard handler.calls[stream]?.token == token else { return }
                handler.finishCall(on: stream, with: answer)
            }
        }
        self.calls[stream] = Call(token: token, work: .control(task), record: record)
    }

    /// A client's Cancel: the call stops, and its terminal message says so.
    private func cancel(_ stream: UInt64) {
        guard let call = calls[stream] else { return }
        stop(call)
        finishCall(on: stream, with: .error(GatewayError.protocolError("CANCELLED", 499, "the call was cancelled").wire(.control)))
    }

    /// Writes a call's terminal message; its stream id is free from now on.
    func finishCall(on stream: UInt64, with terminal: Wire.Envelope.Body) {
        guard let call = calls.removeValue(forKey: stream) else { return }
        door.metrics.binaryStreamsActive.sub()
        if var record = call.record {
            record.finish(status: terminal.status, metrics: door.metrics, logger: door.logger)
        }
        send(terminal, on: stream)
        lastActivity = .now()
        if session.terminalWritten(on: stream) { context?.close(promise: nil) }
    }

    /// An error for a message that is not a call. On the stream of a running call it
    /// goes to stream 0 instead: that call's own terminal message comes from the call.
    private func refuse(_ error: GatewayError, on stream: UInt64) {
        send(.error(error.wire(.control)), on: calls[stream] == nil ? stream : 0)
    }

    // MARK: Writing and closing

    func send(_ body: Wire.Envelope.Body, on stream: UInt64) {
        guard let context else { return }
        switch frame(body, on: stream, context: context) {
        case .success(let buffer):
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .failure(let error):
            if case .generateChunk = body, let call = calls[stream] {
                // A chunk that cannot go out ends its call: the error is the one terminal.
                if case .inference(_, let relay) = call.work { relay.abandon() }
                stop(call)
                finishCall(on: stream, with: .error(error.wire(.control)))
            } else {
                context.writeAndFlush(wrapOutboundOut(errorFrame(error, on: stream, context: context)), promise: nil)
            }
        }
    }

    /// Writes `body` on stream 0, then closes.
    private func closeAfter(_ body: Wire.Envelope.Body) {
        guard let context else { return }
        session.closed()
        let done = context.eventLoop.makePromise(of: Void.self)
        let buffer: ByteBuffer
        switch frame(body, on: 0, context: context) {
        case .success(let frame): buffer = frame
        case .failure(let error): buffer = errorFrame(error, on: 0, context: context)
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: done)
        done.futureResult.assumeIsolated().whenComplete { [self] _ in self.context?.close(promise: nil) }
    }

    /// One frame for `body`. The limit advertised in `HelloReply.max_frame_bytes` holds for
    /// what the server sends too: a reply over it, or one that cannot be encoded, fails
    /// here and is answered with an `Error` on the same stream (a frame the client can
    /// read), never sent oversized and never dropped silently.
    private func frame(_ body: Wire.Envelope.Body, on stream: UInt64, context: ChannelHandlerContext) -> Result<ByteBuffer, GatewayError> {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        let limit = door.configuration.maxFrameBytes
        do throws(WireError) {
            try Frame.write(Wire.Envelope(streamID: stream, body: body), into: &buffer)
        } catch {
            door.logger.error("binary reply could not be encoded", metadata: ["stream_id": "\(stream)", "error": "\(error)"])
            return .failure(.protocolError("UNENCODABLE_REPLY", 500, "the reply could not be encoded: \(error)"))
        }
        let size = buffer.readableBytes - Frame.headerSize
        guard size <= limit else {
            door.logger.warning("binary reply over the frame limit", metadata: ["stream_id": "\(stream)", "bytes": "\(size)", "limit": "\(limit)"])
            return .failure(
                .protocolError(
                    "REPLY_TOO_LARGE", 500,
                    "the reply is \(size) bytes, over max_frame_bytes (\(limit)); ask for less or raise the server's --max-frame-bytes"
                )
            )
        }
        return .success(buffer)
    }

    private func errorFrame(_ error: GatewayError, on stream: UInt64, context: ChannelHandlerContext) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        // An Error of a code and a short message always encodes, and fits in 1 KiB (the
        // smallest limit --max-frame-bytes allows).
        try? Frame.write(Wire.Envelope(streamID: stream, body: .error(error.wire(.control))), into: &buffer)
        return buffer
    }

    /// Announces the end: no new calls; running calls finish (the listener enforces the
    /// grace period); then the close.
    private func goAway(reason: String) {
        guard let (last, closeNow) = session.goAway() else { return }
        if closeNow {
            closeAfter(.goAway(Wire.GoAway(reason: reason, lastStreamID: last)))
        } else {
            send(.goAway(Wire.GoAway(reason: reason, lastStreamID: last)), on: 0)
        }
    }

    /// A connection with no call and no frame for the idle timeout gets `GoAway` and is closed.
    private func scheduleIdleCheck() {
        let timeout = TimeAmount(door.configuration.idleTimeout)
        idleTimer = loop.assumeIsolated().scheduleTask(deadline: lastActivity + timeout) { [self] in
            idleTimer = nil
            guard session.phase != .closed else { return }
            if session.isIdle && NIODeadline.now() - lastActivity >= timeout {
                if session.phase == .goingAway {
                    context?.close(promise: nil)
                } else {
                    goAway(reason: "idle timeout")
                }
                return
            }
            scheduleIdleCheck()
        }
    }
}

extension Wire.Envelope.Body {
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

    static let callNames = ["add_worker", "list_workers", "get_worker", "update_worker", "remove_worker", "list_models", "health", "generate", "other"]

    /// Calls that change or read the worker registry (admin only, as on REST).
    var isWorkerManagement: Bool {
        switch self {
        case .addWorker, .listWorkers, .getWorker, .updateWorker, .removeWorker: true
        default: false
        }
    }

    /// The error spelling of the call's REST twin (worker API or OpenAI).
    var style: ErrorStyle {
        switch self {
        case .generate, .listModels: .openAI
        default: .control
        }
    }

    /// The status a terminal message stands for (as its REST twin would have answered).
    var status: Int {
        if case .error(let error) = self { return error.httpStatus == 0 ? 500 : Int(error.httpStatus) }
        return 200
    }
}
