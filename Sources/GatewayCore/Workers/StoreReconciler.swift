/// Keeps one replica's registry equal to the shared store (PostgreSQL): a pure
/// state machine over what the store holds and what the registry holds.
///
/// Every replica applies every change it is told about (`LISTEN/NOTIFY`), and every
/// `interval` compares the whole table with its registry: what a missed notification
/// left behind (a ghost worker, a missing one, stale settings) is put right by the next
/// pass. The reconciler also tracks whether the store is reachable and backs off while
/// it is not; routing never waits for it.
public struct StoreReconciler: Sendable {
    /// A worker of the registry as the diff sees it.
    public struct Local: Sendable, Equatable {
        public var id: WorkerID
        public var spec: WorkerSpec
        public var phase: WorkerPhase
        /// When this replica added it (a worker added after the store was read is not
        /// a ghost: its row was committed after the read).
        public var addedAt: ContinuousClock.Instant

        public init(id: WorkerID, spec: WorkerSpec, phase: WorkerPhase, addedAt: ContinuousClock.Instant) {
            self.id = id
            self.spec = spec
            self.phase = phase
            self.addedAt = addedAt
        }
    }

    /// One change that makes the registry match the store.
    public enum Change: Sendable, Equatable {
        /// A row the registry lacks: restore it (same id, settings and order).
        case add(StoredWorker)
        /// A row whose settings differ from the registry's worker.
        case update(WorkerID, WorkerSpec)
        /// A worker the store no longer has: drain and remove it.
        case remove(WorkerID)
    }

    /// What the driver does after a pass.
    public enum Action: Sendable, Equatable {
        /// Apply these changes (removals first: they free URLs that adds may need),
        /// then read the store again at `next`.
        case apply([Change], next: ContinuousClock.Instant)
        /// The store could not be read: keep serving from memory, try again at `next`.
        case retry(next: ContinuousClock.Instant)
    }

    /// Whether the store answered the last attempt.
    public private(set) var isReachable: Bool
    /// When the last pass completed (nil: none yet).
    public private(set) var lastSuccess: ContinuousClock.Instant?
    public private(set) var consecutiveFailures = 0
    public let interval: Duration
    public let backoff: Backoff

    public init(interval: Duration, backoff: Backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(10), multiplier: 2, jitter: 0.2), reachable: Bool = true) {
        self.interval = interval
        self.backoff = backoff
        self.isReachable = reachable
    }

    /// A pass read `rows` (the whole table, read starting at `readAt`) while the
    /// registry held `local`.
    public mutating func read(_ rows: [StoredWorker], readAt: ContinuousClock.Instant, local: [Local], now: ContinuousClock.Instant) -> Action {
        isReachable = true
        consecutiveFailures = 0
        lastSuccess = now
        return .apply(Self.diff(store: rows, registry: local, readAt: readAt), next: now + interval)
    }

    /// A pass failed (the store is down or the connection broke). `unit` is a random
    /// number in 0..<1 for the backoff's jitter.
    public mutating func failed(now: ContinuousClock.Instant, unit: Double) -> Action {
        isReachable = false
        consecutiveFailures += 1
        return .retry(next: now + backoff.delay(attempt: consecutiveFailures - 1, unit: unit))
    }

    /// The changes that make `registry` match `store`.
    ///
    /// - A draining worker is left alone (its row is gone already, it leaves by itself).
    /// - A worker added after `readAt` is not removed: its row may be newer than the read.
    /// - The same URL under another id: the registry's worker goes, the store's comes.
    public static func diff(store: [StoredWorker], registry: [Local], readAt: ContinuousClock.Instant) -> [Change] {
        var byID: [WorkerID: StoredWorker] = [:]
        for row in store { byID[row.id] = row }
        var removals: [Change] = []
        var updates: [Change] = []
        var present = Set<WorkerID>()
        for worker in registry where worker.phase != .draining {
            guard let row = byID[worker.id] else {
                if worker.addedAt < readAt { removals.append(.remove(worker.id)) }
                present.insert(worker.id)  // not re-added: it is not in the store
                continue
            }
            present.insert(worker.id)
            if row.spec != worker.spec { updates.append(.update(worker.id, row.spec)) }
        }
        let adds = store.filter { !present.contains($0.id) }.sorted { $0.sequence < $1.sequence }.map(Change.add)
        return removals + updates + adds
    }
}
