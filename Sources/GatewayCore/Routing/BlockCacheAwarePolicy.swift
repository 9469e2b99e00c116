import Synchronization

/// Cache-aware routing on prompt blocks, with deterministic affinity across gateway replicas.
///
/// Each prompt becomes a block-hash chain (``PromptBlocks``). Per model and worker, a bounded
/// LRU set of block hashes (``BlockLRU``, `blocksPerWorker` blocks) stands for what that
/// worker's KV cache holds: the blocks of the prompts it was sent, the prompt's first blocks
/// the most recently used (an engine evicts a prefix's deepest blocks first). A candidate's
/// *match* is how many of the prompt's first blocks it holds in a row.
///
/// Every candidate also has a rendezvous score: a hash of the prompt's *affinity key* (the
/// chain hash of block `min(affinityBlocks, blocks)`; the whole text when it has no complete
/// block) with a hash of the worker's URL. The highest score is the prompt's *home*. URLs and
/// the chain are the same in every gateway process, so replicas that share nothing agree on
/// the home, and on every tie below.
///
/// Load is bounded as in consistent hashing with bounded loads: with `L` requests in flight
/// over the `n` candidates, a candidate may take one more while it carries fewer than
/// `ceil(loadBoundFactor × (L + 1) / n)`. The rules, in order, over the candidates within the
/// bound (there is always one: the least loaded):
///
/// 1. **warmup**: the home is a new worker in a warm fleet (it holds less than `warmupShare`
///    of the others' mean, which is at least half of `blocksPerWorker`) — it takes its
///    rendezvous share at once instead of only prompts nobody holds;
/// 2. **cache**: the best match (ties: rendezvous order) holds at least `cacheThreshold` of
///    the prompt's blocks;
/// 3. **affinity**: otherwise the first candidate in rendezvous order.
///
/// When the bound moved the pick away from the one rule 2 or 3 would make without it, the
/// deciding rule is reported as `load`. Overload vetoes and shedding are the selector's
/// (`maxLoad`, ``WorkerSelector/shedWhenSaturated``). Prompts without text go to the least
/// loaded worker (× cost).
public final class BlockCacheAwarePolicy: RoutingPolicy {
    public struct Configuration: Sendable, Equatable {
        /// Share of a prompt's blocks a worker must hold to win on cache.
        public var cacheThreshold: Double
        /// Blocks remembered per worker (its KV cache's size in 16-token blocks).
        public var blocksPerWorker: Int
        /// The load bound's factor (≥ 1).
        public var loadBoundFactor: Double
        /// Blocks that make the affinity key.
        public var affinityBlocks: Int
        /// A worker holding less than this share of the others' mean blocks is warming up.
        public var warmupShare: Double

        public init(cacheThreshold: Double = 0.3, blocksPerWorker: Int = 65536, loadBoundFactor: Double = 1.25, affinityBlocks: Int = 8, warmupShare: Double = 0.25) {
            self.cacheThreshold = cacheThreshold
            self.blocksPerWorker = max(1, blocksPerWorker)
            self.loadBoundFactor = max(1, loadBoundFactor)
            self.affinityBlocks = max(1, affinityBlocks)
            self.warmupShare = warmupShare
        }
    }

    /// The rule that decided a pick.
    public enum Rule: String, Sendable, CaseIterable {
        case cache, affinity, warmup, load
        /// The prompt had no text to match (least loaded).
        case noText = "no_text"
        /// One candidate only.
        case single
    }

    public let name = PolicyName.cacheAwareBlocks.rawValue
    public let configuration: Configuration

    private struct WorkerIndex {
        var blocks: BlockLRU
        let seed: UInt64
    }

    private struct State {
        var models: [String: [WorkerID: WorkerIndex]] = [:]
        var stats = Stats()
    }

    private let state = Mutex(State())

    /// Decisions so far (the metrics): picks by rule, and blocks matched by the winner
    /// against blocks asked for.
    public struct Stats: Sendable, Equatable {
        public var decisions: [Rule: Int] = [:]
        public var matchedBlocks = 0
        public var promptBlocks = 0

        mutating func count(_ rule: Rule, matched: Int, blocks: Int) {
            decisions[rule, default: 0] += 1
            matchedBlocks += matched
            promptBlocks += blocks
        }
    }

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var statistics: Stats { state.withLock { $0.stats } }

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        guard let text = request.text, !text.isEmpty else {
            let chosen = eligible.count == 1 ? eligible[0] : eligible.min { CostWeight.pressure($0) < CostWeight.pressure($1) }!
            state.withLock { $0.stats.count(eligible.count == 1 ? .single : .noText, matched: 0, blocks: 0) }
            request.explanation?.record(RouteExplanation(rule: eligible.count == 1 ? Rule.single.rawValue : Rule.noText.rawValue, winner: chosen.url.description, blocks: 0, capacity: 0, candidates: []))
            return chosen
        }
        let chain = PromptBlocks.chain(text)
        let key = chain.isEmpty ? PromptBlocks.wholeTextKey(text) : chain[min(configuration.affinityBlocks, chain.count) - 1]
        let decision = state.withLock { state -> Decision in
            if state.models[model] == nil { state.models[model] = [:] }
            var views: [CandidateView] = []
            views.reserveCapacity(eligible.count)
            for candidate in eligible {
                let index: WorkerIndex
                if let known = state.models[model]![candidate.id] {
                    index = known
                } else {
                    index = WorkerIndex(blocks: BlockLRU(capacity: configuration.blocksPerWorker), seed: PromptBlocks.wholeTextKey(candidate.url.description.utf8))
                    state.models[model]![candidate.id] = index
                }
                var matched = 0
                while matched < chain.count && index.blocks.contains(chain[matched]) { matched += 1 }
                views.append(CandidateView(matched: matched, load: candidate.handle.load, score: RoutingRandom.mix(key ^ index.seed), held: index.blocks.count))
            }
            let decision = Self.decide(views, blocks: chain.count, configuration: configuration)
            // In place (no copy of the set): the prompt's first blocks touched last, the most recently used.
            func touch(_ blocks: inout BlockLRU) {
                for hash in chain.reversed() { blocks.touch(hash) }
            }
            touch(&state.models[model]![eligible[decision.winner].id]!.blocks)
            state.stats.count(decision.rule, matched: decision.views[decision.winner].matched, blocks: chain.count)
            return decision
        }
        let chosen = eligible[decision.winner]
        if let box = request.explanation {
            box.record(RouteExplanation(
                rule: decision.rule.rawValue, winner: chosen.url.description, blocks: chain.count, capacity: decision.capacity,
                candidates: zip(eligible, decision.views).map { .init(url: $0.url.description, matched: $1.matched, load: $1.load) }
            ))
        }
        return chosen
    }

    // MARK: The decision (pure)

    /// What the decision knows of one candidate.
    struct CandidateView: Equatable {
        /// Leading blocks of the prompt it holds.
        var matched: Int
        /// Requests in flight on it.
        var load: Int
        /// Its rendezvous score for the prompt's affinity key.
        var score: UInt64
        /// Blocks it holds in all.
        var held: Int
    }

    struct Decision: Equatable {
        var winner: Int
        var rule: Rule
        var capacity: Int
        var views: [CandidateView]
    }

    static func decide(_ views: [CandidateView], blocks: Int, configuration: Configuration) -> Decision {
        if views.count == 1 { return Decision(winner: 0, rule: .single, capacity: 0, views: views) }
        let total = views.reduce(0) { $0 + $1.load }
        let capacity = Int((configuration.loadBoundFactor * Double(total + 1) / Double(views.count)).rounded(.up))
        // Better: more matched blocks, then the higher rendezvous score.
        func better(_ a: Int, than b: Int) -> Bool {
            views[a].matched != views[b].matched ? views[a].matched > views[b].matched : views[a].score > views[b].score
        }
        var home = 0, homeWithin = -1, best = 0, bestWithin = -1
        for i in views.indices {
            if views[i].score > views[home].score { home = i }
            if better(i, than: best) { best = i }
            guard views[i].load < capacity else { continue }
            if homeWithin < 0 || views[i].score > views[homeWithin].score { homeWithin = i }
            if bestWithin < 0 || better(i, than: bestWithin) { bestWithin = i }
        }
        // The least loaded is always within the bound (its load ≤ the mean < the capacity).
        precondition(homeWithin >= 0 && bestWithin >= 0)
        let enough = { (i: Int) in blocks > 0 && views[i].matched > 0 && Double(views[i].matched) >= configuration.cacheThreshold * Double(blocks) }

        // (At least two candidates here: one alone returned above.)
        if homeWithin == home {
            let others = views.indices.filter { $0 != home }
            let mean = Double(others.reduce(0) { $0 + views[$1].held }) / Double(others.count)
            // Only in a warm fleet (the others' caches at least half full): at start every
            // cache is small and the rule would only take requests from their holders.
            if mean >= Double(configuration.blocksPerWorker) / 2, Double(views[home].held) < configuration.warmupShare * mean, !enough(home) {
                return Decision(winner: home, rule: .warmup, capacity: capacity, views: views)
            }
        }
        let unbounded = enough(best) ? best : home
        let pick = enough(bestWithin) ? bestWithin : homeWithin
        let rule: Rule = pick != unbounded ? .load : (enough(pick) ? .cache : .affinity)
        return Decision(winner: pick, rule: rule, capacity: capacity, views: views)
    }

    // MARK: Housekeeping

    public func maintain(liveWorkers live: Set<WorkerID>) {
        state.withLock { state in
            for model in Array(state.models.keys) {
                let kept = state.models[model]!.filter { live.contains($0.key) }
                state.models[model] = kept.isEmpty ? nil : kept
            }
        }
    }

    /// Blocks remembered for `worker` under `model` (tests, diagnostics).
    public func heldBlocks(model: String, worker: WorkerID) -> Int {
        state.withLock { $0.models[model]?[worker]?.blocks.count ?? 0 }
    }
}

/// Why a worker was chosen, for the opt-in response header and the debug log.
public struct RouteExplanation: Sendable, Equatable {
    public struct Candidate: Sendable, Equatable {
        public var url: String
        /// Leading prompt blocks the gateway believes it holds.
        public var matched: Int
        /// Requests in flight on it when the choice was made.
        public var load: Int
    }

    /// The rule that decided (``BlockCacheAwarePolicy/Rule``).
    public var rule: String
    public var winner: String
    /// Complete blocks in the prompt.
    public var blocks: Int
    /// The load bound (in-flight requests a candidate had to be below).
    public var capacity: Int
    public var candidates: [Candidate]

    /// One line: `rule=cache; worker=http://…; blocks=68; bound=4; http://a m=64 l=2, http://b m=0 l=1`.
    public var headerValue: String {
        var out = "rule=\(rule); worker=\(winner); blocks=\(blocks); bound=\(capacity)"
        if !candidates.isEmpty {
            out += "; " + candidates.map { "\($0.url) m=\($0.matched) l=\($0.load)" }.joined(separator: ", ")
        }
        return out
    }
}

/// Where a policy puts its explanation of one pick (given only when someone will read it).
public final class RouteExplanationBox: Sendable {
    private let value = Mutex<RouteExplanation?>(nil)

    public init() {}

    public func record(_ explanation: RouteExplanation) {
        value.withLock { $0 = explanation }
    }

    /// The last pick's explanation (a retry's pick replaces the first one's).
    public var explanation: RouteExplanation? { value.withLock { $0 } }
}
