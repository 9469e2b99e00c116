/// Which workers a list asks for (`GET /workers?model=&status=&worker_type=`, binary
/// `ListWorkersRequest`); nil fields match every worker.
public struct WorkerFilter: Sendable, Equatable {
    /// The served model, exactly.
    public var model: String?
    public var status: WorkerStatus?
    public var workerType: WorkerType?

    public init(model: String? = nil, status: WorkerStatus? = nil, workerType: WorkerType? = nil) {
        self.model = model
        self.status = status
        self.workerType = workerType
    }

    public var isEmpty: Bool { self == WorkerFilter() }

    public func matches(_ worker: Worker) -> Bool {
        if let model, worker.modelID != model { return false }
        if let workerType, worker.spec.workerType != workerType { return false }
        if let status, worker.status != status { return false }
        return true
    }
}
