import Synchronization

/// Bounds the requests served at once, with a bounded FIFO queue in front.
///
/// `acquire` returns a permit at once while fewer than `maxConcurrent` requests
/// run; otherwise it waits in the queue (at most `queueSize` waiters, for at most
/// `queueTimeout`). A full queue refuses at once, a wait that runs out refuses
/// with `.timedOut`. A released permit goes straight to the oldest waiter.
public final class AdmissionController: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var maxConcurrent: Int
        public var queueSize: Int
        public var queueTimeout: Duration

        public init(maxConcurrent: Int, queueSize: Int = 100, queueTimeout: Duration = .seconds(60)) {
            self.maxConcurrent = max(maxConcurrent, 1)
            self.queueSize = max(queueSize, 0)
            self.queueTimeout = queueTimeout
        }
    }

    public enum Refusal: Error, Sendable, Equatable {
        /// The queue is full (HTTP 429).
        case queueFull
        /// Waited `queueTimeout` without a slot (HTTP 408).
        case timedOut
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
        /// Gives up at the queue timeout; cancelled when the waiter is admitted, so a
        /// queued request leaves no sleeping task behind.
        let timer: Task<Void, Never>
    }

    private struct State {
        var running = 0
        var queue: [Waiter] = []
        var nextID: UInt64 = 0
    }

    public let configuration: Configuration
    private let state = Mutex(State())

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Requests running now.
    public var running: Int { state.withLock { $0.running } }
    /// Requests waiting now.
    public var queued: Int { state.withLock { $0.queue.count } }

    /// A slot now, if one is free and nobody waits (no suspension: the request path tries
    /// this first and waits only when it must).
    public func tryAcquire() -> AdmissionPermit? {
        let admitted = state.withLock { state in
            guard state.running < configuration.maxConcurrent && state.queue.isEmpty else { return false }
            state.running += 1
            return true
        }
        return admitted ? AdmissionPermit(self) : nil
    }

    /// Waits for a slot; the permit must be released when the response's last byte is out.
    public func acquire() async throws(Refusal) -> AdmissionPermit {
        enum Immediate { case admitted, full, wait(UInt64) }
        let immediate: Immediate = state.withLock { state in
            if state.running < configuration.maxConcurrent && state.queue.isEmpty {
                state.running += 1
                return .admitted
            }
            guard state.queue.count < configuration.queueSize else { return .full }
            state.nextID += 1
            return .wait(state.nextID)
        }
        switch immediate {
        case .admitted:
            return AdmissionPermit(self)
        case .full:
            throw .queueFull
        case .wait(let id):
            let admitted = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    // Acts only while the waiter is queued (giveUp finds it by id).
                    let timeout = configuration.queueTimeout
                    let timer = Task { [weak self] in
                        guard (try? await Task.sleep(for: timeout)) != nil else { return }
                        self?.giveUp(id)
                    }
                    let admittedNow: Bool? = state.withLock { state in
                        // A slot freed since the first look, or a cancellation that came first.
                        if Task.isCancelled { return false }
                        if state.running < configuration.maxConcurrent && state.queue.isEmpty {
                            state.running += 1
                            return true
                        }
                        state.queue.append(Waiter(id: id, continuation: continuation, timer: timer))
                        return nil
                    }
                    if let admittedNow {
                        timer.cancel()
                        continuation.resume(returning: admittedNow)
                    }
                }
            } onCancel: {
                giveUp(id)
            }
            guard admitted else { throw .timedOut }
            return AdmissionPermit(self)
        }
    }

    /// Removes a waiter that is still queued (its time ran out, or its task was cancelled).
    private func giveUp(_ id: UInt64) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.queue.firstIndex(where: { $0.id == id }) else { return nil }
            return state.queue.remove(at: index)
        }
        waiter?.timer.cancel()
        waiter?.continuation.resume(returning: false)
    }

    fileprivate func release() {
        let next: Waiter? = state.withLock { state in
            if state.queue.isEmpty {
                state.running -= 1
                return nil
            }
            // The slot passes to the oldest waiter; `running` stays the same.
            return state.queue.removeFirst()
        }
        next?.timer.cancel()
        next?.continuation.resume(returning: true)
    }
}

/// One admitted request's slot: released once, explicitly or when dropped.
public final class AdmissionPermit: Sendable {
    private let controller: AdmissionController
    private let released = Atomic<Bool>(false)

    fileprivate init(_ controller: AdmissionController) {
        self.controller = controller
    }

    public func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { controller.release() }
    }

    deinit { release() }
}

/// A token bucket per key: `rate` tokens a second, up to `burst`.
///
/// Keys are principals (an authenticated API key, or a peer address), so there are few;
/// still, the table is bounded: past `maxKeys` it drops the buckets that have refilled
/// (the same as absent), then, if that is not enough, the least recently used half (those
/// clients start again with a full bucket). Each prune at least halves the table, so its
/// cost is amortised over the inserts that filled it.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    public let rate: Double
    public let burst: Double
    public let maxKeys: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(rate: Double, burst: Double? = nil, maxKeys: Int = 100_000) {
        self.rate = max(rate, 0.001)
        self.burst = max(burst ?? rate, 1)
        self.maxKeys = max(maxKeys, 2)
    }

    /// Buckets kept now.
    public var count: Int { buckets.withLock { $0.count } }

    /// Takes a token for `key`; nil when allowed, else how long until one is there.
    public func take(_ key: String, now: ContinuousClock.Instant = .now) -> Duration? {
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated).seconds * rate)
            bucket.updated = now
            let wait: Duration?
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                wait = nil
            } else {
                wait = .seconds((1 - bucket.tokens) / rate)
            }
            buckets[key] = bucket
            if buckets.count > maxKeys { prune(&buckets, now: now) }
            return wait
        }
    }

    private func prune(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        buckets = buckets.filter { $0.value.tokens + (now - $0.value.updated).seconds * rate < burst }
        guard buckets.count > maxKeys / 2 else { return }
        let newest = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxKeys / 2)
        buckets = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }
}
