import GatewayCore
import GatewayJSON
import GatewayWire
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The calls of the binary protocol, answered by the same core as REST.
struct BinaryCalls: Sendable {
    let workers: WorkerService
    let registry: WorkerRegistry
    let proxy: InferenceProxy

    /// Sends one message of the call (a chunk, or the terminal message).
    typealias Send = @Sendable (Wire.Envelope.Body) async throws -> Void

    /// Runs one call; sends exactly one terminal message unless cancelled.
    func run(_ body: Wire.Envelope.Body, clientKey: String?, send: @escaping Send) async throws {
        do {
            try await dispatch(body, clientKey: clientKey, send: send)
        } catch let error as GatewayError {
            try await send(.error(error.wire))
        }
    }

    private func dispatch(_ body: Wire.Envelope.Body, clientKey: String?, send: @escaping Send) async throws {
        switch body {
        case .addWorker(let request):
            let accepted = try await workers.add(try AddWorkerInput(request))
            try await send(
                .addWorkerReply(
                    Wire.AddWorkerReply(
                        status: "accepted", workerID: accepted.worker.id.description, url: accepted.worker.url.description,
                        location: accepted.location, message: accepted.message
                    )
                )
            )
        case .listWorkers:
            let list = workers.list()
            let now = ContinuousClock.now
            var stats = Wire.WorkerStats()
            for worker in list {
                switch worker.spec.workerType {
                case .regular: stats.regularCount += 1
                case .prefill: stats.prefillCount += 1
                case .decode: stats.decodeCount += 1
                }
            }
            try await send(.listWorkersReply(Wire.ListWorkersReply(workers: list.map { Wire.WorkerInfo($0, now: now) }, total: UInt32(list.count), stats: stats)))
        case .getWorker(let request):
            guard !request.workerID.isEmpty else { throw GatewayError.missingField("worker_id") }
            try await send(.getWorkerReply(Wire.GetWorkerReply(worker: Wire.WorkerInfo(try workers.get(request.workerID)))))
        case .updateWorker(let request):
            guard !request.workerID.isEmpty else { throw GatewayError.missingField("worker_id") }
            let accepted = try await workers.update(request.workerID, try UpdateWorkerInput(request))
            try await send(.updateWorkerReply(Wire.AcceptedReply(status: "accepted", workerID: accepted.worker.id.description, message: accepted.message)))
        case .removeWorker(let request):
            guard !request.workerID.isEmpty else { throw GatewayError.missingField("worker_id") }
            let accepted = try await workers.remove(request.workerID)
            try await send(.removeWorkerReply(Wire.AcceptedReply(status: "accepted", workerID: accepted.worker.id.description, message: accepted.message)))
        case .listModels:
            let models = InfoRoutes.modelCounts(registry).map {
                Wire.ModelInfo(id: $0.model, workerCount: UInt32($0.total), healthyWorkerCount: UInt32($0.healthy))
            }
            try await send(.listModelsReply(Wire.ListModelsReply(models: models)))
        case .health:
            let all = registry.workers()
            let healthy = all.filter(\.isRoutable).count
            try await send(.healthReply(Wire.HealthReply(status: healthy > 0 ? "ok" : "unavailable", healthyWorkers: UInt32(healthy), totalWorkers: UInt32(all.count))))
        case .generate(let request):
            let permit = try await proxy.admit(key: clientKey)
            defer { permit?.release() }
            try await generate(request, send: send)
        default:
            throw GatewayError.protocolError("UNEXPECTED_MESSAGE", 400, "this message is not a call")
        }
    }

    // MARK: Generate

    private func generate(_ request: Wire.GenerateRequest, send: @escaping Send) async throws {
        let (route, body) = try OpenAIGenerate.request(for: request)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if !request.routingKey.isEmpty { headers[InferenceProxy.routingKeyHeader] = request.routingKey }
        let requestID = request.requestID.isEmpty ? InferenceProxy.requestID(from: [:]) : request.requestID
        InferenceProxy.observeInference(requestID: requestID)
        let response = try await proxy.forward(body: body, headers: headers, route: route, requestID: requestID)
        let workerID = response.headers[InferenceProxy.workerIDHeader] ?? ""
        let status = response.status.code
        let responseBody = response.body

        guard (200..<300).contains(status) else {
            let bytes = try await Self.collect(responseBody)
            throw Self.workerError(status: status, body: bytes)
        }
        if !request.stream {
            let bytes = try await Self.collect(responseBody)
            guard let answer = try? JSONParser.parse(bytes.readableBytesView), let choice = answer["choices"]?[0] else {
                throw GatewayError.protocolError("upstream_error", 502, "the worker's answer is not an OpenAI completion")
            }
            let text = choice["text"]?.stringValue ?? choice["message"]?["content"]?.stringValue ?? ""
            try await send(
                .generateResult(
                    Wire.GenerateResult(
                        text: text, finishReason: choice["finish_reason"]?.stringValue ?? "", usage: OpenAIGenerate.usage(answer["usage"]),
                        model: answer["model"]?.stringValue ?? "", workerID: workerID, requestID: requestID
                    )
                )
            )
            return
        }

        // Streamed: each SSE event's new text becomes a chunk, as it arrives.
        let state = StreamState()
        let writer: any ResponseBodyWriter = CallbackBodyWriter { buffer in
                for data in state.parser.withLock({ $0.feed(buffer) }) where data != "[DONE]" {
                    guard let event = try? JSONParser.parse(data) else { continue }
                    if let error = event["error"], error != .null {
                        throw GatewayError.protocolError(
                            error["code"]?.stringValue ?? "upstream_error", 502, error["message"]?.stringValue ?? "the worker failed mid-stream"
                        )
                    }
                    state.note(event)
                    guard let choice = event["choices"]?[0] else { continue }
                    let text = choice["text"]?.stringValue ?? choice["delta"]?["content"]?.stringValue ?? ""
                    if !text.isEmpty {
                        try await send(.generateChunk(Wire.GenerateChunk(text: text, index: state.nextIndex())))
                    }
                }
        }
        try await responseBody.write(writer)
        let final = state.final
        try await send(
            .generateResult(
                Wire.GenerateResult(
                    finishReason: final.finishReason, usage: final.usage, model: final.model, workerID: workerID, requestID: requestID
                )
            )
        )
    }

    /// What a streamed answer told about itself (read on the relaying task only, guarded anyway).
    private final class StreamState: Sendable {
        struct Final: Sendable {
            var finishReason = ""
            var usage: Wire.Usage?
            var model = ""
            var index: UInt32 = 0
        }

        let parser = Mutex(ServerSentEventParser())
        private let state = Mutex(Final())

        var final: Final { state.withLock { $0 } }

        func note(_ event: JSONValue) {
            state.withLock { state in
                if let model = event["model"]?.stringValue { state.model = model }
                if let reason = event["choices"]?[0]?["finish_reason"]?.stringValue { state.finishReason = reason }
                if let usage = OpenAIGenerate.usage(event["usage"]) { state.usage = usage }
            }
        }

        func nextIndex() -> UInt32 {
            state.withLock { state in
                defer { state.index += 1 }
                return state.index
            }
        }
    }

    /// A worker's (or the gateway's own) error answer as a call error.
    static func workerError(status: Int, body: ByteBuffer) -> GatewayError {
        let json = try? JSONParser.parse(body.readableBytesView)
        let error = json?["error"]
        let message = error?["message"]?.stringValue ?? error?.stringValue ?? String(buffer: body).prefix(500).description
        let code = error?["code"]?.stringValue ?? json?["code"]?.stringValue ?? (status >= 500 ? "upstream_error" : "upstream_rejected")
        return GatewayError(status: status, code: code, message: message.isEmpty ? "HTTP \(status)" : message)
    }

    static func collect(_ body: ResponseBody) async throws -> ByteBuffer {
        final class Collected: Sendable {
            let buffer = Mutex(ByteBuffer())
        }
        let collected = Collected()
        let writer: any ResponseBodyWriter = CallbackBodyWriter { buffer in
            collected.buffer.withLock { _ = $0.writeImmutableBuffer(buffer) }
        }
        let body = copy body
        try await body.write(writer)
        return collected.buffer.withLock { $0 }
    }
}

/// Hands each buffer of a response body to a closure (to relay a REST answer into
/// binary messages).
struct CallbackBodyWriter: ResponseBodyWriter {
    let onBuffer: @Sendable (ByteBuffer) async throws -> Void

    init(_ onBuffer: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.onBuffer = onBuffer
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await onBuffer(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
