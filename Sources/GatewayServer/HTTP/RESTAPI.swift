import GatewayCore
import GatewayJSON
import HTTPTypes
import Hummingbird
import NIOCore

/// The REST API: the route table and its handlers.
struct RESTAPI: Sendable {
    let service: WorkerService
    let registry: WorkerRegistry
    let configuration: GatewayConfiguration
    let proxy: InferenceProxy
    let info: InfoRoutes
    let lifecycle: LifecycleState
    let metrics: GatewayMetrics

    func makeRoutes() -> [Route] {
        [
            Route("/workers", style: .control, access: .admin, [
                .get: { _, _ in listWorkers() },
                .post: { request, _ in try await addWorker(request) },
            ]),
            Route("/workers/{worker_id}", style: .control, access: .admin, [
                .get: { _, p in try getWorker(p["worker_id"]) },
                .put: { request, p in try await updateWorker(request, p["worker_id"]) },
                .delete: { _, p in try await removeWorker(p["worker_id"]) },
            ]),
            Route("/health", style: .control, access: .open, [.get: { _, _ in liveness() }]),
            Route("/liveness", style: .control, access: .open, [.get: { _, _ in liveness() }]),
            Route("/readiness", style: .control, access: .open, [.get: { _, _ in readiness() }]),
            Route("/metrics", style: .control, access: .open, [.get: { _, _ in metrics.response() }]),
        ] + inferenceRoutes()
    }

    private func inferenceRoutes() -> [Route] {
        var routes = InferenceRoute.allCases.map { route in
            Route(route.rawValue, style: .openAI, access: .inference, [.post: { request, _ in try await proxy.handle(request, route: route) }])
        }
        routes += [
            Route("/v1/models", style: .openAI, access: .inference, [.get: { _, _ in info.models() }]),
            Route("/get_loads", style: .openAI, access: .inference, [.get: { _, _ in info.loads() }]),
            Route("/get_server_info", style: .openAI, access: .inference, [.get: { _, _ in info.serverInfo() }]),
            Route("/get_model_info", style: .openAI, access: .inference, [.get: { request, _ in try await info.modelInfo(request) }]),
            Route("/health_generate", style: .openAI, access: .inference, [.get: { request, _ in try await info.healthGenerate(request) }]),
            Route("/flush_cache", style: .openAI, access: .admin, [.post: { _, _ in await info.flushCache() }]),
        ]
        return routes
    }

    // MARK: Workers

    func listWorkers() -> Response {
        let workers = service.list()
        guard workers.count > Self.listInOnePiece else {
            // About 450 bytes per worker: reserved once instead of grown by doubling.
            return JSONResponse.make(capacity: 256 + workers.count * 512) { json in
                WorkerJSON.writeList(workers, to: &json)
            }
        }
        // A large fleet's list leaves in pieces as it is written: no buffer of megabytes
        // (twice: the document, then its copy into the body) per call.
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // Pieces stay under 64 KiB (a worker is about 450 bytes): buffers of that size
            // are reused from the heap rather than mapped afresh per call.
            let chunkSize = 60 * 1024
            var json = JSONWriter(capacity: 64 * 1024)
            WorkerJSON.beginList(&json)
            let now = ContinuousClock.now
            for worker in workers {
                WorkerJSON.write(worker, now: now, to: &json)
                if json.bytes.count >= chunkSize { try await writer.write(ByteBuffer(bytes: json.takeBytes())) }
            }
            WorkerJSON.endList(workers, &json)
            try await writer.write(ByteBuffer(bytes: json.bytes))
            try await writer.finish(nil)
        })
    }

    /// Lists up to this many workers are answered in one piece, with a Content-Length.
    static let listInOnePiece = 1_000

    func addWorker(_ request: Request) async throws(GatewayError) -> Response {
        let body = try await request.collectBody(limit: configuration.http.maxControlBodyBytes)
        let input = try WorkerRequests.addInput(from: body.readableBytesView)
        let accepted = try await service.add(input)
        var headers = HTTPFields()
        headers[.location] = accepted.location
        return JSONResponse.make(status: .accepted, headers: headers) { json in
            json.beginObject()
            json.field("status", "accepted")
            json.field("worker_id", accepted.worker.id.description)
            json.field("url", accepted.worker.url.description)
            json.field("location", accepted.location)
            json.field("message", accepted.message)
            json.endObject()
        }
    }

    func getWorker(_ rawID: String) throws(GatewayError) -> Response {
        let worker = try service.get(rawID)
        return JSONResponse.make { json in WorkerJSON.write(worker, to: &json) }
    }

    func updateWorker(_ request: Request, _ rawID: String) async throws(GatewayError) -> Response {
        // Check the id before reading the body: a bad id is the more useful error.
        _ = try WorkerService.parseID(rawID)
        let body = try await request.collectBody(limit: configuration.http.maxControlBodyBytes)
        let input = try WorkerRequests.updateInput(from: body.readableBytesView)
        return acceptedResponse(try await service.update(rawID, input))
    }

    func removeWorker(_ rawID: String) async throws(GatewayError) -> Response {
        acceptedResponse(try await service.remove(rawID))
    }

    private func acceptedResponse(_ accepted: WorkerService.Accepted) -> Response {
        JSONResponse.make(status: .accepted) { json in
            json.beginObject()
            json.field("status", "accepted")
            json.field("worker_id", accepted.worker.id.description)
            json.field("message", accepted.message)
            json.endObject()
        }
    }

    // MARK: Probes

    func liveness() -> Response {
        JSONResponse.make { json in
            json.beginObject()
            json.field("status", "ok")
            json.endObject()
        }
    }

    /// 200 once at least one worker is ready and healthy, else 503.
    func readiness() -> Response {
        let workers = registry.workers()
        let healthy = workers.filter(\.isRoutable).count
        let draining = lifecycle.isDraining
        let ready = healthy > 0 && !draining
        return JSONResponse.make(status: ready ? .ok : .serviceUnavailable) { json in
            json.beginObject()
            json.field("status", ready ? "ready" : "not ready")
            if draining {
                json.field("reason", "shutting down")
            } else if healthy == 0 {
                json.field("reason", workers.isEmpty ? "no workers registered" : "no healthy workers")
            }
            json.field("healthy_workers", healthy)
            json.field("total_workers", workers.count)
            json.endObject()
        }
    }
}
