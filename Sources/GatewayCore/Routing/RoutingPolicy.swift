import Synchronization

/// What a policy may look at in a request.
public struct RoutingRequest: Sendable {
    /// The prompt text (for cache-aware routing), already capped in length.
    public var text: [UInt8]?
    /// The consistent-hash key (header `X-SMG-Routing-Key`, else the body's `user` or session id).
    public var key: String?
    /// Where a policy that explains its picks records why it chose (nil: nobody reads it).
    public var explanation: RouteExplanationBox?

    public init(text: [UInt8]? = nil, key: String? = nil, explanation: RouteExplanationBox? = nil) {
        self.text = text
        self.key = key
        self.explanation = explanation
    }
}

/// A load-balancing policy: picks one worker among eligible ones.
///
/// `eligible` is never empty; its workers are healthy, not open-circuited, not
/// saturated, and share the highest priority present. `all` is every routable
/// worker of the model (policies that need stability across availability
/// changes, like consistent hashing, build on it).
public protocol RoutingPolicy: Sendable {
    var name: String { get }
    func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate
    /// Whether a pick from the whole list may stand when the picked worker passes the
    /// availability checks. True when the pick does not depend on which other workers
    /// are available (random, round robin, power of two, consistent hash): the selector
    /// then checks one worker instead of every one. Cache-aware picks do depend on it
    /// (the worker with the most room among those available), so it gets the filtered list.
    var picksIndependently: Bool { get }
    /// Periodic housekeeping (cache-aware eviction); `liveWorkers` are the workers
    /// still registered (healthy or not).
    func maintain(liveWorkers: Set<WorkerID>)
}

extension RoutingPolicy {
    public func maintain(liveWorkers: Set<WorkerID>) {}
    public var picksIndependently: Bool { false }
}

/// The policies `--policy` names.
public enum PolicyName: String, Sendable, CaseIterable {
    case random
    case roundRobin = "round_robin"
    case powerOfTwo = "power_of_two"
    case cacheAware = "cache_aware"
    case consistentHash = "consistent_hash"
    /// Cache-aware on prompt blocks with rendezvous affinity (``BlockCacheAwarePolicy``).
    case cacheAwareBlocks = "cache_aware_blocks"

    /// Whether the policy reads the prompt's text.
    public var wantsText: Bool { self == .cacheAware || self == .cacheAwareBlocks }
}

// MARK: - Cost weighting

/// Among workers of equal priority, cheaper ones get proportionally more traffic:
/// a worker's weight is 1 / cost (a cost of 0 counts as a very small cost).
enum CostWeight {
    static func weight(_ candidate: RouteCandidate) -> Double {
        1 / max(candidate.cost, 1e-6)
    }

    static func allEqual(_ candidates: [RouteCandidate]) -> Bool {
        guard let first = candidates.first?.cost else { return true }
        return candidates.allSatisfy { $0.cost == first }
    }

    /// `allEqual`, known without a scan when `candidates` is all of `all` (the snapshot's
    /// list for `model`: eligible candidates are drawn from it).
    static func allEqual(_ candidates: [RouteCandidate], all: [RouteCandidate], model: String, snapshot: RoutingSnapshot) -> Bool {
        if candidates.count == all.count, let uniformity = snapshot.uniformity[model] { return uniformity.sameCost }
        return allEqual(candidates)
    }

    /// A weighted random index (`equalCosts`: the caller knows every weight is the same).
    static func randomIndex(_ candidates: [RouteCandidate], equalCosts: Bool, using generator: inout some RandomNumberGenerator) -> Int {
        if equalCosts { return Int.random(in: 0..<candidates.count, using: &generator) }
        let total = candidates.reduce(0) { $0 + weight($1) }
        var point = Double.random(in: 0..<total, using: &generator)
        for (index, candidate) in candidates.enumerated() {
            point -= weight(candidate)
            if point < 0 { return index }
        }
        return candidates.count - 1
    }

    /// The expected cost of sending one more request: load scaled by cost.
    static func pressure(_ candidate: RouteCandidate) -> Double {
        Double(candidate.handle.load + 1) * max(candidate.cost, 1e-6)
    }
}

// MARK: - Random

/// Uniformly random (weighted by cost).
public final class RandomPolicy: RoutingPolicy {
    public let name = PolicyName.random.rawValue
    public var picksIndependently: Bool { true }

    public init() {}

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        var generator = RoutingRandom()
        return eligible[CostWeight.randomIndex(eligible, equalCosts: CostWeight.allEqual(eligible, all: all, model: model, snapshot: snapshot), using: &generator)]
    }
}

// MARK: - Round robin

/// Each model's workers in turn. With equal costs the rotation is exact; with
/// different costs it is smooth weighted round robin (as nginx), weights 1/cost.
public final class RoundRobinPolicy: RoutingPolicy {
    public let name = PolicyName.roundRobin.rawValue
    public var picksIndependently: Bool { true }

    private struct ModelState {
        var next = 0
        var current: [WorkerID: Double] = [:]
    }

    private let state = Mutex<[String: ModelState]>([:])

    public init() {}

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        state.withLock { states in
            var modelState = states[model] ?? ModelState()
            defer { states[model] = modelState }
            if CostWeight.allEqual(eligible, all: all, model: model, snapshot: snapshot) {
                let index = modelState.next % eligible.count
                modelState.next = (index + 1) % max(eligible.count, 1)
                return eligible[index]
            }
            // Smooth weighted round robin.
            var total = 0.0
            var best = 0
            var bestValue = -Double.infinity
            for (index, candidate) in eligible.enumerated() {
                let weight = CostWeight.weight(candidate)
                total += weight
                let value = modelState.current[candidate.id, default: 0] + weight
                modelState.current[candidate.id] = value
                if value > bestValue {
                    bestValue = value
                    best = index
                }
            }
            modelState.current[eligible[best].id, default: 0] -= total
            if modelState.current.count > eligible.count * 2 {
                let live = Set(eligible.map(\.id))
                modelState.current = modelState.current.filter { live.contains($0.key) }
            }
            return eligible[best]
        }
    }
}

// MARK: - Power of two

/// Two random workers (weighted by cost); the one with less load × cost wins.
public final class PowerOfTwoPolicy: RoutingPolicy {
    public let name = PolicyName.powerOfTwo.rawValue
    public var picksIndependently: Bool { true }

    public init() {}

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        guard eligible.count > 1 else { return eligible[0] }
        var generator = RoutingRandom()
        let equalCosts = CostWeight.allEqual(eligible, all: all, model: model, snapshot: snapshot)
        let first = CostWeight.randomIndex(eligible, equalCosts: equalCosts, using: &generator)
        var second = CostWeight.randomIndex(eligible, equalCosts: equalCosts, using: &generator)
        if second == first { second = (first + 1 + Int.random(in: 0..<(eligible.count - 1), using: &generator)) % eligible.count }
        let a = eligible[first]
        let b = eligible[second]
        return CostWeight.pressure(a) <= CostWeight.pressure(b) ? a : b
    }
}
