import GatewayCore
import GatewayWire
import GatewayWorkers

/// The worker-management calls of the binary protocol: the twins of `/workers`
/// (same service, same errors as REST).
struct BinaryWorkerCalls: Sendable {
    let workers: WorkerService

    /// The terminal message answering `body` (a worker-management call).
    func answer(_ body: Wire.Envelope.Body) async throws(GatewayError) -> Wire.Envelope.Body {
        switch body {
        case .addWorker(let request):
            let accepted = try await workers.add(try AddWorkerInput(request))
            return .addWorkerReply(
                Wire.AddWorkerReply(
                    status: "accepted", workerID: accepted.worker.id.description, url: accepted.worker.url.description,
                    location: accepted.location, message: accepted.message
                )
            )
        case .listWorkers(let request):
            let list = workers.list(try request.filter())
            let now = ContinuousClock.now
            let counts = WorkerTypeCounts(list)
            let stats = Wire.WorkerStats(prefillCount: UInt32(counts.prefill), decodeCount: UInt32(counts.decode), regularCount: UInt32(counts.regular))
            return .listWorkersReply(Wire.ListWorkersReply(workers: list.map { Wire.WorkerInfo($0, now: now) }, total: UInt32(list.count), stats: stats))
        case .getWorker(let request):
            guard !request.workerID.isEmpty else { throw .missingField("worker_id") }
            return .getWorkerReply(Wire.GetWorkerReply(worker: Wire.WorkerInfo(try workers.get(request.workerID))))
        case .updateWorker(let request):
            guard !request.workerID.isEmpty else { throw .missingField("worker_id") }
            let accepted = try await workers.update(request.workerID, try UpdateWorkerInput(request))
            return .updateWorkerReply(Wire.AcceptedReply(status: "accepted", workerID: accepted.worker.id.description, message: accepted.message))
        case .removeWorker(let request):
            guard !request.workerID.isEmpty else { throw .missingField("worker_id") }
            let removal = try await workers.remove(request.workerID, force: request.force)
            return .removeWorkerReply(
                Wire.AcceptedReply(
                    status: "accepted", workerID: removal.worker.id.description, message: removal.message,
                    workerStatus: removal.removed ? .unspecified : .draining, inFlight: UInt64(max(removal.inFlight, 0))
                )
            )
        default:
            throw .protocolError("UNEXPECTED_MESSAGE", 400, "this message is not a worker call")
        }
    }
}
