import GatewayCore
import GatewayJSON
import GatewayUpstream
import GatewayWorkers
import NIOCore
import NIOHTTP1

/// What `/get_server_info` tells of the gateway's settings.
public struct ServerFacts: Sendable {
    public var policy: String
    public var maxPayloadBytes: Int
    public var requestTimeout: Duration
    public var retryMaxAttempts: Int
    public var circuitBreakerEnabled: Bool

    public init(policy: String, maxPayloadBytes: Int, requestTimeout: Duration, retryMaxAttempts: Int, circuitBreakerEnabled: Bool) {
        self.policy = policy
        self.maxPayloadBytes = maxPayloadBytes
        self.requestTimeout = requestTimeout
        self.retryMaxAttempts = retryMaxAttempts
        self.circuitBreakerEnabled = circuitBreakerEnabled
    }
}

/// The operational routes beside inference: models, loads, server and model info,
/// generation health, cache flush.
struct InfoRoutes: Sendable {
    let workers: WorkerService
    let registry: WorkerRegistry
    let selector: WorkerSelector
    let transport: WorkerTransport
    let facts: ServerFacts
    /// Seconds since the epoch at start, the `created` of every model.
    let startedAt: Int64

    /// `GET /v1/models`: one entry per model a ready worker serves (OpenAI list shape).
    func models() -> RESTResponse {
        let models = workers.modelCounts()
        return .json { json in
            json.beginObject()
            json.field("object", "list")
            json.key("data")
            json.beginArray()
            for entry in models {
                json.beginObject()
                json.field("id", entry.model)
                json.field("object", "model")
                json.field("created", startedAt)
                json.field("owned_by", "model-gateway")
                json.field("workers", entry.total)
                json.field("healthy_workers", entry.healthy)
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    /// `GET /get_loads`: in-flight requests per worker.
    func loads() -> RESTResponse {
        let workers = registry.workers()
        return .json { json in
            json.beginObject()
            json.key("workers")
            json.beginArray()
            for worker in workers {
                json.beginObject()
                json.field("worker", worker.url.description)
                json.field("worker_id", worker.id.description)
                json.field("model_id", worker.modelID)
                json.field("load", worker.load)
                // A draining worker is listed until its last request ends.
                json.field("status", worker.status.rawValue)
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    /// `GET /get_server_info`: the gateway's own facts.
    func serverInfo() -> RESTResponse {
        let (total, healthy) = registry.counts()
        let snapshot = registry.routingSnapshot
        return .json { json in
            json.beginObject()
            json.field("gateway", "model-gateway")
            json.field("policy", facts.policy)
            json.field("workers_count", total)
            json.field("healthy_workers", healthy)
            json.key("models")
            json.beginArray()
            for model in snapshot.knownModels.sorted() { json.string(model) }
            json.endArray()
            json.field("max_payload_size", facts.maxPayloadBytes)
            json.field("request_timeout_secs", facts.requestTimeout.seconds)
            json.field("retry_max_attempts", facts.retryMaxAttempts)
            json.field("circuit_breaker_enabled", facts.circuitBreakerEnabled)
            json.endObject()
        }
    }

    /// `GET /get_model_info[?model=…]`: the chosen worker's model info (SGLang), or
    /// what registration learnt about it (OpenAI-compatible workers).
    func modelInfo(model: String?) async throws(GatewayError) -> RESTResponse {
        let candidate = try pick(model: model)
        if candidate.runtime == .sglang {
            for path in ["/get_model_info", "/model_info"] {
                if let (status, body) = try? await get(candidate, path), status != 404 {
                    return .json(status: HTTPResponseStatus(statusCode: status), bytes: body.readableBytesView)
                }
            }
        }
        let metadata = registry.worker(candidate.id)?.metadata ?? [:]
        return .json { json in
            json.beginObject()
            json.field("model_path", metadata["model_path"] ?? candidate.modelID)
            json.field("tokenizer_path", metadata["tokenizer_path"] ?? candidate.modelID)
            json.field("is_generation", true)
            json.field("served_model_name", candidate.modelID)
            json.field("worker_id", candidate.id.description)
            json.endObject()
        }
    }

    /// `GET /health_generate`: a worker of the fleet proves it can generate
    /// (SGLang's `/health_generate`; `/health` on OpenAI-only workers).
    func healthGenerate(model: String?) async throws(GatewayError) -> RESTResponse {
        let candidate = try pick(model: model)
        var path = candidate.runtime == .sglang ? "/health_generate" : "/health"
        var status: Int
        do throws(WorkerFailure) {
            (status, _) = try await get(candidate, path)
            if status == 404 && path != "/health" {
                // An SGLang-like worker without /health_generate: its /health is the best proof left.
                path = "/health"
                (status, _) = try await get(candidate, path)
            }
        } catch {
            throw GatewayError.openAI(503, "worker_unhealthy", "worker \(candidate.id) failed \(path): \(error.message)")
        }
        guard (200..<300).contains(status) else {
            throw GatewayError.openAI(503, "worker_unhealthy", "worker \(candidate.id) answered \(path) with HTTP \(status)")
        }
        return .json { json in
            json.beginObject()
            json.field("status", "ok")
            json.field("worker_id", candidate.id.description)
            json.field("model_id", candidate.modelID)
            json.endObject()
        }
    }

    /// `POST /flush_cache`: asks every ready SGLang worker to flush its cache.
    func flushCache() async -> RESTResponse {
        let workers = registry.workers().filter { $0.phase == .ready && $0.runtimeType == .sglang }
        let results = await withTaskGroup(of: (Worker, String?).self) { group in
            for worker in workers {
                group.addTask {
                    let request = WorkerRequest(method: .POST, url: worker.url, path: "/flush_cache", apiKey: worker.spec.apiKey)
                    do throws(WorkerFailure) {
                        let answer = try await transport.send(request, timeout: .seconds(5), bodyLimit: 1 << 16)
                        return (worker, (200..<300).contains(answer.status) ? nil : "HTTP \(answer.status)")
                    } catch {
                        return (worker, error.message)
                    }
                }
            }
            var results: [(Worker, String?)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0.sequence < $1.0.sequence }
        }
        let failed = results.filter { $0.1 != nil }
        let succeeded = results.filter { $0.1 == nil }
        let total = registry.count
        return .json(status: failed.isEmpty ? .ok : .partialContent) { json in
            json.beginObject()
            json.field("status", failed.isEmpty ? "success" : "partial_success")
            if workers.isEmpty {
                json.field("message", "No HTTP workers available for cache flush")
            } else if failed.isEmpty {
                json.field("message", "Successfully flushed cache on all \(succeeded.count) HTTP workers")
            } else {
                json.field("message", "Cache flush: \(succeeded.count) succeeded, \(failed.count) failed")
            }
            json.field("workers_flushed", succeeded.count)
            json.field("total_http_workers", workers.count)
            json.field("total_workers", total)
            json.key("successful")
            json.beginArray()
            for (worker, _) in succeeded { json.string(worker.url.description) }
            json.endArray()
            json.key("failed")
            json.beginArray()
            for (worker, error) in failed {
                json.beginObject()
                json.field("worker", worker.url.description)
                json.field("error", error ?? "")
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    // MARK: Helpers

    private func pick(model: String?) throws(GatewayError) -> RouteCandidate {
        switch selector.select(model: model, request: RoutingRequest()) {
        case .success(let candidate): return candidate
        case .failure(let failure): throw GatewayError(failure)
        }
    }

    private func get(_ candidate: RouteCandidate, _ path: String) async throws(WorkerFailure) -> (Int, ByteBuffer) {
        let request = WorkerRequest(method: .GET, url: candidate.url, path: path, apiKey: candidate.apiKey)
        let answer = try await transport.send(request, timeout: .seconds(20), bodyLimit: 4 << 20)
        return (answer.status, answer.body)
    }
}

