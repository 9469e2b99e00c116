import Synchronization

/// Sends a prompt to the worker most likely to hold its prefix in KV cache, unless
/// the load is out of balance.
///
/// Per model, a `PrefixTree` remembers which worker served which prompt prefixes.
/// Balanced load: the worker sharing the longest prefix wins if the shared part is
/// more than `cacheThreshold` of the prompt; otherwise the worker with the least
/// cached text (the most room). Imbalanced load — the busiest worker has more than
/// `balanceAbsThreshold` requests above the idlest and more than
/// `balanceRelThreshold` times its load — the least loaded worker (× cost) wins.
/// Either way the prompt is recorded for the chosen worker. `maintain` evicts each
/// worker's least recently used prefixes beyond `maxTreeSize` bytes and forgets
/// workers that left.
public final class CacheAwarePolicy: RoutingPolicy {
    public struct Configuration: Sendable, Equatable {
        public var cacheThreshold: Double
        public var balanceAbsThreshold: Int
        public var balanceRelThreshold: Double
        /// Bytes of prompt text remembered per worker.
        public var maxTreeSize: Int

        public init(cacheThreshold: Double = 0.3, balanceAbsThreshold: Int = 64, balanceRelThreshold: Double = 1.5, maxTreeSize: Int = 1 << 26) {
            self.cacheThreshold = cacheThreshold
            self.balanceAbsThreshold = balanceAbsThreshold
            self.balanceRelThreshold = balanceRelThreshold
            self.maxTreeSize = maxTreeSize
        }
    }

    public let name = PolicyName.cacheAware.rawValue
    public let configuration: Configuration
    private let trees = Mutex<[String: PrefixTree]>([:])
    /// Per model, the ids of a snapshot's whole candidate list (built once per snapshot,
    /// not per request; the snapshot is held so its identity cannot be reused).
    private let groupIDs = Mutex<[String: (snapshot: RoutingSnapshot, ids: Set<WorkerID>)]>([:])

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        guard let text = request.text, !text.isEmpty else {
            return eligible.count == 1 ? eligible[0] : leastPressure(eligible)
        }
        let imbalanced = eligible.count > 1 && isImbalanced(eligible)
        return trees.withLock { trees in
            let chosen: RouteCandidate
            if eligible.count == 1 {
                chosen = eligible[0]
            } else if imbalanced {
                chosen = leastPressure(eligible)
            } else {
                chosen = choose(eligible, ids: ids(of: eligible, all: all, model: model, snapshot: snapshot), text: text, tree: trees[model] ?? PrefixTree())
            }
            trees[model, default: PrefixTree()].insert(text, tenant: chosen.id)
            return chosen
        }
    }

    /// The ids of `eligible`; when it is all of `all` (the snapshot's list), made once per snapshot.
    private func ids(of eligible: [RouteCandidate], all: [RouteCandidate], model: String, snapshot: RoutingSnapshot) -> Set<WorkerID> {
        guard eligible.count == all.count else { return Set(eligible.map(\.id)) }
        return groupIDs.withLock { cache in
            if let cached = cache[model], cached.snapshot === snapshot { return cached.ids }
            let ids = Set(eligible.map(\.id))
            cache[model] = (snapshot, ids)
            return ids
        }
    }

    private func choose(_ eligible: [RouteCandidate], ids: Set<WorkerID>, text: [UInt8], tree: PrefixTree) -> RouteCandidate {
        let match = tree.longestMatch(text, among: ids)
        if match.length > 0, Double(match.length) / Double(text.count) > configuration.cacheThreshold {
            let holders = Set(match.tenants)
            return leastPressure(eligible.filter { holders.contains($0.id) })
        }
        // No worker has enough of it: the one with the most room, then the least loaded
        // (each worker's size looked up once).
        var best = eligible[0]
        var bestSize = tree.size(of: best.id)
        for candidate in eligible.dropFirst() {
            let size = tree.size(of: candidate.id)
            if size < bestSize || (size == bestSize && CostWeight.pressure(candidate) < CostWeight.pressure(best)) {
                best = candidate
                bestSize = size
            }
        }
        return best
    }

    func isImbalanced(_ eligible: [RouteCandidate]) -> Bool {
        var lowest = Int.max
        var highest = Int.min
        for candidate in eligible {
            let load = candidate.handle.load
            lowest = min(lowest, load)
            highest = max(highest, load)
        }
        return highest - lowest > configuration.balanceAbsThreshold
            && Double(highest) > configuration.balanceRelThreshold * Double(lowest)
    }

    private func leastPressure(_ candidates: [RouteCandidate]) -> RouteCandidate {
        candidates.min { CostWeight.pressure($0) < CostWeight.pressure($1) }!
    }

    public func maintain(liveWorkers live: Set<WorkerID>) {
        // Rebuilt on the next request; models that are gone leave no set behind.
        groupIDs.withLock { $0.removeAll() }
        trees.withLock { trees in
            for model in Array(trees.keys) {
                var tree = trees[model]!
                for tenant in tree.tenants {
                    if !live.contains(tenant) {
                        tree.remove(tenant: tenant)
                    } else if tree.size(of: tenant) > configuration.maxTreeSize {
                        tree.evict(tenant: tenant, downTo: configuration.maxTreeSize)
                    }
                }
                trees[model] = tree.tenants.isEmpty ? nil : tree
            }
        }
    }

    /// Bytes remembered for `worker` under `model` (for tests and metrics).
    public func cachedBytes(model: String, worker: WorkerID) -> Int {
        trees.withLock { $0[model]?.size(of: worker) ?? 0 }
    }
}
