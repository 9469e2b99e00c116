/// Why no worker could be chosen.
public enum SelectionFailure: Error, Sendable, Equatable {
    /// The request names a model no registered worker serves.
    case modelNotFound(String, served: [String])
    /// The request names no model and several are served.
    case modelRequired(served: [String])
    /// The model is known, but no worker for it is healthy, closed-circuit and untried now.
    case noAvailableWorkers(model: String?)
    /// Every available worker is saturated and the selector sheds instead of queueing on one.
    case overloaded(model: String)
}

/// Chooses the worker for a request: model, availability, priority, then policy.
///
/// 1. The model: the request's, or the only one served.
/// 2. Available workers: ready, healthy, breaker closed or half-open, not already
///    tried by this request; unsaturated ones first (saturated ones only when all are).
/// 3. The highest priority among them; a lower priority takes traffic only when
///    every higher one is unavailable or saturated.
/// 4. The policy picks within that tier (cost weighs inside the policy).
public struct WorkerSelector: Sendable {
    public let registry: WorkerRegistry
    public let policy: any RoutingPolicy
    /// When every available worker is saturated (its `maxLoad` reached): refuse the request
    /// (``SelectionFailure/overloaded(model:)``, 503 with `Retry-After`) instead of sending it
    /// to a saturated worker, where it would queue behind the others and blow everyone's
    /// latency target.
    public let shedWhenSaturated: Bool

    public init(registry: WorkerRegistry, policy: any RoutingPolicy, shedWhenSaturated: Bool = false) {
        self.registry = registry
        self.policy = policy
        self.shedWhenSaturated = shedWhenSaturated
    }

    /// The model a request without one goes to, if there is exactly one.
    public static func resolveModel(_ requested: String?, in snapshot: RoutingSnapshot) -> Result<String, SelectionFailure> {
        if let requested, !requested.isEmpty {
            guard snapshot.knownModels.contains(requested) else {
                return .failure(.modelNotFound(requested, served: snapshot.knownModels.sorted()))
            }
            return .success(requested)
        }
        switch snapshot.knownModels.count {
        case 0: return .failure(.noAvailableWorkers(model: nil))
        case 1: return .success(snapshot.knownModels.first!)
        default: return .failure(.modelRequired(served: snapshot.knownModels.sorted()))
        }
    }

    public func select(
        model requested: String?,
        request: RoutingRequest,
        excluding excluded: Set<WorkerID> = [],
        now: ContinuousClock.Instant = .now
    ) -> Result<RouteCandidate, SelectionFailure> {
        let snapshot = registry.routingSnapshot
        let model: String
        switch Self.resolveModel(requested, in: snapshot) {
        case .success(let m): model = m
        case .failure(let failure): return .failure(failure)
        }
        let all = snapshot.candidatesByModel[model] ?? []
        var passed = 0
        var breakerRefused = false
        if excluded.isEmpty, let first = all.first {
            if policy.picksIndependently, snapshot.uniformity[model]?.samePriority == true {
                // Fastest path: one priority, so any available worker is in the top tier;
                // the policy picks from the whole list and only its pick is checked.
                let pick = policy.select(all, all: all, model: model, request: request, snapshot: snapshot)
                if !pick.isSaturated {
                    if pick.handle.breakerAllows(at: now).allowed { return .success(pick) }
                    // Refused: the full check below must not ask its breaker again.
                    return selectFiltered(all, model: model, request: request, snapshot: snapshot, excluded: [pick.id], now: now)
                }
            } else {
                // Fast path: nothing excluded, every worker of one priority, unsaturated,
                // breaker letting it through. The whole list is then the tier, and nothing
                // is copied (a copy per candidate per request dominated large fleets).
                while passed < all.count {
                    if all[passed].priority != first.priority || all[passed].isSaturated { break }
                    if !all[passed].handle.breakerAllows(at: now).allowed {
                        breakerRefused = true
                        break
                    }
                    passed += 1
                }
                if passed == all.count {
                    return .success(policy.select(all, all: all, model: model, request: request, snapshot: snapshot))
                }
            }
        }
        return selectFiltered(all, model: model, request: request, snapshot: snapshot, excluded: excluded, now: now, passed: passed, breakerRefused: breakerRefused)
    }

    /// Availability checked worker by worker, then priority, then the policy.
    ///
    /// - Parameters:
    ///   - passed: the first `passed` candidates already passed every check.
    ///   - breakerRefused: the candidate at `passed` was just refused by its breaker.
    private func selectFiltered(
        _ all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot, excluded: Set<WorkerID>,
        now: ContinuousClock.Instant, passed: Int = 0, breakerRefused: Bool = false
    ) -> Result<RouteCandidate, SelectionFailure> {
        // The first `passed` candidates passed every check above; the rest are checked
        // here (a breaker is asked once per request: asking may move it to half-open).
        var available = Array(all[0..<passed])
        var unsaturated = available
        available.reserveCapacity(all.count)
        for index in passed..<all.count {
            let candidate = all[index]
            if excluded.contains(candidate.id) { continue }
            if index == passed && breakerRefused { continue }
            guard candidate.handle.breakerAllows(at: now).allowed else { continue }
            available.append(candidate)
            if !candidate.isSaturated { unsaturated.append(candidate) }
        }
        if unsaturated.isEmpty, shedWhenSaturated, !available.isEmpty {
            return .failure(.overloaded(model: model))
        }
        let pool = unsaturated.isEmpty ? available : unsaturated
        guard let top = pool.lazy.map(\.priority).max() else {
            return .failure(.noAvailableWorkers(model: model))
        }
        let tier = pool.count == 1 ? pool : pool.filter { $0.priority == top }
        return .success(policy.select(tier, all: all, model: model, request: request, snapshot: snapshot))
    }
}

extension PolicyName {
    /// A fresh policy instance of this kind.
    public func makePolicy(cacheAware: CacheAwarePolicy.Configuration = .init(), blocks: BlockCacheAwarePolicy.Configuration = .init()) -> any RoutingPolicy {
        switch self {
        case .random: RandomPolicy()
        case .roundRobin: RoundRobinPolicy()
        case .powerOfTwo: PowerOfTwoPolicy()
        case .cacheAware: CacheAwarePolicy(configuration: cacheAware)
        case .consistentHash: ConsistentHashPolicy()
        case .cacheAwareBlocks: BlockCacheAwarePolicy(configuration: blocks)
        }
    }
}
