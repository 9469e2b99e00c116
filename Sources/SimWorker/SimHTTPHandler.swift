import NIOCore
import NIOHTTP1

/// Serves one connection. Runs entirely on the channel's event loop; the HTTP pipeline
/// handler in front of it delivers pipelined requests one at a time, after the previous
/// response's `.end` has been written.
final class SimHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let worker: SimWorker
    private let name: String
    private let replies: StaticReplies
    private let runtime: SimWorker.Runtime
    private let modelID: String
    private let chunkCount: Int
    private let chunkInterval: TimeAmount

    // The request being read.
    private var requestHead: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false

    // The response being produced.
    private var scheduled: Scheduled<Void>?
    private var inferenceOpen = false
    private var stream: StreamJob?
    private var closed = false

    private struct StreamJob {
        var request: InferenceRequest
        var keepAlive: Bool
        var chunkSizes: [Int]
        var next = 0
        var sent = 0
        var id: String
        var created: Int
        var start: NIODeadline
    }

    init(worker: SimWorker) {
        self.worker = worker
        let context = worker.connectionContext()
        self.name = context.name
        self.replies = context.replies
        self.runtime = worker.configuration.runtime
        self.modelID = worker.configuration.modelID
        self.chunkCount = worker.configuration.chunkCount
        self.chunkInterval = TimeAmount(worker.configuration.chunkInterval)
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHead = head
            body = nil
            bodyTooLarge = false
            if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }), length > SimWorker.maxBodyBytes {
                bodyTooLarge = true
            } else if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
            }
        case .body(var part):
            guard !bodyTooLarge else { return }
            let have = body?.readableBytes ?? 0
            if have + part.readableBytes > SimWorker.maxBodyBytes {
                bodyTooLarge = true
                body = nil
            } else if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let head = requestHead else { return }
            requestHead = nil
            let requestBody = body
            body = nil
            handle(context: context, head: head, body: requestBody)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandon()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        abandon()
        context.close(promise: nil)
    }

    /// The client went away: stop scheduled work and release the in-flight slot.
    private func abandon() {
        closed = true
        scheduled?.cancel()
        scheduled = nil
        stream = nil
        endInference()
    }

    private func endInference() {
        if inferenceOpen {
            inferenceOpen = false
            worker.finishInference()
        }
    }

    // MARK: Routing

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer?) {
        let path: Substring
        if let q = head.uri.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            path = head.uri[..<q]
        } else {
            path = Substring(head.uri)
        }
        worker.recordRequest(path: path, headers: head.headers)

        guard let route = Route(path: path), runtime == .sglang || !route.sglangOnly else {
            respondError(context, head, .notFound, "Not Found: \(path)", type: "not_found_error")
            return
        }
        guard route.allows(head.method) else {
            respondError(
                context, head, .methodNotAllowed, "Method \(head.method.rawValue) not allowed on \(path)",
                type: "invalid_request_error", extraHeader: ("Allow", route.allowHeader)
            )
            return
        }
        if bodyTooLarge {
            respondError(
                context, head, .payloadTooLarge, "Request body exceeds \(SimWorker.maxBodyBytes) bytes",
                type: "invalid_request_error"
            )
            return
        }

        switch route {
        case .health, .healthGenerate:
            let health = worker.healthSnapshot()
            if health.loading {
                respond(context, head, .serviceUnavailable, json: Replies.healthError("Loading model"))
            } else if !health.healthy {
                respond(context, head, .serviceUnavailable, json: Replies.healthError("Service unhealthy"))
            } else {
                respond(context, head, .ok, contentType: nil, body: [])
            }
        case .serverInfo:
            respond(context, head, .ok, json: replies.serverInfo)
        case .modelInfo:
            respond(context, head, .ok, json: replies.modelInfo)
        case .models:
            respond(context, head, .ok, json: replies.models)
        case .getLoad:
            respond(context, head, .ok, json: Replies.load(inFlight: worker.inFlight))
        case .flushCache:
            respond(context, head, .ok, contentType: "text/plain; charset=utf-8", body: Array("Cache flushed.\n".utf8))
        case .generate:
            inference(context, head, kind: .generate, body: body)
        case .completions:
            inference(context, head, kind: .completion, body: body)
        case .chatCompletions:
            inference(context, head, kind: .chat, body: body)
        case .embeddings:
            let request: EmbeddingRequest
            do {
                request = try EmbeddingRequest.parse(body: body, defaultModel: modelID)
            } catch {
                respondError(context, head, .badRequest, error.message, type: "invalid_request_error")
                return
            }
            simple(context, head) { [name] in Replies.embeddings(request, worker: name) }
        case .rerank:
            let request: RerankRequest
            do {
                request = try RerankRequest.parse(body: body, defaultModel: modelID)
            } catch {
                respondError(context, head, .badRequest, error.message, type: "invalid_request_error")
                return
            }
            simple(context, head) { [name] in Replies.rerank(request, worker: name) }
        }
    }

    // MARK: Inference

    /// Admission (failure draw, in-flight count) shared by every inference route.
    private func admit(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) -> TimeAmount? {
        let admission = worker.admitInference()
        if admission.fail {
            respondError(context, head, .internalServerError, "Simulated failure", type: "server_error")
            return nil
        }
        inferenceOpen = true
        return TimeAmount(admission.latency)
    }

    /// A non-streamed inference reply built after the latency.
    private func simple(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, build: @escaping () -> [UInt8]) {
        guard let latency = admit(context, head) else { return }
        after(latency, context) { [self] in
            let bytes = build()
            endInference()
            respond(context, head, .ok, json: bytes)
        }
    }

    private func inference(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, kind: InferenceRequest.Kind, body: ByteBuffer?) {
        let request: InferenceRequest
        do {
            request = try InferenceRequest.parse(kind: kind, body: body, defaultModel: modelID)
        } catch {
            respondError(context, head, .badRequest, error.message, type: "invalid_request_error")
            return
        }
        guard let latency = admit(context, head) else { return }
        let start = NIODeadline.now()
        let id: String
        switch kind {
        case .generate: id = request.rid ?? SimWorker.hexID("")
        case .completion: id = SimWorker.hexID("cmpl-")
        case .chat: id = SimWorker.hexID("chatcmpl-")
        }
        let created = kind == .generate ? 0 : Replies.unixTime()

        if request.stream {
            startStream(
                context, head,
                StreamJob(
                    request: request,
                    keepAlive: head.isKeepAlive,
                    chunkSizes: SimWorker.chunkSizes(tokenCount: request.maxTokens, chunkCount: chunkCount),
                    id: id,
                    created: created,
                    start: start
                ),
                latency: latency
            )
            return
        }

        after(latency, context) { [self] in
            let bytes: [UInt8]
            switch kind {
            case .generate:
                bytes = Replies.generate(
                    rid: id, tokens: request.maxTokens, final: true, promptTokens: request.promptTokens,
                    e2eLatency: Self.seconds(since: start), worker: name, tag: request.tag
                )
            case .completion, .chat:
                bytes = Replies.openAICompletion(
                    chat: kind == .chat, id: id, created: created, model: request.model, worker: name,
                    promptTokens: request.promptTokens, tokens: request.maxTokens, tag: request.tag
                )
            }
            endInference()
            respond(context, head, .ok, json: bytes)
        }
    }

    private func startStream(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ job: StreamJob, latency: TimeAmount) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(6)
        headers.add(name: "X-Sim-Worker", value: name)
        headers.add(name: "Content-Type", value: "text/event-stream")
        headers.add(name: "Cache-Control", value: "no-cache")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        addConnectionHeader(&headers, head)
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        stream = job
        after(latency, context) { [self] in emitChunks(context) }
    }

    /// Writes the next chunk (all remaining chunks when there is no interval), then
    /// schedules itself again or finishes the stream.
    private func emitChunks(_ context: ChannelHandlerContext) {
        guard !closed, var job = stream else { return }
        while true {
            let size = job.chunkSizes[job.next]
            let range = job.sent..<(job.sent + size)
            job.sent += size
            job.next += 1
            let final = job.next == job.chunkSizes.count
            let json: [UInt8]
            switch job.request.kind {
            case .generate:
                json = Replies.generate(
                    rid: job.id, tokens: job.sent, final: final, promptTokens: job.request.promptTokens,
                    e2eLatency: Self.seconds(since: job.start), worker: name, tag: job.request.tag
                )
            case .completion, .chat:
                json = Replies.openAIChunk(
                    chat: job.request.kind == .chat, id: job.id, created: job.created, model: job.request.model,
                    worker: name, range: range, final: final, tag: job.request.tag
                )
            }
            context.write(wrapOutboundOut(.body(.byteBuffer(sse(context, json)))), promise: nil)
            if final {
                if job.request.includeUsage, job.request.kind != .generate {
                    let usage = Replies.openAIUsageChunk(
                        chat: job.request.kind == .chat, id: job.id, created: job.created, model: job.request.model,
                        worker: name, promptTokens: job.request.promptTokens, tokens: job.sent
                    )
                    context.write(wrapOutboundOut(.body(.byteBuffer(sse(context, usage)))), promise: nil)
                }
                var done = context.channel.allocator.buffer(capacity: 14)
                done.writeStaticString("data: [DONE]\n\n")
                context.write(wrapOutboundOut(.body(.byteBuffer(done))), promise: nil)
                stream = nil
                endInference()
                finish(context, keepAlive: job.keepAlive)
                return
            }
            if chunkInterval > .zero { break }
        }
        context.flush()
        stream = job
        after(chunkInterval, context) { [self] in emitChunks(context) }
    }

    private func sse(_ context: ChannelHandlerContext, _ json: [UInt8]) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: json.count + 8)
        buffer.writeStaticString("data: ")
        buffer.writeBytes(json)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// Runs `body` on the event loop after `delay` (at once when the delay is zero),
    /// unless the connection closes first.
    private func after(_ delay: TimeAmount, _ context: ChannelHandlerContext, _ body: @escaping () -> Void) {
        if delay <= .zero {
            body()
            return
        }
        scheduled = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            scheduled = nil
            guard !closed else { return }
            body()
        }
    }

    private static func seconds(since start: NIODeadline) -> Double {
        Double((NIODeadline.now() - start).nanoseconds) / 1e9
    }

    // MARK: Writing replies

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, _ status: HTTPResponseStatus, json: [UInt8]) {
        respond(context, head, status, contentType: "application/json", body: json)
    }

    private func respondError(
        _ context: ChannelHandlerContext,
        _ head: HTTPRequestHead,
        _ status: HTTPResponseStatus,
        _ message: String,
        type: String,
        extraHeader: (String, String)? = nil
    ) {
        respond(
            context, head, status, contentType: "application/json",
            body: Replies.error(message, type: type, code: Int(status.code)), extraHeader: extraHeader
        )
    }

    private func respond(
        _ context: ChannelHandlerContext,
        _ head: HTTPRequestHead,
        _ status: HTTPResponseStatus,
        contentType: String?,
        body: [UInt8],
        extraHeader: (String, String)? = nil
    ) {
        guard !closed else { return }
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "X-Sim-Worker", value: name)
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        headers.add(name: "Content-Length", value: String(body.count))
        if let extraHeader { headers.add(name: extraHeader.0, value: extraHeader.1) }
        addConnectionHeader(&headers, head)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty, head.method != .HEAD {
            let buffer = context.channel.allocator.buffer(bytes: body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        finish(context, keepAlive: head.isKeepAlive)
    }

    private func addConnectionHeader(_ headers: inout HTTPHeaders, _ head: HTTPRequestHead) {
        if !head.isKeepAlive {
            headers.add(name: "Connection", value: "close")
        } else if head.version.major == 1, head.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
    }

    private func finish(_ context: ChannelHandlerContext, keepAlive: Bool) {
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}
