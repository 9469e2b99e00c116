import GatewayCore
import GatewayJSON
import GatewayWorkers
import NIOCore
import NIOHTTP1

/// The worker API (`/workers`, `/workers/{id}`) and the probes, over the worker service
/// both doors share.
struct WorkerRoutes: Sendable {
    let service: WorkerService
    let registry: WorkerRegistry
    let lifecycle: LifecycleState

    // MARK: Workers

    /// `GET /workers[?model=&status=&worker_type=]`.
    func listWorkers(_ query: QueryParameters) throws(GatewayError) -> RESTResponse {
        let workers = service.list(try Self.filter { query[$0] })
        guard workers.count > Self.listInOnePiece else {
            // About 450 bytes per worker: reserved once instead of grown by doubling.
            return .json(capacity: 256 + workers.count * 512) { json in
                WorkerJSON.writeList(workers, to: &json)
            }
        }
        // A large fleet's list leaves in pieces as it is written: no buffer of megabytes
        // (twice: the document, then its copy into the body) per call.
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return RESTResponse(status: .ok, headers: headers, body: .stream { writer in
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
        })
    }

    /// Lists up to this many workers are answered in one piece, with a Content-Length.
    static let listInOnePiece = 1_000

    /// The list filter of a query string; unknown parameters are ignored, empty ones match all.
    static func filter(_ query: (String) -> String?) throws(GatewayError) -> WorkerFilter {
        var filter = WorkerFilter()
        if let model = query("model"), !model.isEmpty { filter.model = model }
        if let status = query("status"), !status.isEmpty {
            guard let parsed = WorkerStatus(rawValue: status.lowercased()) else {
                throw .invalidFilter("status", "must be one of \(WorkerStatus.allCases.map(\.rawValue).joined(separator: ", ")) (got \"\(status)\")")
            }
            filter.status = parsed
        }
        if let type = query("worker_type"), !type.isEmpty {
            guard let parsed = WorkerType(rawValue: type.lowercased()) else {
                throw .invalidFilter("worker_type", "must be one of regular, prefill, decode (got \"\(type)\")")
            }
            filter.workerType = parsed
        }
        return filter
    }

    func addWorker(_ body: ByteBuffer) async throws(GatewayError) -> RESTResponse {
        let input = try WorkerRequests.addInput(from: body.readableBytesView)
        let accepted = try await service.add(input)
        var headers = HTTPHeaders()
        headers.add(name: "Location", value: accepted.location)
        return .json(status: .accepted, headers: headers) { json in
            json.beginObject()
            json.field("status", "accepted")
            json.field("worker_id", accepted.worker.id.description)
            json.field("url", accepted.worker.url.description)
            json.field("location", accepted.location)
            json.field("message", accepted.message)
            json.endObject()
        }
    }

    func getWorker(_ rawID: String) throws(GatewayError) -> RESTResponse {
        let worker = try service.get(rawID)
        return .json { json in WorkerJSON.write(worker, to: &json) }
    }

    /// `PUT /workers/{id}`: a partial update with the flat field names (the reference 0.3.x's PUT).
    func updateWorker(_ rawID: String, _ body: ByteBuffer) async throws(GatewayError) -> RESTResponse {
        // Check the id before the body: a bad id is the more useful error.
        _ = try WorkerService.parseID(rawID)
        let input = try WorkerRequests.updateInput(from: body.readableBytesView)
        return accepted(try await service.update(rawID, input))
    }

    /// `PATCH /workers/{id}`: a partial update in smg 1.x's shape (`health` as an object).
    func patchWorker(_ rawID: String, _ body: ByteBuffer) async throws(GatewayError) -> RESTResponse {
        _ = try WorkerService.parseID(rawID)
        let input = try WorkerRequests.patchInput(from: body.readableBytesView)
        return accepted(try await service.update(rawID, input))
    }

    /// `DELETE /workers/{id}[?force=true]`: drains, or with `force` removes at once.
    func removeWorker(_ rawID: String, _ query: QueryParameters) async throws(GatewayError) -> RESTResponse {
        var force = false
        if let value = query["force"], !value.isEmpty {
            switch value.lowercased() {
            case "true", "1": force = true
            case "false", "0": force = false
            default: throw .invalidFilter("force", "must be true or false (got \"\(value)\")")
            }
        }
        let removal = try await service.remove(rawID, force: force)
        return .json(status: .accepted) { json in
            json.beginObject()
            json.field("status", "accepted")
            json.field("worker_id", removal.worker.id.description)
            json.field("message", removal.message)
            json.field("worker_status", removal.removed ? "removed" : WorkerStatus.draining.rawValue)
            json.field("in_flight", removal.inFlight)
            json.endObject()
        }
    }

    private func accepted(_ accepted: WorkerService.Accepted) -> RESTResponse {
        .json(status: .accepted) { json in
            json.beginObject()
            json.field("status", "accepted")
            json.field("worker_id", accepted.worker.id.description)
            json.field("message", accepted.message)
            json.endObject()
        }
    }

    // MARK: Probes

    static func liveness() -> RESTResponse {
        .json { json in
            json.beginObject()
            json.field("status", "ok")
            json.endObject()
        }
    }

    /// 200 once at least one worker is ready and healthy, else 503.
    func readiness() -> RESTResponse {
        let (total, healthy) = registry.counts()
        let draining = lifecycle.isDraining
        let ready = healthy > 0 && !draining
        return .json(status: ready ? .ok : .serviceUnavailable) { json in
            json.beginObject()
            json.field("status", ready ? "ready" : "not ready")
            if draining {
                json.field("reason", "shutting down")
            } else if healthy == 0 {
                json.field("reason", total == 0 ? "no workers registered" : "no healthy workers")
            }
            json.field("healthy_workers", healthy)
            json.field("total_workers", total)
            json.endObject()
        }
    }
}
