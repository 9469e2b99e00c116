/// The figures of the realistic engine. Defaults look like one small GPU (24 GB class,
/// A10G / L4) serving an ~8B model in 16-bit: about 32k tokens of KV cache after the
/// weights, prefill around 5,000 tokens/s, a decode step of 25 ms that grows by 0.5 ms per
/// running request (memory-bound: every running request's KV is read at every step).
public struct EngineConfiguration: Sendable, Equatable {
    /// Tokens per cache block (vLLM's and SGLang's paged caches use 16).
    public var blockSize: Int
    /// KV cache capacity in tokens (cached prefixes and running requests together).
    public var capacityTokens: Int
    /// Prefill cost per uncached prompt token, in microseconds.
    public var prefillMicrosPerToken: Double
    /// Fixed cost of one prefill step (a batch of prompts), in microseconds.
    public var prefillOverheadMicros: Double
    /// Duration of a decode step with one running request minus the per-request term,
    /// in microseconds: the inter-token latency of a lone request is this plus one increment.
    public var decodeBaseMicros: Double
    /// What each running request adds to a decode step, in microseconds.
    public var decodePerRunningMicros: Double
    /// Requests running at once (prefilling or decoding); more wait in a FIFO queue.
    public var maxRunning: Int
    /// Uncached prompt tokens one prefill step takes at most (a longer prompt runs alone).
    public var maxPrefillTokens: Int

    /// Creates a configuration; every parameter has the documented default.
    public init(
        blockSize: Int = 16,
        capacityTokens: Int = 32768,
        prefillMicrosPerToken: Double = 200,
        prefillOverheadMicros: Double = 10_000,
        decodeBaseMicros: Double = 25_000,
        decodePerRunningMicros: Double = 500,
        maxRunning: Int = 32,
        maxPrefillTokens: Int = 8192
    ) {
        self.blockSize = blockSize
        self.capacityTokens = capacityTokens
        self.prefillMicrosPerToken = prefillMicrosPerToken
        self.prefillOverheadMicros = prefillOverheadMicros
        self.decodeBaseMicros = decodeBaseMicros
        self.decodePerRunningMicros = decodePerRunningMicros
        self.maxRunning = maxRunning
        self.maxPrefillTokens = maxPrefillTokens
    }

    /// Nanoseconds a prefill step of `uncachedTokens` takes.
    public func prefillNanos(uncachedTokens: Int) -> UInt64 {
        UInt64(max(0, (prefillOverheadMicros + prefillMicrosPerToken * Double(uncachedTokens)) * 1000))
    }

    /// Nanoseconds a decode step with `running` requests takes.
    public func decodeNanos(running: Int) -> UInt64 {
        UInt64(max(0, (decodeBaseMicros + decodePerRunningMicros * Double(running)) * 1000))
    }
}

/// Monotonic counters of the engine, as vLLM's and SGLang's `/metrics` report them.
public struct EngineCounters: Sendable, Equatable {
    /// Prompt tokens of requests that started prefill (`vllm:prompt_tokens`).
    public var promptTokens = 0
    /// Prompt tokens looked up in the prefix cache (`vllm:prefix_cache_queries`).
    public var prefixCacheQueries = 0
    /// Of those, tokens found cached (`vllm:prefix_cache_hits`).
    public var prefixCacheHits = 0
    /// Tokens generated (`vllm:generation_tokens`).
    public var generationTokens = 0
    /// Requests that generated all their tokens (`vllm:request_success`).
    public var requestsFinished = 0
    /// Requests cancelled before they finished (client gone).
    public var requestsAborted = 0
    /// Requests refused because they could never fit the cache.
    public var requestsRejected = 0
    /// Prompt tokens whose KV came from a prefill worker (PD decode), not computed here.
    public var transferredTokens = 0
    /// Prefill and decode steps run.
    public var prefillSteps = 0
    /// Decode steps run.
    public var decodeSteps = 0
    /// Cache blocks evicted.
    public var evictedBlocks = 0

    /// All zero.
    public init() {}
}

/// The engine's load at one moment.
public struct EngineLoad: Sendable, Equatable {
    /// Requests prefilling or decoding.
    public var running: Int
    /// Requests in the FIFO queue.
    public var waiting: Int
    /// Prompt tokens of the waiting requests.
    public var waitingTokens: Int
    /// Tokens of KV held by running requests (pinned cached blocks and private blocks).
    public var usedTokens: Int
    /// Tokens of cached prefixes in the table (pinned or not).
    public var cachedTokens: Int
    /// The cache's capacity in tokens.
    public var capacityTokens: Int

    /// `usedTokens / capacityTokens` (vLLM's `kv_cache_usage_perc`: unpinned cached blocks count as free).
    public var kvUsage: Double {
        capacityTokens > 0 ? Double(usedTokens) / Double(capacityTokens) : 0
    }
}

/// The realistic engine's scheduler as a state machine over an injected clock: every event
/// (a request submitted, the running step's end, a cancel) is a `mutating func` taking
/// `now` (nanoseconds on any monotonic clock) and returning what happened plus when the
/// next step ends. No I/O and no clock of its own, so tests drive it event by event.
///
/// The model, one GPU executing one step at a time:
/// - **admission**: waiting requests are taken in FIFO order while fewer than
///   `maxRunning` run, their uncached tokens fit `maxPrefillTokens` (the first always
///   does) and the cache can reserve blocks for the whole sequence (prompt plus
///   `maxTokens`); the first that does not fit stops admission (head of line);
/// - **prefill step**: `prefillOverheadMicros + prefillMicrosPerToken × uncached tokens`
///   of the admitted batch; at its end each request has its first token, its prompt's
///   full blocks are cached, and it joins the running batch; prefill has priority;
/// - **decode step**: every running request gains one token; it lasts
///   `decodeBaseMicros + decodePerRunningMicros × running`;
/// - **finish**: the full blocks of prompt plus output are cached, the request's blocks
///   are unpinned (LRU), its private blocks freed.
/// A cached prefix covers whole blocks and never the last prompt token (one token is
/// always computed, as in vLLM and SGLang). A request whose KV was transferred from a
/// prefill worker skips prefill: it joins the running batch at admission.
public struct EngineCore: Sendable {
    /// A request's id, chosen by the caller and unique among live requests.
    public typealias RequestID = Int

    /// What a request asks of the engine.
    public struct Submission: Sendable, Equatable {
        /// The prompt's token ids.
        public var promptTokens: [Int]
        /// Tokens to generate (at least 1).
        public var maxTokens: Int
        /// Suffix of every generated word (see `SimTokenizer.outputTokenID`): the output's
        /// token ids, cached when the request finishes.
        public var outputTag: String
        /// Report progress every this many generated tokens (0: only first and last).
        public var notifyEvery: Int
        /// The prompt's KV arrives from a prefill worker: no prefill here.
        public var transferred: Bool

        /// Creates a submission.
        public init(promptTokens: [Int], maxTokens: Int, outputTag: String = "", notifyEvery: Int = 0, transferred: Bool = false) {
            self.promptTokens = promptTokens
            self.maxTokens = max(1, maxTokens)
            self.outputTag = outputTag
            self.notifyEvery = max(0, notifyEvery)
            self.transferred = transferred
        }
    }

    /// What happened to a request.
    public enum Event: Sendable, Equatable {
        /// The first token exists (end of its prefill step, or of its first decode step
        /// when the KV was transferred); `cachedTokens` of `promptTokens` were not computed.
        case firstToken(RequestID, cachedTokens: Int, promptTokens: Int)
        /// `generated` tokens exist so far (every `notifyEvery` tokens).
        case tokens(RequestID, generated: Int)
        /// All tokens generated.
        case finished(RequestID, generated: Int, cachedTokens: Int, promptTokens: Int)
        /// The request can never run (prompt plus max tokens exceed the cache).
        case rejected(RequestID, reason: String)
    }

    /// The events of one call and, when a step started, when it ends.
    public struct Output: Sendable, Equatable {
        /// What happened, in order.
        public var events: [Event] = []
        /// Set when a new step started: call `stepEnded(now:)` at this time.
        public var nextStepEndsAt: UInt64?
    }

    private enum Phase: Sendable {
        case waiting
        case prefilling
        case decoding
    }

    private struct Request: Sendable {
        var keys: [UInt64]
        var promptTail: [Int]
        var promptCount: Int
        var maxTokens: Int
        var tag: String
        var notifyEvery: Int
        var transferred: Bool
        var totalBlocks: Int
        var phase: Phase = .waiting
        var pinned: [UInt64] = []
        var privateBlocks = 0
        var generated = 0
        var cachedTokens = 0
    }

    private enum Step: Sendable {
        case idle
        case prefill([RequestID], endsAt: UInt64)
        case decode([RequestID], endsAt: UInt64)
    }

    /// The engine's figures.
    public let configuration: EngineConfiguration
    /// The prefix cache (read-only from outside: tests look at its blocks).
    public private(set) var cache: PrefixCache
    /// Monotonic counters.
    public private(set) var counters = EngineCounters()

    private var requests: [RequestID: Request] = [:]
    private var waiting: [RequestID] = []
    private var waitingHead = 0
    private var running: [RequestID] = []
    private var prefilling = 0
    private var step = Step.idle

    /// Creates an idle engine with an empty cache.
    public init(configuration: EngineConfiguration = EngineConfiguration()) {
        self.configuration = configuration
        let blocks = max(0, configuration.capacityTokens / max(1, configuration.blockSize))
        self.cache = PrefixCache(blockSize: max(1, configuration.blockSize), capacityBlocks: blocks)
    }

    // MARK: Observation

    /// The load now.
    public var load: EngineLoad {
        var waitingTokens = 0
        for id in waiting[waitingHead...] { waitingTokens += requests[id]?.promptCount ?? 0 }
        return EngineLoad(
            running: running.count + prefilling,
            waiting: waiting.count - waitingHead,
            waitingTokens: waitingTokens,
            usedTokens: cache.usedBlocks * cache.blockSize,
            cachedTokens: cache.cachedBlocks * cache.blockSize,
            capacityTokens: cache.capacityBlocks * cache.blockSize
        )
    }

    /// Whether a step is running.
    public var isBusy: Bool {
        if case .idle = step { return false }
        return true
    }

    /// Tokens generated so far by a live request (nil once finished or unknown).
    public func generated(_ id: RequestID) -> Int? { requests[id]?.generated }

    // MARK: Events

    /// A request arrives.
    public mutating func submit(_ submission: Submission, id: RequestID, now: UInt64) -> Output {
        var output = Output()
        let blockSize = cache.blockSize
        let total = (submission.promptTokens.count + submission.maxTokens + blockSize - 1) / blockSize
        guard requests[id] == nil else {
            output.events.append(.rejected(id, reason: "duplicate request id"))
            return output
        }
        guard total <= cache.capacityBlocks else {
            counters.requestsRejected += 1
            output.events.append(
                .rejected(
                    id,
                    reason: "prompt (\(submission.promptTokens.count) tokens) plus max tokens (\(submission.maxTokens)) exceed the KV cache (\(cache.capacityBlocks * blockSize) tokens)"
                )
            )
            return output
        }
        let full = submission.promptTokens.count / blockSize * blockSize
        requests[id] = Request(
            keys: PrefixCache.blockKeys(submission.promptTokens[...], blockSize: blockSize),
            promptTail: Array(submission.promptTokens[full...]),
            promptCount: submission.promptTokens.count,
            maxTokens: submission.maxTokens,
            tag: submission.outputTag,
            notifyEvery: submission.notifyEvery,
            transferred: submission.transferred,
            totalBlocks: total
        )
        waiting.append(id)
        if case .idle = step { startStep(now: now, into: &output) }
        return output
    }

    /// The running step's end time was reached.
    public mutating func stepEnded(now: UInt64) -> Output {
        var output = Output()
        switch step {
        case .idle:
            return output
        case .prefill(let batch, _):
            step = .idle
            for id in batch {
                guard var request = requests[id], case .prefilling = request.phase else { continue }
                prefilling -= 1
                for key in request.keys[request.pinned.count...] {
                    cache.commit(key)
                    request.pinned.append(key)
                    request.privateBlocks -= 1
                }
                request.phase = .decoding
                request.generated = 1
                counters.generationTokens += 1
                requests[id] = request
                output.events.append(.firstToken(id, cachedTokens: request.cachedTokens, promptTokens: request.promptCount))
                if request.generated >= request.maxTokens {
                    finish(id, into: &output)
                } else {
                    running.append(id)
                }
            }
        case .decode(let batch, _):
            step = .idle
            counters.decodeSteps += 1
            for id in batch {
                guard var request = requests[id], case .decoding = request.phase else { continue }
                request.generated += 1
                counters.generationTokens += 1
                requests[id] = request
                if request.generated == 1 {
                    output.events.append(.firstToken(id, cachedTokens: request.cachedTokens, promptTokens: request.promptCount))
                }
                if request.generated >= request.maxTokens {
                    running.removeAll { $0 == id }
                    finish(id, into: &output)
                } else if request.generated > 1, request.notifyEvery > 0, request.generated % request.notifyEvery == 0 {
                    output.events.append(.tokens(id, generated: request.generated))
                }
            }
        }
        startStep(now: now, into: &output)
        return output
    }

    /// The request's client went away: its blocks are released, it produces no more events.
    public mutating func cancel(_ id: RequestID, now: UInt64) -> Output {
        var output = Output()
        guard let request = requests.removeValue(forKey: id) else { return output }
        switch request.phase {
        case .waiting:
            if let index = waiting[waitingHead...].firstIndex(of: id) { waiting.remove(at: index) }
        case .prefilling:
            prefilling -= 1
        case .decoding:
            running.removeAll { $0 == id }
        }
        cache.unpin(request.pinned)
        cache.releasePrivate(request.privateBlocks)
        counters.requestsAborted += 1
        counters.evictedBlocks = cache.evictions
        if case .idle = step { startStep(now: now, into: &output) }
        return output
    }

    /// Drops every cached block no running request uses (SGLang's `/flush_cache`).
    public mutating func flushCache() -> Int {
        cache.flushUnpinned()
    }

    // MARK: Internals

    private mutating func startStep(now: UInt64, into output: inout Output) {
        guard case .idle = step else { return }
        compactWaiting()
        var batch: [RequestID] = []
        var budget = 0
        let blockSize = cache.blockSize
        while waitingHead < waiting.count, running.count + prefilling < configuration.maxRunning {
            let id = waiting[waitingHead]
            guard var request = requests[id] else {
                waitingHead += 1
                continue
            }
            if request.transferred {
                guard cache.reservePrivate(request.totalBlocks) else { break }
                request.privateBlocks = request.totalBlocks
                for key in request.keys {
                    cache.commit(key)
                    request.pinned.append(key)
                    request.privateBlocks -= 1
                }
                request.cachedTokens = request.promptCount
                request.phase = .decoding
                counters.transferredTokens += request.promptCount
                requests[id] = request
                running.append(id)
                waitingHead += 1
                continue
            }
            let matchable = max(0, request.promptCount - 1) / blockSize
            let matched = cache.matchLength(request.keys.prefix(matchable))
            let uncached = request.promptCount - matched * blockSize
            if !batch.isEmpty, budget + uncached > configuration.maxPrefillTokens { break }
            let newBlocks = request.totalBlocks - matched
            var unpinnedMatched = 0
            for key in request.keys.prefix(matched) where cache.pins(key) == 0 { unpinnedMatched += 1 }
            guard cache.availableBlocks - unpinnedMatched >= newBlocks else { break }
            let matchedKeys = Array(request.keys.prefix(matched))
            cache.pin(matchedKeys)
            let reserved = cache.reservePrivate(newBlocks)
            assert(reserved)
            request.pinned = matchedKeys
            request.privateBlocks = newBlocks
            request.cachedTokens = matched * blockSize
            request.phase = .prefilling
            requests[id] = request
            counters.promptTokens += request.promptCount
            counters.prefixCacheQueries += request.promptCount
            counters.prefixCacheHits += request.cachedTokens
            batch.append(id)
            budget += uncached
            prefilling += 1
            waitingHead += 1
        }
        counters.evictedBlocks = cache.evictions
        if !batch.isEmpty {
            counters.prefillSteps += 1
            let endsAt = now + configuration.prefillNanos(uncachedTokens: budget)
            step = .prefill(batch, endsAt: endsAt)
            output.nextStepEndsAt = endsAt
        } else if !running.isEmpty {
            let endsAt = now + configuration.decodeNanos(running: running.count)
            step = .decode(running, endsAt: endsAt)
            output.nextStepEndsAt = endsAt
        }
    }

    private mutating func compactWaiting() {
        if waitingHead > 64, waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
    }

    private mutating func finish(_ id: RequestID, into output: inout Output) {
        guard var request = requests.removeValue(forKey: id) else { return }
        let blockSize = cache.blockSize
        var tail = request.promptTail
        tail.reserveCapacity(tail.count + request.generated)
        for i in 0..<request.generated { tail.append(SimTokenizer.outputTokenID(i, tag: request.tag)) }
        let newKeys = PrefixCache.blockKeys(tail[...], blockSize: blockSize, parent: request.keys.last ?? PrefixCache.rootKey)
        for key in newKeys.prefix(request.privateBlocks) {
            cache.commit(key)
            request.pinned.append(key)
            request.privateBlocks -= 1
        }
        cache.unpin(request.pinned)
        cache.releasePrivate(request.privateBlocks)
        counters.requestsFinished += 1
        counters.evictedBlocks = cache.evictions
        output.events.append(
            .finished(id, generated: request.generated, cachedTokens: request.cachedTokens, promptTokens: request.promptCount)
        )
    }
}
