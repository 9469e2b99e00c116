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
    private var job: EngineJob?

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
        if let job {
            self.job = nil
            cancelEngineWork(job, reason: "the \(worker.configuration.role == .prefill ? "prefill " : "")request was cancelled by its client")
        }
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
            if let engine = worker.engine {
                respond(context, head, .ok, json: Replies.load(engine: engine.snapshot().load))
            } else {
                respond(context, head, .ok, json: Replies.load(inFlight: worker.inFlight))
            }
        case .loads:
            let (load, counters) = loadAndCounters()
            respond(context, head, .ok, json: Replies.loads(engine: load, counters: counters, maxRunning: worker.configuration.engineConfiguration.maxRunning))
        case .metrics:
            let (load, counters) = loadAndCounters()
            let text = Replies.metrics(
                model: modelID, load: load, counters: counters, pdOutcomes: worker.pdOutcomes, role: worker.configuration.role
            )
            respond(context, head, .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: text)
        case .flushCache:
            _ = worker.engine?.flushCache()
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

    private func loadAndCounters() -> (EngineLoad, EngineCounters) {
        if let engine = worker.engine { return engine.snapshot() }
        let inFlight = worker.inFlight
        let load = EngineLoad(
            running: inFlight, waiting: 0, waitingTokens: 0, usedTokens: inFlight * 16, cachedTokens: 0, capacityTokens: 65536
        )
        return (load, EngineCounters())
    }

    private func inference(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, kind: InferenceRequest.Kind, body: ByteBuffer?) {
        if worker.engine != nil {
            realisticInference(context, head, kind: kind, body: body)
            return
        }
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

    // MARK: Realistic engine

    /// A request served by the realistic engine, with its disaggregation hand-off if any.
    private struct EngineJob {
        enum Handoff {
            case none
            /// SGLang decode: waits for the KV of these rooms before it is submitted.
            case decode(rooms: [String])
            /// vLLM decode: pulls the KV of a prefill's request id.
            case pullDecode(requestID: String)
            /// SGLang prefill: its KV is taken by the decode of these rooms.
            case prefill(rooms: [String])
            /// vLLM prefill: answers `kv_transfer_params`; the KV waits to be pulled.
            case vllmPrefill
        }

        var request: InferenceRequest
        var head: HTTPRequestHead
        var id: String
        var created: Int
        var start: NIODeadline
        var handoff: Handoff
        var engineID: Int?
        var sent = 0
        var cachedTokens = 0
        var fetches: [BootstrapClient.Fetch] = []
        var pendingHandoffs = 0
        var handoffFailure: String?
        var finishedTokens: Int?
        var answered = false

        var rooms: [String] {
            switch handoff {
            case .none, .vllmPrefill: []
            case .decode(let rooms), .prefill(let rooms): rooms
            case .pullDecode(let id): [id]
            }
        }
    }

    private func realisticInference(_ context: ChannelHandlerContext, _ head: HTTPRequestHead, kind: InferenceRequest.Kind, body: ByteBuffer?) {
        var request: InferenceRequest
        do {
            request = try InferenceRequest.parse(kind: kind, body: body, defaultModel: modelID, tokenize: true)
        } catch {
            respondError(context, head, .badRequest, error.message, type: "invalid_request_error")
            return
        }
        let role = worker.configuration.role
        var handoff = EngineJob.Handoff.none
        switch (role, request.pd) {
        case (.decode, .sglang(let targets)?):
            handoff = .decode(rooms: targets.map(\.room))
        case (.decode, .vllmDecode(_, _, let id)?):
            handoff = .pullDecode(requestID: id)
        case (.decode, nil) where runtime == .sglang:
            respondError(
                context, head, .badRequest, "bootstrap_host, bootstrap_port and bootstrap_room are required on a decode worker",
                type: "invalid_request_error"
            )
            return
        case (.prefill, .sglang(let targets)?):
            handoff = .prefill(rooms: targets.map(\.room))
            request.maxTokens = 1
        case (.prefill, .vllmPrefill?):
            handoff = .vllmPrefill
        default:
            break
        }
        guard admit(context, head) != nil else { return }
        let id: String
        switch kind {
        case .generate: id = request.rid ?? SimWorker.hexID("")
        case .completion: id = SimWorker.hexID("cmpl-")
        case .chat: id = SimWorker.hexID("chatcmpl-")
        }
        var job = EngineJob(
            request: request, head: head, id: id, created: kind == .generate ? 0 : Replies.unixTime(),
            start: .now(), handoff: handoff
        )
        for room in job.rooms { worker.recordPD(room, .started) }
        if request.stream {
            var headers = HTTPHeaders()
            headers.add(name: "X-Sim-Worker", value: name)
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Cache-Control", value: "no-cache")
            headers.add(name: "Transfer-Encoding", value: "chunked")
            if !job.rooms.isEmpty { headers.add(name: "X-Sim-Bootstrap-Room", value: job.rooms.joined(separator: ",")) }
            addConnectionHeader(&headers, head)
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = TimeAmount(worker.configuration.bootstrapTimeout)
        switch handoff {
        case .decode, .pullDecode:
            var targets: [(host: String, port: Int, command: String, key: String)] = []
            switch request.pd {
            case .sglang(let list)?: targets = list.map { ($0.host, $0.port, "WAIT", $0.room) }
            case .vllmDecode(let host, let port, let key)?: targets = [(host, port, "PULL", key)]
            default: break
            }
            job.fetches = targets.map {
                BootstrapClient.fetch(host: $0.host, port: $0.port, command: $0.command, key: $0.key, timeout: timeout, on: context.eventLoop)
            }
            self.job = job
            // The first failure fails the request at once (the other rooms' waits are cancelled).
            let results = zip(job.fetches, targets).map { fetch, target in
                fetch.result.flatMapErrorThrowing { error in throw BootstrapError("room \(target.key): \(error)") }
            }
            EventLoopFuture.whenAllSucceed(results, on: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                handler.kvArrived(result, id: id, context: context)
            }
        case .prefill(let rooms):
            for room in rooms { worker.bootstrap?.prefillStarted(room) }
            self.job = job
            submitToEngine(context, transferred: false)
        case .none, .vllmPrefill:
            self.job = job
            submitToEngine(context, transferred: false)
        }
    }

    private func kvArrived(_ result: Result<[Int], any Error>, id: String, context: ChannelHandlerContext) {
        guard !closed, let job, job.id == id else { return }
        if case .failure(let error) = result {
            failJob(context, message: "KV transfer failed: \(error)")
            return
        }
        for room in job.rooms { worker.recordPD(room, .kvReady) }
        submitToEngine(context, transferred: true)
    }

    private func submitToEngine(_ context: ChannelHandlerContext, transferred: Bool) {
        guard let engine = worker.engine, var job else { return }
        let notifyEvery = job.request.stream ? max(1, (job.request.maxTokens + chunkCount - 1) / chunkCount) : 0
        let submission = EngineCore.Submission(
            promptTokens: job.request.promptIDs, maxTokens: job.request.maxTokens, outputTag: job.request.tag,
            notifyEvery: notifyEvery, transferred: transferred
        )
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let requestID = job.id
        job.engineID = engine.submit(submission) { event in
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.engineEvent(event, id: requestID, context: context)
            }
        }
        self.job = job
    }

    private func engineEvent(_ event: EngineCore.Event, id: String, context: ChannelHandlerContext) {
        guard !closed, var job, job.id == id else { return }
        switch event {
        case .firstToken(_, let cached, let prompt):
            job.cachedTokens = cached
            if case .prefill(let rooms) = job.handoff {
                job.pendingHandoffs = rooms.count
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                for room in rooms {
                    worker.recordPD(room, .kvReady)
                    worker.bootstrap?.prefillReady(room, tokens: prompt) { failure in
                        bound.eventLoop.execute {
                            let (handler, context) = bound.value
                            handler.handoffDone(failure, id: id, context: context)
                        }
                    }
                }
            }
            self.job = job
            if job.request.stream { writeEngineChunk(context, upTo: 1, final: false) }
        case .tokens(_, let generated):
            if job.request.stream { writeEngineChunk(context, upTo: generated, final: false) }
        case .finished(_, let generated, let cached, _):
            job.cachedTokens = cached
            job.finishedTokens = generated
            self.job = job
            completeIfReady(context)
        case .rejected(_, let reason):
            job.engineID = nil
            self.job = job
            if job.request.stream {
                failJob(context, message: reason)
            } else {
                self.job = nil
                for room in job.rooms {
                    worker.recordPD(room, .failed, detail: reason)
                    worker.bootstrap?.prefillFailed(room, reason: reason)
                }
                endInference()
                respondError(context, job.head, .badRequest, reason, type: "invalid_request_error")
            }
        }
    }

    private func handoffDone(_ failure: String?, id: String, context: ChannelHandlerContext) {
        guard !closed, var job, job.id == id else { return }
        job.pendingHandoffs -= 1
        if let failure, job.handoffFailure == nil { job.handoffFailure = failure }
        self.job = job
        completeIfReady(context)
    }

    private func completeIfReady(_ context: ChannelHandlerContext) {
        guard let job, let generated = job.finishedTokens, job.pendingHandoffs <= 0 else { return }
        if let failure = job.handoffFailure {
            failJob(context, message: "KV hand-off failed: \(failure)")
            return
        }
        self.job = nil
        var kvParams: [UInt8]?
        if case .vllmPrefill = job.handoff {
            let port = worker.bootstrapPort ?? worker.configuration.bootstrapPort
            worker.bootstrap?.prefillReady(job.id, tokens: job.request.promptTokens, done: nil)
            worker.recordPD(job.id, .kvReady)
            worker.recordPD(job.id, .answered)
            kvParams = Replies.kvTransferParams(
                engineID: name, requestID: job.id, host: worker.configuration.host, port: port,
                promptTokens: job.request.promptTokens, blockSize: worker.configuration.engineConfiguration.blockSize
            )
        }
        for room in job.rooms { worker.recordPD(room, .answered) }
        let roomHeader: (String, String)? = job.rooms.isEmpty ? nil : ("X-Sim-Bootstrap-Room", job.rooms.joined(separator: ","))
        if job.request.stream {
            self.job = job
            writeEngineChunk(context, upTo: generated, final: true)
            self.job = nil
            endInference()
            return
        }
        let request = job.request
        let bytes: [UInt8]
        switch request.kind {
        case .generate:
            bytes = Replies.generate(
                rid: job.id, tokens: generated, final: true, promptTokens: request.promptTokens,
                e2eLatency: Self.seconds(since: job.start), worker: name, tag: request.tag,
                cachedTokens: job.cachedTokens, realisticIDs: true
            )
        case .completion, .chat:
            bytes = Replies.openAICompletion(
                chat: request.kind == .chat, id: job.id, created: job.created, model: request.model, worker: name,
                promptTokens: request.promptTokens, tokens: generated, tag: request.tag,
                cachedTokens: job.cachedTokens, kvTransferParams: kvParams
            )
        }
        endInference()
        respond(context, job.head, .ok, contentType: "application/json", body: bytes, extraHeader: roomHeader)
    }

    /// Streams the tokens from the last chunk up to `generated`; the final chunk carries
    /// the finish reason, then usage (when asked) and `[DONE]`.
    private func writeEngineChunk(_ context: ChannelHandlerContext, upTo generated: Int, final: Bool) {
        guard var job else { return }
        guard generated > job.sent || final else { return }
        let request = job.request
        let range = job.sent..<max(job.sent, generated)
        job.sent = max(job.sent, generated)
        self.job = job
        let json: [UInt8]
        switch request.kind {
        case .generate:
            json = Replies.generate(
                rid: job.id, tokens: job.sent, final: final, promptTokens: request.promptTokens,
                e2eLatency: Self.seconds(since: job.start), worker: name, tag: request.tag,
                cachedTokens: job.cachedTokens, realisticIDs: true
            )
        case .completion, .chat:
            json = Replies.openAIChunk(
                chat: request.kind == .chat, id: job.id, created: job.created, model: request.model,
                worker: name, range: range, final: final, tag: request.tag
            )
        }
        if !final {
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(sse(context, json)))), promise: nil)
            return
        }
        context.write(wrapOutboundOut(.body(.byteBuffer(sse(context, json)))), promise: nil)
        if request.includeUsage, request.kind != .generate {
            let usage = Replies.openAIUsageChunk(
                chat: request.kind == .chat, id: job.id, created: job.created, model: request.model,
                worker: name, promptTokens: request.promptTokens, tokens: job.sent, cachedTokens: job.cachedTokens
            )
            context.write(wrapOutboundOut(.body(.byteBuffer(sse(context, usage)))), promise: nil)
        }
        var done = context.channel.allocator.buffer(capacity: 14)
        done.writeStaticString("data: [DONE]\n\n")
        context.write(wrapOutboundOut(.body(.byteBuffer(done))), promise: nil)
        finish(context, keepAlive: job.head.isKeepAlive)
    }

    /// Ends the request with an error: a 500 before any byte, an SSE error event in a stream.
    private func failJob(_ context: ChannelHandlerContext, message: String) {
        guard let job else { return }
        self.job = nil
        cancelEngineWork(job, reason: message)
        endInference()
        if job.request.stream {
            var buffer = sse(context, Replies.streamError(message))
            buffer.writeStaticString("data: [DONE]\n\n")
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            finish(context, keepAlive: job.head.isKeepAlive)
        } else {
            let roomHeader: (String, String)? = job.rooms.isEmpty ? nil : ("X-Sim-Bootstrap-Room", job.rooms.joined(separator: ","))
            respond(
                context, job.head, .internalServerError, contentType: "application/json",
                body: Replies.error(message, type: "server_error", code: 500), extraHeader: roomHeader
            )
        }
    }

    /// Stops what a job still runs (engine request, KV fetches) and fails its rooms.
    private func cancelEngineWork(_ job: EngineJob, reason: String) {
        if let engineID = job.engineID, job.finishedTokens == nil { worker.engine?.cancel(engineID) }
        for fetch in job.fetches { fetch.cancel() }
        for room in job.rooms {
            worker.recordPD(room, .failed, detail: reason)
            if case .prefill = job.handoff { worker.bootstrap?.prefillFailed(room, reason: reason) }
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
