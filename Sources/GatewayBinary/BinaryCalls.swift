import GatewayCore
import GatewayInference
import GatewayOpenAI
import GatewayWire
import GatewayWorkers
import NIOCore

/// The binary protocol's worker-management and information calls, answered by the same
/// worker service as their REST twins. Each returns its terminal reply or throws the
/// error its REST twin would answer.
struct BinaryCalls: Sendable {
    let workers: WorkerService
    let registry: WorkerRegistry

    func answer(_ body: Wire.Envelope.Body) async throws(GatewayError) -> Wire.Envelope.Body {
        switch body {
        case .addWorker, .listWorkers, .getWorker, .updateWorker, .removeWorker:
            // The worker API's binary twin: BinaryWorkerCalls.swift.
            return try await BinaryWorkerCalls(workers: workers).answer(body)
        case .listModels:
            let models = workers.modelCounts().map {
                Wire.ModelInfo(id: $0.model, workerCount: UInt32($0.total), healthyWorkerCount: UInt32($0.healthy))
            }
            return .listModelsReply(Wire.ListModelsReply(models: models))
        case .health:
            let (total, healthy) = registry.counts()
            return .healthReply(Wire.HealthReply(status: healthy > 0 ? "ok" : "unavailable", healthyWorkers: UInt32(healthy), totalWorkers: UInt32(total)))
        default:
            throw GatewayError.protocolError("UNEXPECTED_MESSAGE", 400, "this message is not a call")
        }
    }
}

/// A binary `generate`: the inference core's answer mapped straight to `GenerateChunk`s
/// and one `GenerateResult` (or `Error`), with no HTTP type in between.
///
/// Confined to the connection's event loop.
final class GenerateRelay: InferenceReceiver {
    private let stream: UInt64
    private let requestID: String
    private unowned let connection: BinaryConnectionHandler
    private var reader = OpenAIGenerate.StreamReader()
    private var index: UInt32 = 0
    private var worker: WorkerID?
    /// A streamed answer that is not a success: its body, read for the error it carries.
    private var failedStream: (status: Int, body: ByteBuffer)?
    private(set) var isDone = false

    init(stream: UInt64, requestID: String, connection: BinaryConnectionHandler) {
        self.stream = stream
        self.requestID = requestID
        self.connection = connection
    }

    func inferenceAnswered(_ answer: InferenceAnswer) {
        switch answer {
        case .whole(let status, _, let body, let worker):
            guard (200..<300).contains(status) else {
                finish(.error(OpenAIGenerate.error(status: status, body: body).wire(.openAI)))
                return
            }
            guard var result = OpenAIGenerate.result(fromAnswer: body) else {
                finish(.error(GatewayError.openAI(502, "upstream_error", "the worker's answer is not an OpenAI completion").wire(.openAI)))
                return
            }
            result.workerID = worker.description
            result.requestID = requestID
            finish(.generateResult(result))
        case .stream(let status, _, _, let worker):
            self.worker = worker
            if !(200..<300).contains(status) { failedStream = (status, ByteBuffer()) }
        case .failed(let error):
            finish(.error(error.wire(.openAI)))
        }
    }

    func inferenceEvent(_ event: InferenceEvent) {
        guard !isDone else { return }
        if failedStream != nil {
            switch event {
            case .event(let event): event.write(into: &failedStream!.body)
            case .bytes(let bytes): failedStream!.body.writeImmutableBuffer(bytes)
            case .workerFailed(let error): finish(.error(error.wire(.openAI)))
            case .done: finish(.error(OpenAIGenerate.error(status: failedStream!.status, body: failedStream!.body).wire(.openAI)))
            }
            return
        }
        switch event {
        case .event(let event):
            do throws(GatewayError) {
                let text = try reader.text(of: event)
                if !text.isEmpty {
                    connection.send(.generateChunk(Wire.GenerateChunk(text: text, index: index)), on: stream)
                    index += 1
                }
            } catch {
                finish(.error(error.wire(.openAI)))
            }
        case .bytes:
            // A streamed generate is an event stream; bytes of anything else are not text.
            break
        case .workerFailed(let error):
            finish(.error(error.wire(.openAI)))
        case .done:
            finish(
                .generateResult(
                    Wire.GenerateResult(
                        finishReason: reader.finishReason, usage: reader.usage, model: reader.model, workerID: worker?.description ?? "",
                        requestID: requestID
                    )
                )
            )
        }
    }

    /// The connection ended the call itself (its chunk could not be sent): nothing more
    /// goes out for it.
    func abandon() {
        isDone = true
    }

    private func finish(_ terminal: Wire.Envelope.Body) {
        guard !isDone else { return }
        isDone = true
        connection.finishCall(on: stream, with: terminal)
    }
}
