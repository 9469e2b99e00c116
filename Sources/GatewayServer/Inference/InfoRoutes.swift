import AsyncHTTPClient
import GatewayCore
import GatewayJSON
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// The operational routes beside inference: models, loads, server and model info,
/// generation health, cache flush.
struct InfoRoutes: Sendable {
    let registry: WorkerRegistry
    let selector: WorkerSelector
    let client: HTTPClient
    let configuration: GatewayConfiguration
    /// Seconds since the epoch at start, the `created` of every model.
    let startedAt: Int64

    /// `GET /v1/models`: one entry per model a ready worker serves (OpenAI list shape).
    /// Every model a ready worker serves, in registration order, with its worker counts.
    static func modelCounts(_ registry: WorkerRegistry) -> [(model: String, total: Int, healthy: Int)] {
        var counts: [String: (total: Int, healthy: Int)] = [:]
        var order: [String] = []
        for worker in registry.workers() where worker.phase == .ready {
            if counts[worker.modelID] == nil { order.append(worker.modelID) }
            counts[worker.modelID, default: (0, 0)].total += 1
            if worker.isHealthy { counts[worker.modelID, default: (0, 0)].healthy += 1 }
        }
        return order.map { ($0, counts[$0]!.total, counts[$0]!.healthy) }
    }

    func models() -> Response {
        let models = Self.modelCounts(registry)
        return JSONResponse.make { json in
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
    func loads() -> Response {
        let workers = registry.workers()
        return JSONResponse.make { json in
            json.beginObject()
            json.key("workers")
            json.beginArray()
            for worker in workers {
                json.beginObject()
                json.field("worker", worker.url.description)
                json.field("worker_id", worker.id.description)
                json.field("model_id", worker.modelID)
                json.field("load", worker.load)
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    /// `GET /get_server_info`: the gateway's own facts.
    func serverInfo() -> Response {
        let workers = registry.workers()
        let snapshot = registry.routingSnapshot
        return JSONResponse.make { json in
            json.beginObject()
            json.field("gateway", "model-gateway")
            json.field("policy", configuration.routing.policy.rawValue)
            json.field("workers_count", workers.count)
            json.field("healthy_workers", workers.filter(\.isRoutable).count)
            json.key("models")
            json.beginArray()
            for model in snapshot.knownModels.sorted() { json.string(model) }
            json.endArray()
            json.field("max_payload_size", configuration.routing.maxPayloadBytes)
            json.field("request_timeout_secs", configuration.routing.requestTimeout.seconds)
            json.field("retry_max_attempts", configuration.retry.isEnabled ? configuration.retry.maxAttempts : 1)
            json.field("circuit_breaker_enabled", configuration.circuitBreaker.isEnabled)
            json.endObject()
        }
    }

    /// `GET /get_model_info[?model=…]`: the chosen worker's model info (SGLang), or
    /// what registration learnt about it (OpenAI-compatible workers).
    func modelInfo(_ request: Request) async throws(GatewayError) -> Response {
        let model = request.uri.queryParameters["model"].map(String.init)
        let candidate = try pick(model: model)
        if candidate.runtime == .sglang {
            for path in ["/get_model_info", "/model_info"] {
                if let (status, body) = try? await get(candidate, path), status != 404 {
                    return JSONResponse.make(status: .init(code: status), bytes: Array(body.readableBytesView))
                }
            }
        }
        let metadata = registry.worker(candidate.id)?.metadata ?? [:]
        return JSONResponse.make { json in
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
    func healthGenerate(_ request: Request) async throws(GatewayError) -> Response {
        let model = request.uri.queryParameters["model"].map(String.init)
        let candidate = try pick(model: model)
        var path = candidate.runtime == .sglang ? "/health_generate" : "/health"
        do {
            var (status, _) = try await get(candidate, path)
            if status == 404 && path != "/health" {
                // An SGLang-like worker without /health_generate: its /health is the best proof left.
                path = "/health"
                (status, _) = try await get(candidate, path)
            }
            guard (200..<300).contains(status) else {
                throw GatewayError.openAI(503, "worker_unhealthy", "worker \(candidate.id) answered \(path) with HTTP \(status)")
            }
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.openAI(503, "worker_unhealthy", "worker \(candidate.id) failed \(path): \(UpstreamFailure(error).message)")
        }
        return JSONResponse.make { json in
            json.beginObject()
            json.field("status", "ok")
            json.field("worker_id", candidate.id.description)
            json.field("model_id", candidate.modelID)
            json.endObject()
        }
    }

    /// `POST /flush_cache`: asks every ready SGLang worker to flush its cache.
    func flushCache() async -> Response {
        let workers = registry.workers().filter { $0.phase == .ready && $0.runtimeType == .sglang }
        let results = await withTaskGroup(of: (Worker, String?).self) { group in
            for worker in workers {
                group.addTask {
                    var request = HTTPClientRequest(url: worker.url.appending("/flush_cache"))
                    request.method = .POST
                    if let key = worker.spec.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
                    do {
                        let response = try await client.execute(request, timeout: .seconds(5))
                        _ = try? await response.body.collect(upTo: 1 << 16)
                        return (worker, (200..<300).contains(response.status.code) ? nil : "HTTP \(response.status.code)")
                    } catch {
                        return (worker, UpstreamFailure(error).message)
                    }
                }
            }
            var results: [(Worker, String?)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0.sequence < $1.0.sequence }
        }
        let failed = results.filter { $0.1 != nil }
        let succeeded = results.filter { $0.1 == nil }
        let total = registry.workers().count
        return JSONResponse.make(status: failed.isEmpty ? .ok : .partialContent) { json in
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
        case .failure(let failure): throw InferenceProxy.error(for: failure)
        }
    }

    private func get(_ candidate: RouteCandidate, _ path: String) async throws -> (Int, ByteBuffer) {
        var request = HTTPClientRequest(url: candidate.url.appending(path))
        if let key = candidate.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        let response = try await client.execute(request, timeout: .seconds(20))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), body)
    }
}

/// Cache-aware routing's periodic eviction, as a service.
struct PolicyMaintenance: Service {
    let policy: any RoutingPolicy
    let registry: WorkerRegistry
    let interval: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                policy.maintain(liveWorkers: Set(registry.workers().map(\.id)))
            }
        }
    }
}
