import Synchronization

/// Why the requests still running on a worker must end now.
public enum WorkerCut: Sendable, Equatable {
    /// The worker was deleted and its drain did not end within `--drain-timeout-secs`.
    case drainTimedOut(after: Duration)

    /// The error code the request path answers (OpenAI style) with its error event.
    public var code: String {
        switch self {
        case .drainTimedOut: "worker_drain_timeout"
        }
    }

    /// The error event's message.
    public var message: String {
        switch self {
        case .drainTimedOut(let after):
            "the worker was removed: its drain did not end within \(Int(after.seconds.rounded()))s (--drain-timeout-secs); the request was cut"
        }
    }
}

/// Drain support of one ``WorkerHandle``: who waits for its load to reach 0, and
/// the signal that tells its running requests to end.
///
/// Both stay off the request path unless used: `endRequest` looks at one atomic
/// flag when the load reaches 0, and a request that observes the cut signal pays
/// one lock to register and one to deregister.
final class WorkerHandleSignals: Sendable {
    private struct State {
        var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var cutObservers: [UInt64: @Sendable (WorkerCut) -> Void] = [:]
        var cut: WorkerCut?
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Whether someone waits for the load to reach 0 (so `endRequest` need not lock).
    private let hasIdleWaiters = Atomic<Bool>(false)
    private let isCut = Atomic<Bool>(false)

    var cut: WorkerCut? {
        guard isCut.load(ordering: .acquiring) else { return nil }
        return state.withLock { $0.cut }
    }

    /// Called by `endRequest` when the load has just reached 0.
    func loadReachedZero() {
        guard hasIdleWaiters.load(ordering: .sequentiallyConsistent) else { return }
        let waiters = state.withLock { state in
            let waiters = state.idleWaiters.values
            state.idleWaiters.removeAll()
            hasIdleWaiters.store(false, ordering: .sequentiallyConsistent)
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `load()` is 0 (at once if it is), or when the task is cancelled.
    func waitUntilIdle(load: @Sendable () -> Int) async {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.idleWaiters[token] = continuation
                    hasIdleWaiters.store(true, ordering: .sequentiallyConsistent)
                    // Registered first, then checked: a decrement to 0 after this sees the flag.
                    if load() == 0 {
                        state.idleWaiters.removeValue(forKey: token)
                        if state.idleWaiters.isEmpty { hasIdleWaiters.store(false, ordering: .sequentiallyConsistent) }
                        return true
                    }
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in state.idleWaiters.removeValue(forKey: token) }
            waiter?.resume()
        }
    }

    /// Signals every observer once; later observers are told at once.
    func cutRequests(_ reason: WorkerCut) {
        let observers = state.withLock { state -> [@Sendable (WorkerCut) -> Void] in
            guard state.cut == nil else { return [] }
            state.cut = reason
            isCut.store(true, ordering: .releasing)
            let observers = Array(state.cutObservers.values)
            state.cutObservers.removeAll()
            return observers
        }
        for observer in observers { observer(reason) }
    }

    func observeCut(_ action: @escaping @Sendable (WorkerCut) -> Void) -> UInt64? {
        let result = state.withLock { state -> (UInt64?, WorkerCut?) in
            if let cut = state.cut { return (nil, cut) }
            state.nextToken += 1
            state.cutObservers[state.nextToken] = action
            return (state.nextToken, nil)
        }
        if let cut = result.1 { action(cut) }
        return result.0
    }

    func stopObserving(_ token: UInt64) {
        _ = state.withLock { $0.cutObservers.removeValue(forKey: token) }
    }
}

/// A request's registration for a worker's cut signal (``WorkerHandle/onCut(_:)``):
/// ends when cancelled or released.
public final class WorkerCutObservation: Sendable {
    private let signals: WorkerHandleSignals
    private let token: UInt64?

    init(signals: WorkerHandleSignals, token: UInt64?) {
        self.signals = signals
        self.token = token
    }

    /// Stops observing (the request ended); also done when this object is released.
    public func cancel() {
        if let token { signals.stopObserving(token) }
    }

    deinit { cancel() }
}
