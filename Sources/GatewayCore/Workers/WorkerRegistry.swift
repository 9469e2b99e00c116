import Synchronization

/// All workers the gateway knows, by id and by normalised URL.
///
/// One lock guards every table, so each operation is atomic: two registrations of
/// the same URL (in any equivalent spelling) can never produce two ids, and a
/// removal can never race a registration into resurrecting a worker. The lock is
/// held only for dictionary work, never across I/O. Listing order is registration
/// order, stable across calls.
public final class WorkerRegistry: Sendable {
    /// The outcome of `reserve`.
    public enum Reservation: Sendable, Equatable {
        /// A new worker: its add job must be started.
        case created(Worker)
        /// The URL is already registered or being registered: same id, nothing to start.
        case existing(Worker)
        /// The URL's earlier add had failed; it is pending again and its job must be restarted.
        case retried(Worker)

        public var worker: Worker {
            switch self {
            case .created(let w), .existing(let w), .retried(let w): w
            }
        }

        /// Whether the caller must start an add job.
        public var needsJob: Bool {
            if case .existing = self { return false }
            return true
        }
    }

    private struct Entry {
        var worker: Worker
        /// Since when it is `not_ready` or `failed` (for `--remove-unhealthy-workers`).
        var unhealthySince: ContinuousClock.Instant?
        /// When this registry added it (the store reconciler's ghost rule).
        var addedAt: ContinuousClock.Instant = .now
    }

    private struct State {
        var entries: [WorkerID: Entry] = [:]
        var idByURL: [WorkerURL: WorkerID] = [:]
        var order: [WorkerID] = []
        var nextSequence: UInt64 = 0
        var snapshot = RoutingSnapshot.empty
        /// A change made `snapshot` stale; the next read rebuilds it. Registering
        /// 10,000 workers in a row thus costs one rebuild, not 10,000 (O(n²)).
        var snapshotIsStale = false

        /// Marks the routing snapshot stale; called under the lock after any change
        /// to a ready worker's routability or settings.
        mutating func publish() {
            snapshotIsStale = true
        }

        /// The routing snapshot, rebuilt first if a change made it stale.
        mutating func currentSnapshot() -> RoutingSnapshot {
            if snapshotIsStale {
                rebuild()
                snapshotIsStale = false
            }
            return snapshot
        }

        private mutating func rebuild() {
            var byModel: [String: [RouteCandidate]] = [:]
            var known = Set<String>()
            for id in order {
                guard let worker = entries[id]?.worker, worker.phase == .ready else { continue }
                known.insert(worker.modelID)
                // The breaker is asked per request; the snapshot follows the checks only.
                guard worker.handle.checksPass else { continue }
                byModel[worker.modelID, default: []].append(
                    RouteCandidate(
                        handle: worker.handle, url: worker.url, modelID: worker.modelID, priority: worker.spec.priority,
                        cost: worker.spec.cost, runtime: worker.runtimeType ?? .openai, apiKey: worker.spec.apiKey,
                        maxLoad: worker.spec.maxLoad
                    )
                )
            }
            snapshot = RoutingSnapshot(version: snapshot.version + 1, candidatesByModel: byModel, knownModels: known)
        }
    }

    private let state = Mutex(State())
    private let wallClock: @Sendable () -> Int64
    private let monotonicClock: @Sendable () -> ContinuousClock.Instant
    private let breakerConfiguration: CircuitBreaker.Configuration

    /// - Parameters:
    ///   - wallClock: seconds since the Unix epoch, for job timestamps.
    ///   - breaker: the circuit-breaker settings of every worker.
    ///   - monotonicClock: the time a worker became unhealthy is taken from it (tests inject one).
    public init(
        wallClock: @escaping @Sendable () -> Int64, breaker: CircuitBreaker.Configuration = .init(),
        monotonicClock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.wallClock = wallClock
        self.breakerConfiguration = breaker
        self.monotonicClock = monotonicClock
    }

    /// Seconds since the Unix epoch on the registry's wall clock (the one of its job timestamps).
    public var wallClockNow: Int64 { wallClock() }

    /// The current routing view, rebuilt here (under the lock) when a change left it stale.
    public var routingSnapshot: RoutingSnapshot {
        state.withLock { $0.currentSnapshot() }
    }

    // MARK: Registration

    /// Returns the id for `spec.url`, creating a pending worker when the URL is new.
    public func reserve(_ spec: WorkerSpec) -> Reservation {
        let now = wallClock()
        return state.withLock { state in
            if let id = state.idByURL[spec.url], var entry = state.entries[id] {
                guard entry.worker.phase == .failed else { return .existing(entry.worker) }
                entry.worker.spec = spec
                entry.worker.phase = .registering
                entry.worker.modelID = spec.modelID ?? Worker.unknownModelID
                entry.worker.runtimeType = spec.runtimeType
                entry.worker.job = Self.addJob(spec, .pending, "registration queued (retrying a failed add)", now)
                entry.unhealthySince = nil
                state.entries[id] = entry
                return .retried(entry.worker)
            }
            var id = WorkerID.random()
            while state.entries[id] != nil { id = WorkerID.random() }
            let worker = Worker(
                id: id,
                spec: spec,
                phase: .registering,
                modelID: spec.modelID ?? Worker.unknownModelID,
                runtimeType: spec.runtimeType,
                metadata: [:],
                job: Self.addJob(spec, .pending, "registration queued", now),
                sequence: state.nextSequence,
                handle: WorkerHandle(id: id, breaker: breakerConfiguration)
            )
            state.nextSequence += 1
            state.entries[id] = Entry(worker: worker, addedAt: monotonicClock())
            state.idByURL[spec.url] = id
            state.order.append(id)
            return .created(worker)
        }
    }

    /// Puts back a worker from the durable store after a restart: same id, same
    /// place in the order, pending until its add job has probed it again.
    /// Nil when its id or URL is already registered.
    @discardableResult
    public func restore(_ stored: StoredWorker) -> Worker? {
        let now = wallClock()
        return state.withLock { state in
            guard state.entries[stored.id] == nil, state.idByURL[stored.spec.url] == nil else { return nil }
            let worker = Worker(
                id: stored.id,
                spec: stored.spec,
                phase: .registering,
                modelID: stored.spec.modelID ?? Worker.unknownModelID,
                runtimeType: stored.spec.runtimeType,
                metadata: [:],
                job: Self.addJob(stored.spec, .pending, "restored from the state file; probing again", now),
                sequence: stored.sequence,
                handle: WorkerHandle(id: stored.id, breaker: breakerConfiguration)
            )
            state.entries[stored.id] = Entry(worker: worker, addedAt: monotonicClock())
            state.idByURL[stored.spec.url] = stored.id
            // Keep registration order: insert by sequence.
            let index = state.order.firstIndex { (state.entries[$0]?.worker.sequence ?? 0) > stored.sequence } ?? state.order.count
            state.order.insert(stored.id, at: index)
            state.nextSequence = max(state.nextSequence, stored.sequence + 1)
            return worker
        }
    }

    /// Updates the add job's status while it runs. False when the worker is gone or
    /// no longer registering (removed, so the job must stop).
    @discardableResult
    public func updateRegistration(_ id: WorkerID, state jobState: JobState, message: String) -> Bool {
        let now = wallClock()
        return state.withLock { state in
            guard var entry = state.entries[id], entry.worker.phase == .registering else { return false }
            entry.worker.job = Self.addJob(entry.worker.spec, jobState, message, now)
            state.entries[id] = entry
            return true
        }
    }

    /// The add job succeeded: the worker becomes ready and healthy. Nil when it was
    /// removed meanwhile (the result is then dropped).
    @discardableResult
    public func completeRegistration(_ id: WorkerID, probe: WorkerProbeResult) -> Worker? {
        state.withLock { state in
            guard var entry = state.entries[id], entry.worker.phase == .registering else { return nil }
            entry.worker.phase = .ready
            entry.worker.modelID = entry.worker.spec.modelID ?? probe.modelID
            entry.worker.runtimeType = entry.worker.spec.runtimeType ?? probe.runtimeType
            entry.worker.metadata = probe.metadata
            entry.worker.job = nil
            entry.unhealthySince = nil
            entry.worker.handle.resetHealth(passing: true)
            state.entries[id] = entry
            state.publish()
            return entry.worker
        }
    }

    /// The add job gave up. The worker stays listed, unhealthy, with the reason.
    @discardableResult
    public func failRegistration(_ id: WorkerID, message: String) -> Bool {
        let now = wallClock()
        let instant = monotonicClock()
        return state.withLock { state in
            guard var entry = state.entries[id], entry.worker.phase == .registering else { return false }
            entry.worker.phase = .failed
            entry.unhealthySince = instant
            entry.worker.job = Self.addJob(entry.worker.spec, .failed, message, now)
            state.entries[id] = entry
            return true
        }
    }

    private static func addJob(_ spec: WorkerSpec, _ state: JobState, _ message: String, _ now: Int64) -> JobStatus {
        JobStatus(jobType: .addWorker, workerURL: spec.url.description, state: state, message: message, timestamp: now)
    }

    // MARK: Changes

    /// Applies `update` at once. Returns the changed worker, or nil when unknown.
    public func update(_ id: WorkerID, _ update: WorkerUpdate) -> Worker? {
        state.withLock { state in
            guard var entry = state.entries[id] else { return nil }
            entry.worker.spec = update.applied(to: entry.worker.spec)
            if entry.worker.spec.healthCheck.disabled, entry.worker.phase == .ready, !entry.worker.handle.checksPass {
                // Without checks nothing could ever mark it healthy again.
                entry.worker.handle.setChecks(passing: true)
                entry.unhealthySince = nil
            }
            state.entries[id] = entry
            if entry.worker.phase == .ready { state.publish() }
            return entry.worker
        }
    }

    /// Removes a worker at once (it leaves routing immediately). Returns what was removed.
    public func remove(_ id: WorkerID) -> Worker? {
        state.withLock { state in Self.remove(id, from: &state) }
    }

    private static func remove(_ id: WorkerID, from state: inout State) -> Worker? {
        guard let entry = state.entries.removeValue(forKey: id) else { return nil }
        // A draining worker gave its URL up already (it may belong to a new worker now).
        if state.idByURL[entry.worker.spec.url] == id { state.idByURL.removeValue(forKey: entry.worker.spec.url) }
        if let index = state.order.firstIndex(of: id) { state.order.remove(at: index) }
        if entry.worker.phase == .ready { state.publish() }
        return entry.worker
    }

    // MARK: Draining

    /// What `delete` did.
    public enum Deletion: Sendable, Equatable {
        /// Gone at once: it was pending (its add job must be cancelled) or failed, or `force` was given.
        case removed(Worker)
        /// Out of routing, draining: its drain job must be started.
        case draining(Worker)
        /// It was draining already (nothing new to start).
        case alreadyDraining(Worker)

        public var worker: Worker {
            switch self {
            case .removed(let w), .draining(let w), .alreadyDraining(let w): w
            }
        }
    }

    /// `DELETE /workers/{id}`: a ready worker starts draining (unless `force`); any
    /// other is removed at once. Nil when unknown.
    public func delete(_ id: WorkerID, force: Bool, drainDeadline: Int64) -> Deletion? {
        let worker: Worker? = state.withLock { state in state.entries[id]?.worker }
        guard let worker else { return nil }
        switch worker.phase {
        case .draining:
            if force { return remove(id).map(Deletion.removed) }
            return .alreadyDraining(worker)
        case .ready where !force:
            // Lost a race with a removal or a change of phase: decide again.
            guard let draining = beginDrain(id, deadline: drainDeadline) else { return delete(id, force: force, drainDeadline: drainDeadline) }
            return .draining(draining)
        default:
            return remove(id).map(Deletion.removed)
        }
    }

    /// Takes a ready worker out of routing at once and marks it draining; its URL is
    /// free from now on (posting it again registers a new worker). Nil when the worker
    /// is unknown or not ready (a pending or failed worker has nothing to drain: remove it).
    ///
    /// - Parameter deadline: seconds since the Unix epoch when its requests will be cut (for `job_status`).
    public func beginDrain(_ id: WorkerID, deadline: Int64) -> Worker? {
        let now = wallClock()
        return state.withLock { state in
            guard var entry = state.entries[id], entry.worker.phase == .ready else { return nil }
            entry.worker.phase = .draining
            entry.worker.job = JobStatus(
                jobType: .removeWorker, workerURL: entry.worker.url.description, state: .draining,
                message: "out of routing; removed once its in-flight requests end, or at \(Self.isoTime(deadline)) (--drain-timeout-secs) when they are cut",
                timestamp: now
            )
            state.entries[id] = entry
            if state.idByURL[entry.worker.spec.url] == id { state.idByURL.removeValue(forKey: entry.worker.spec.url) }
            state.publish()
            return entry.worker
        }
    }

    /// The drain ended: removes the worker if it is still draining. Nil otherwise
    /// (removed meanwhile with `force`).
    @discardableResult
    public func finishDrain(_ id: WorkerID) -> Worker? {
        state.withLock { state in
            guard state.entries[id]?.worker.phase == .draining else { return nil }
            return Self.remove(id, from: &state)
        }
    }

    /// `2026-12-03T12:00:00Z` for seconds since the Unix epoch (no Foundation in Core).
    static func isoTime(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let second = seconds - days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60))Z"
    }

    // MARK: Shared store

    /// Every worker as the store reconciler compares it with the store's rows.
    public func reconcileView() -> [StoreReconciler.Local] {
        state.withLock { state in
            state.order.compactMap { id in
                guard let entry = state.entries[id] else { return nil }
                return StoreReconciler.Local(id: id, spec: entry.worker.spec, phase: entry.worker.phase, addedAt: entry.addedAt)
            }
        }
    }

    // MARK: Unhealthy workers

    /// Workers that have been `not_ready` or `failed` for at least `limit(worker)`, in
    /// registration order (`--remove-unhealthy-workers` removes them).
    public func unhealthyWorkers(for limit: (Worker) -> Duration) -> [Worker] {
        let now = monotonicClock()
        return state.withLock { state in
            state.order.compactMap { id in
                guard let entry = state.entries[id], let since = entry.unhealthySince else { return nil }
                let status = entry.worker.status
                guard status == .notReady || status == .failed, now - since >= limit(entry.worker) else { return nil }
                return entry.worker
            }
        }
    }

    // MARK: Health

    /// Feeds one active health-probe result to the worker's ``WorkerHealth``. Returns
    /// what changed (a passing probe also half-opens an open breaker).
    @discardableResult
    public func recordProbe(_ id: WorkerID, succeeded: Bool) -> WorkerHealth.Change {
        let now = monotonicClock()
        return state.withLock { state in
            guard let worker = state.entries[id]?.worker, worker.phase == .ready else { return .none }
            let change = worker.handle.recordProbe(succeeded: succeeded, worker.spec.healthCheck.checkPolicy)
            Self.noteChecks(change.checks, of: id, at: now, in: &state)
            return change
        }
    }

    /// Republishes routing and keeps the time the worker became unhealthy.
    private static func noteChecks(_ transition: WorkerHealth.CheckTransition?, of id: WorkerID, at now: ContinuousClock.Instant, in state: inout State) {
        switch transition {
        case nil: return
        case .becameUnhealthy: state.entries[id]?.unhealthySince = now
        case .becameHealthy: state.entries[id]?.unhealthySince = nil
        }
        state.publish()
    }

    /// A request or probe found nothing listening at the worker: its checks fail at
    /// once (ignored when its checks are disabled: nothing would ever pass them again;
    /// the breaker handles that worker). Returns the check transition, if any.
    @discardableResult
    public func recordConnectionRefused(_ id: WorkerID) -> WorkerHealth.CheckTransition? {
        let now = monotonicClock()
        return state.withLock { state in
            guard let worker = state.entries[id]?.worker, worker.phase == .ready else { return nil }
            let change = worker.handle.recordRefused(worker.spec.healthCheck.checkPolicy)
            Self.noteChecks(change.checks, of: id, at: now, in: &state)
            return change.checks
        }
    }

    // MARK: Reading

    public func worker(_ id: WorkerID) -> Worker? {
        state.withLock { $0.entries[id]?.worker }
    }

    public func worker(url: WorkerURL) -> Worker? {
        state.withLock { state in state.idByURL[url].flatMap { state.entries[$0]?.worker } }
    }

    /// Every worker, in registration order.
    public func workers() -> [Worker] {
        state.withLock { state in state.order.compactMap { state.entries[$0]?.worker } }
    }

    /// The workers for which `include` holds, in registration order; only those are copied.
    public func workers(where include: (Worker) -> Bool) -> [Worker] {
        state.withLock { state in
            state.order.compactMap { id in
                guard let worker = state.entries[id]?.worker, include(worker) else { return nil }
                return worker
            }
        }
    }

    /// Workers that routing may use, in registration order.
    public func routableWorkers() -> [Worker] {
        workers(where: \.isRoutable)
    }

    public var count: Int { state.withLock { $0.entries.count } }

    /// Workers registered, and those ready and healthy, counted under the lock (no copy).
    public func counts() -> (total: Int, routable: Int) {
        state.withLock { state in (state.entries.count, state.entries.values.reduce(0) { $0 + ($1.worker.isRoutable ? 1 : 0) }) }
    }

    /// Whether at least one worker is ready and healthy.
    public var hasRoutableWorker: Bool {
        state.withLock { state in state.entries.values.contains { $0.worker.isRoutable } }
    }
}
