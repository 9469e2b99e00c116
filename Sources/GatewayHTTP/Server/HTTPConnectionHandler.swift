import GatewayCore
import GatewayInference
import GatewayObservability
import GatewayOpenAI
import Logging
import NIOCore
import NIOHTTP1

/// Answers the requests of one HTTP/1.1 connection, one at a time and in order.
///
/// A request is read whole (its body up to the route's limit) on the event loop and
/// dispatched once from its path: inference goes to the inference core on this same
/// loop (the worker's connection lives here too, so a proxied request never changes
/// threads), probes and `/metrics` are answered in place, and the other routes run in
/// a task on the shared pool (the worker list takes milliseconds at 10,000 workers).
///
/// Parts of pipelined requests that arrive meanwhile wait, and so does a half-close
/// (the client may still want its answer); past `maxHeldBytes` reading stops until
/// the answer is out. The request cycle's decisions (timers, closing) are
/// ``RequestCycle``'s. When the connection closes, the request under way is cancelled,
/// and with it the call to the worker.
final class HTTPConnectionHandler: ChannelDuplexHandler, InferenceReceiver {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Pipelined input held while answering before reading stops.
    static let maxHeldBytes = 64 * 1024
    /// What a held head, error or event counts against `maxHeldBytes`.
    private static let heldItemBytes = 64

    private enum Held {
        case part(HTTPServerRequestPart)
        case error(any Error)
        case event(Any)
    }

    /// The request being read or answered.
    private struct Current {
        let head: HTTPRequestHead
        /// The route, matched once at the head (it picks the body limit, then dispatches).
        let match: Result<(route: RESTRoute, workerID: String?)?, GatewayError>
        let arrived: ContinuousClock.Instant
        var body: ByteBuffer?
        let bodyLimit: Int
        var overflow = false
        /// A door-answered request's record (inference records are the core's).
        var record: RequestRecord?
        /// The inference call's request id, echoed on its answer.
        var requestID: String?
        /// The answer under way is an event stream (a worker failing mid-answer ends it with an error event).
        var isEventStream = false
        var isStreaming = false
        var status = 200

        var isHead: Bool { head.method == .HEAD }
    }

    private let door: RESTDoor
    private let loop: any EventLoop
    private var context: ChannelHandlerContext?
    private var cycle = RequestCycle()
    private var peerIPCache: String??
    private var timer: Scheduled<Void>?
    private var current: Current?
    private var inference: InferenceTask?
    private var control: Task<Void, Never>?
    /// Tells apart the answers of successive requests (a task's late write is dropped).
    private var serial = 0
    private var held = CircularBuffer<Held>(initialCapacity: 4)
    private var heldBytes = 0
    private var readHeld = false
    /// Control-route chunks waiting for the client to take more.
    private var writabilityWaiters: [EventLoopPromise<Void>] = []

    init(door: RESTDoor, loop: any EventLoop) {
        self.door = door
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { execute(cycle.opened()) }
    }

    func channelActive(context: ChannelHandlerContext) {
        execute(cycle.opened())
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        tearDown()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        held.removeAll()
        context.fireChannelInactive()
    }

    /// The connection is gone: whatever runs for it stops.
    private func tearDown() {
        timer?.cancel()
        timer = nil
        inference?.cancel()
        inference = nil
        control?.cancel()
        control = nil
        if var record = current?.record {
            record.finish(status: current?.status ?? 499, aborted: true, metrics: door.metrics, logger: door.logger)
            current?.record = nil
        }
        for waiter in writabilityWaiters { waiter.fail(ChannelError.ioOnClosedChannel) }
        writabilityWaiters = []
    }

    // MARK: Input

    /// A read brought raw bytes (``ByteWatcher`` sees them before the decoder).
    func bytesArrived() {
        execute(cycle.bytesArrived())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard cycle.phase != .answering && held.isEmpty else {
            hold(.part(part))
            return
        }
        receive(part)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        execute(cycle.readComplete())
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if cycle.phase == .answering {
            hold(.error(error))
            return
        }
        refuse(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if cycle.phase == .answering || !held.isEmpty {
            hold(.event(event))
            return
        }
        handle(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        execute(cycle.writabilityChanged(isWritable: writable))
        if writable {
            inference?.resume()
            let waiters = writabilityWaiters
            writabilityWaiters = []
            for waiter in waiters { waiter.succeed() }
        } else {
            inference?.pause()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if cycle.phase == .answering && heldBytes >= Self.maxHeldBytes {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func handle(_ event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            execute(cycle.inputEnded())
        } else if event is ChannelShouldQuiesceEvent {
            execute(cycle.quiesce())
        } else {
            context?.fireUserInboundEventTriggered(event)
        }
    }

    private func hold(_ item: Held) {
        if case .part(.body(let buffer)) = item { heldBytes += buffer.readableBytes } else { heldBytes += Self.heldItemBytes }
        held.append(item)
    }

    /// The input held while answering, taken up again in order (on the next tick, so a
    /// request answered at once does not nest into the next one).
    private func replayHeld() {
        guard let context else { return }
        context.eventLoop.assumeIsolated().execute { [self] in
            while cycle.phase != .answering && cycle.phase != .closed, let item = held.popFirst() {
                switch item {
                case .part(let part):
                    if case .body(let buffer) = part { heldBytes -= buffer.readableBytes } else { heldBytes -= Self.heldItemBytes }
                    receive(part)
                case .error(let error):
                    heldBytes -= Self.heldItemBytes
                    refuse(error)
                case .event(let event):
                    heldBytes -= Self.heldItemBytes
                    handle(event)
                }
            }
            if readHeld && heldBytes < Self.maxHeldBytes, let context = self.context {
                readHeld = false
                context.read()
            }
        }
    }

    private func receive(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            execute(cycle.receivedHead(keepAlive: head.isKeepAlive))
            let match = Result { () throws(GatewayError) in try RESTRoute.match(Self.path(of: head.uri)) }
            let isInference: Bool
            if case .success(let matched?) = match, case .inference = matched.route { isInference = true } else { isInference = false }
            let limit = isInference ? door.configuration.maxInferenceBodyBytes : door.configuration.maxControlBodyBytes
            current = Current(head: head, match: match, arrived: .now, bodyLimit: limit)
            if head.method == .CONNECT { cycle.answerNeedsClose() }
            if head.headers.first(name: "expect")?.lowercased() == "100-continue", head.version.minor >= 1 {
                let length = head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
                if length <= limit {
                    context?.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                }
            }
        case .body(let buffer):
            guard cycle.phase == .readingBody, current != nil else { return }
            // Past the limit the rest is read and dropped (the connection stays usable)
            // and the route answers 413.
            if current!.overflow { return }
            let size = (current!.body?.readableBytes ?? 0) + buffer.readableBytes
            if size > current!.bodyLimit {
                current!.overflow = true
                current!.body = nil
            } else if current!.body == nil {
                current!.body = buffer
            } else {
                current!.body!.writeImmutableBuffer(buffer)
            }
        case .end:
            guard cycle.phase == .readingBody, current != nil else { return }
            execute(cycle.receivedEnd())
            dispatch()
        }
    }

    /// A request that cannot be read (malformed input): 400, then close (never while an
    /// answer is under way: the error waits its turn).
    private func refuse(_ error: any Error) {
        guard let context, cycle.phase != .closed else { return }
        _ = cycle.failed()
        tearDown()
        let message = error is HTTPParserError ? "malformed HTTP request: \(error)" : "the request could not be read: \(error)"
        let body = GatewayError.badRequest(message).jsonBody(style: .control)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        addStandardHeaders(&headers)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        // Closed fully once the answer is out: a half-closed socket would sit in
        // FIN_WAIT2 behind the client's unread bytes.
        done.futureResult.assumeIsolated().whenComplete { [self] _ in self.context?.close(promise: nil) }
    }

    // MARK: Dispatch

    private static func path(of uri: String) -> Substring {
        let target = Substring(uri)
        return target.firstIndex(of: "?").map { target[..<$0] } ?? target
    }

    private func dispatch() {
        guard let context, var request = current else { return }
        serial += 1
        let head = request.head
        let path = Self.path(of: head.uri)
        let query = head.uri.firstIndex(of: "?").map { head.uri[head.uri.index(after: $0)...] }
        var style: ErrorStyle = path.hasPrefix("/v1/") ? .openAI : .control
        var route: RESTRoute?
        do throws(GatewayError) {
            if let problem = Self.hostProblem(head) { throw GatewayError.badRequest(problem) }
            guard let matched = try request.match.get(), door.serves(matched.route) else {
                throw GatewayError.routeNotFound(method: head.method.rawValue, path: String(path))
            }
            route = matched.route
            style = matched.route.style
            guard matched.route.answers(head.method) else {
                throw GatewayError.methodNotAllowed(method: head.method.rawValue, path: String(path), allowed: matched.route.allowed)
            }
            let key = Authorizer.bearer(head.headers.first(name: "authorization"))
            try door.authorizer.check(matched.route.access, key: key, peerIP: peerIP(context))
            if request.overflow { throw GatewayError.payloadTooLarge(limit: request.bodyLimit) }
            let body = request.body ?? ByteBuffer()
            request.body = nil
            current = request
            switch matched.route {
            case .inference(let inferenceRoute):
                startInference(inferenceRoute, head: head, body: body, arrived: request.arrived, key: key, context: context)
            case .health, .liveness, .readiness, .metrics:
                startRecord(matched.route, arrived: request.arrived)
                write(door.probe(matched.route))
            default:
                startRecord(matched.route, arrived: request.arrived)
                startControl(matched.route, method: head.method, workerID: matched.workerID, query: query, body: body, style: style, context: context)
            }
        } catch {
            startRecord(route, arrived: request.arrived)
            write(.error(error, style: style))
        }
    }

    /// The client's address, read once per connection (it cannot change).
    private func peerIP(_ context: ChannelHandlerContext) -> String? {
        if let cached = peerIPCache { return cached }
        let ip = context.channel.remoteAddress?.ipAddress
        peerIPCache = .some(ip)
        return ip
    }

    /// A door-answered request is counted and logged, except on the Prometheus listener
    /// (a scrape there measures the gateway, it is not traffic of it).
    private func startRecord(_ route: RESTRoute?, arrived: ContinuousClock.Instant) {
        guard door.recordsRequests else { return }
        current!.record = RequestRecord(route: door.metrics(for: route), metrics: door.metrics, started: arrived)
    }

    private func startInference(
        _ route: InferenceRoute, head: HTTPRequestHead, body: ByteBuffer, arrived: ContinuousClock.Instant, key: String?, context: ChannelHandlerContext
    ) {
        guard let engine = door.engine else { return }
        let headers = head.headers
        let requestID = RequestIDs.accept(headers.first(name: "x-request-id") ?? headers.first(name: "x-correlation-id"))
        current!.requestID = requestID
        var forwarded = HTTPHeaders()
        for name in ForwardedHeaders.passed {
            if let value = headers.first(name: name) { forwarded.add(name: name, value: value) }
        }
        if let authorization = headers.first(name: "authorization") { forwarded.add(name: "Authorization", value: authorization) }
        let routingKey = headers.first(name: "x-smg-routing-key").flatMap { $0.isEmpty ? nil : $0 }
        let call = InferenceCall(
            input: .body(body, route: route), requestID: requestID, routingKey: routingKey, principal: InferenceCall.principal(presentedKey: key, authorizer: door.authorizer, peerAddress: peerIP(context)),
            forwardedHeaders: forwarded)
        let started = serial
        let task = engine.start(call, on: context.eventLoop, route: door.metrics(for: .inference(route)), arrived: arrived, receiver: self)
        // The call may have been answered at once (a refusal).
        if serial == started && cycle.phase == .answering {
            inference = task
            if !context.channel.isWritable { task.pause() }
        }
    }

    private func startControl(
        _ route: RESTRoute, method: HTTPMethod, workerID: String?, query: Substring?, body: ByteBuffer, style: ErrorStyle, context: ChannelHandlerContext
    ) {
        let door = self.door
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let serial = self.serial
        control = Task {
            var response: RESTResponse
            do throws(GatewayError) {
                response = try await door.answer(route, method: method, workerID: workerID, query: try QueryParameters(query), body: body)
            } catch {
                response = .error(error, style: style)
            }
            guard case .stream(let produce) = response.body else {
                loop.execute { if bound.value.serial == serial { bound.value.write(response) } }
                return
            }
            let writer = ConnectionChunkWriter(handler: bound, serial: serial)
            do {
                try await loop.submit { bound.value.beginStream(status: response.status, headers: response.headers, serial: serial) }.get()
                try await produce(writer)
                loop.execute { if bound.value.serial == serial { bound.value.endStream() } }
            } catch {
                loop.execute { if bound.value.serial == serial { bound.value.abort() } }
            }
        }
    }

    // MARK: Answers of the inference core

    func inferenceAnswered(_ answer: InferenceAnswer) {
        guard current != nil else { return }
        switch answer {
        case .whole(let status, let headers, let body, let worker):
            var out = relayed(headers)
            out.add(name: "X-Gateway-Worker-Id", value: worker.description)
            writeWhole(status: status, headers: out, body: body)
        case .stream(let status, let headers, let isEventStream, let worker):
            var out = relayed(headers)
            out.add(name: "X-Gateway-Worker-Id", value: worker.description)
            current!.isEventStream = isEventStream
            startStream(status: status, headers: out)
        case .failed(let error):
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            for (name, value) in error.headers { headers.add(name: name, value: value) }
            if let requestID = current?.requestID { headers.add(name: "X-Request-Id", value: requestID) }
            writeWhole(status: error.status, headers: headers, body: ByteBuffer(bytes: error.jsonBody(style: .openAI)))
        }
    }

    func inferenceEvent(_ event: InferenceEvent) {
        guard let context, current?.isStreaming == true else { return }
        switch event {
        case .event(let event):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(event.encoded))), promise: nil)
        case .bytes(let bytes):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        case .done:
            endStream()
        case .workerFailed(let error):
            guard current!.isEventStream else {
                // A body that is not an event stream cannot say so: the client sees it cut short.
                abort()
                return
            }
            var out = ServerSentEvent(data: error.jsonBody(style: .openAI)).encoded
            ServerSentEvent.done.write(into: &out)
            context.write(wrapOutboundOut(.body(.byteBuffer(out))), promise: nil)
            endStream()
        }
    }

    /// A worker's answer headers as they reach the client, with the request id.
    private func relayed(_ headers: HTTPHeaders) -> HTTPHeaders {
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + 5)
        for (name, value) in headers where !ForwardedHeaders.notRelayed.contains(name.lowercased()) {
            out.add(name: name, value: value)
        }
        if let requestID = current?.requestID { out.add(name: "X-Request-Id", value: requestID) }
        return out
    }

    // MARK: Writing

    private func addStandardHeaders(_ headers: inout HTTPHeaders) {
        headers.add(name: "Date", value: DateHeader.now())
        headers.add(name: "Server", value: door.configuration.serverName)
    }

    /// An answer of the door's own routes.
    private func write(_ response: RESTResponse) {
        switch response.body {
        case .whole(let body):
            writeWhole(status: Int(response.status.code), headers: response.headers, body: body)
        case .stream:
            // Streams are written by their task (see `startControl`).
            break
        }
    }

    /// Head, body and end in one flush.
    private func writeWhole(status: Int, headers: HTTPHeaders, body: ByteBuffer) {
        guard let context, let request = current else { return }
        current!.status = status
        var headers = headers
        headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        addStandardHeaders(&headers)
        if cycle.answerCloses { headers.replaceOrAdd(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !request.isHead && body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        finishAnswer(context)
    }

    /// The head of an answer whose body follows in pieces.
    private func startStream(status: Int, headers: HTTPHeaders) {
        guard let context, let request = current else { return }
        current!.status = status
        current!.isStreaming = true
        var headers = headers
        headers.remove(name: "Content-Length")
        addStandardHeaders(&headers)
        if request.head.version.minor == 0 {
            // HTTP/1.0 has no chunked encoding: the close delimits the body.
            cycle.answerNeedsClose()
        }
        if cycle.answerCloses { headers.replaceOrAdd(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: request.head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        if request.isHead { endStream() }
    }

    fileprivate func beginStream(status: HTTPResponseStatus, headers: HTTPHeaders, serial: Int) {
        guard self.serial == serial else { return }
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: headers.first(name: "Content-Type") ?? "application/json")
        startStream(status: Int(status.code), headers: headers)
    }

    /// Writes a control route's chunk; a future to wait on when the client is not keeping up.
    fileprivate func writeChunk(_ buffer: ByteBuffer, serial: Int) -> EventLoopFuture<Void> {
        guard let context, self.serial == serial, current?.isStreaming == true else {
            return loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        if current!.isHead { return context.eventLoop.makeSucceededVoidFuture() }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        guard !context.channel.isWritable else { return context.eventLoop.makeSucceededVoidFuture() }
        let promise = context.eventLoop.makePromise(of: Void.self)
        writabilityWaiters.append(promise)
        return promise.futureResult
    }

    fileprivate func endStream() {
        guard let context, current?.isStreaming == true else { return }
        finishAnswer(context, streamed: !current!.isHead)
    }

    /// The answer cannot be completed: the connection is closed, the client sees a truncated answer.
    fileprivate func abort() {
        inference = nil
        if var record = current?.record {
            record.finish(status: current!.status, aborted: true, metrics: door.metrics, logger: door.logger)
            current?.record = nil
        }
        current = nil
        execute(cycle.failed())
    }

    /// Writes the end, then the next request or the close.
    private func finishAnswer(_ context: ChannelHandlerContext, streamed: Bool = false) {
        inference = nil
        control = nil
        if var record = current?.record {
            record.finish(status: current!.status, metrics: door.metrics, logger: door.logger)
        }
        current = nil
        let action = cycle.answerEnded()
        if action.close {
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
            done.futureResult.assumeIsolated().whenComplete { [self] _ in self.context?.close(promise: nil) }
            execute(Action(timer: action.timer))
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        execute(action)
        if !held.isEmpty || readHeld { replayHeld() }
    }

    // MARK: Executing the request cycle's actions

    private typealias Action = RequestCycle.Action

    private func execute(_ action: Action) {
        if let change = action.timer {
            timer?.cancel()
            timer = nil
            if let kind = change, let context {
                let duration: Duration =
                    switch kind {
                    case .idle: door.configuration.idleTimeout
                    case .head: door.configuration.headerReadTimeout
                    case .body: door.configuration.bodyReadTimeout
                    case .send: door.configuration.sendTimeout
                    }
                timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(duration)) { [self] in
                    timer = nil
                    if kind == .send {
                        door.logger.info("client took no bytes within the send timeout; closing", metadata: ["timeout_s": "\(duration.seconds)"])
                    }
                    execute(cycle.timerFired(kind))
                }
            }
        }
        if action.close {
            tearDown()
            context?.close(promise: nil)
        }
    }

    // MARK: Requests refused before routing

    /// Why an HTTP/1.1 request's `Host` makes it unanswerable (RFC 9112 §3.2), if it does.
    static func hostProblem(_ head: HTTPRequestHead) -> String? {
        let hosts = head.headers["host"]
        if hosts.count > 1 { return "the request has more than one Host header" }
        guard let host = hosts.first else {
            return head.version.major == 1 && head.version.minor >= 1 ? "an HTTP/1.1 request needs a Host header" : nil
        }
        // host[:port], a bracketed IPv6 address, or empty (a target without authority).
        let valid = host.utf8.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "/") && byte != UInt8(ascii: "?") && byte != UInt8(ascii: "#")
                && byte != UInt8(ascii: "@") && byte != UInt8(ascii: "\\")
        }
        return valid ? nil : "the Host header is not a valid host[:port]"
    }
}

/// Hands a control route's pieces to its connection on the connection's loop.
struct ConnectionChunkWriter: ChunkWriter {
    let handler: NIOLoopBound<HTTPConnectionHandler>
    let serial: Int

    func write(_ buffer: ByteBuffer) async throws {
        let handler = self.handler
        let serial = self.serial
        try await handler.eventLoop.flatSubmit { handler.value.writeChunk(buffer, serial: serial) }.get()
    }
}

/// Sees the raw bytes of a connection before the HTTP decoder: the first byte of a
/// request starts its head's clock.
final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let handler: HTTPConnectionHandler

    init(handler: HTTPConnectionHandler) {
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        handler.bytesArrived()
        context.fireChannelRead(data)
    }
}

