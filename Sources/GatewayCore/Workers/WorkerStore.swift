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
/// A durable store returns from every call only once the change is durable (the
/// gateway answers 202 after it). Implementations: SQLite (one gateway;
/// `GatewayStore`), none (`--state-path none`, not durable); a shared store for several
/// replicas (PostgreSQL) fits the same operations.
public protocol WorkerStore: Sendable {
    /// Whether changes are written somewhere (then they may block on I/O).
    var isDurable: Bool { get }
    func loadAll() throws -> [StoredWorker]
    /// Inserts or replaces the worker with this id.
    func upsert(_ worker: StoredWorker) throws
    func delete(_ id: WorkerID) throws
}

/// The store of `--state-path none`: keeps nothing. Nothing would outlive the process
/// anyway, and a copy of every worker's settings beside the registry's own costs
/// memory per worker for no reader.
public struct NoWorkerStore: WorkerStore {
    public init() {}

    public var isDurable: Bool { false }

    public func loadAll() throws -> [StoredWorker] { [] }
    public func upsert(_ worker: StoredWorker) throws {}
    public func delete(_ id: WorkerID) throws {}
}

extension WorkerStore {
    public var isDurable: Bool { true }
}
