import Synchronization

/// A worker as the durable store keeps it: its identity and the settings the
/// operator gave. What probing finds out (model, runtime, metadata) is found out
/// again after a restart.
public struct StoredWorker: Sendable, Equatable {
    public var id: WorkerID
    public var spec: WorkerSpec
    /// Registration order, kept across restarts.
    public var sequence: UInt64

    public init(id: WorkerID, spec: WorkerSpec, sequence: UInt64) {
        self.id = id
        self.spec = spec
        self.sequence = sequence
    }
}

/// Where the registry's acknowledged changes are kept.
///
/// Every call returns only once the change is durable (the gateway answers 202
/// after it). Implementations: SQLite (one gateway; `GatewayStore`), memory (tests,
/// `--state-path none`); a shared store for several replicas (PostgreSQL) fits the
/// same three operations.
public protocol WorkerStore: Sendable {
    func loadAll() throws -> [StoredWorker]
    /// Inserts or replaces the worker with this id.
    func upsert(_ worker: StoredWorker) throws
    func delete(_ id: WorkerID) throws
}

/// A store that forgets everything when the process ends.
public final class MemoryWorkerStore: WorkerStore {
    private let workers = Mutex<[WorkerID: StoredWorker]>([:])

    public init() {}

    public func loadAll() throws -> [StoredWorker] {
        workers.withLock { Array($0.values) }.sorted { $0.sequence < $1.sequence }
    }

    public func upsert(_ worker: StoredWorker) throws {
        workers.withLock { $0[worker.id] = worker }
    }

    public func delete(_ id: WorkerID) throws {
        _ = workers.withLock { $0.removeValue(forKey: id) }
    }
}
