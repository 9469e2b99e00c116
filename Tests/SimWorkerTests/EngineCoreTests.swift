import SimWorker
import Testing

/// Drives an `EngineCore` with a manual clock: every step ends exactly when it said.
private struct ManualEngine {
    var core: EngineCore
    var now: UInt64 = 1_000_000_000
    var stepEndsAt: UInt64?
    var log: [(at: UInt64, event: EngineCore.Event)] = []
    /// Step durations in order (nanoseconds), as the engine announced them.
    var steps: [UInt64] = []

    init(_ configuration: EngineConfiguration) {
        core = EngineCore(configuration: configuration)
    }

    mutating func absorb(_ output: EngineCore.Output) {
        for event in output.events { log.append((now, event)) }
        if let end = output.nextStepEndsAt {
            precondition(stepEndsAt == nil, "two steps at once")
            stepEndsAt = end
            steps.append(end - now)
        }
    }

    mutating func submit(_ id: Int, prompt: [Int], maxTokens: Int, notifyEvery: Int = 0, transferred: Bool = false) {
        absorb(core.submit(.init(promptTokens: prompt, maxTokens: maxTokens, notifyEvery: notifyEvery, transferred: transferred), id: id, now: now))
    }

    mutating func cancel(_ id: Int) { absorb(core.cancel(id, now: now)) }

    /// Ends steps until none is running or `limit` steps ran.
    mutating func runAll(limit: Int = 100_000) {
        var n = 0
        while let end = stepEndsAt, n < limit {
            now = end
            stepEndsAt = nil
            absorb(core.stepEnded(now: now))
            n += 1
        }
    }

    /// Ends exactly one step.
    mutating func step() {
        guard let end = stepEndsAt else { return }
        now = end
        stepEndsAt = nil
        absorb(core.stepEnded(now: now))
    }

    func firstToken(_ id: Int) -> (at: UInt64, cached: Int)? {
        for entry in log {
            if case .firstToken(id, let cached, _) = entry.event { return (entry.at, cached) }
        }
        return nil
    }

    func finished(_ id: Int) -> UInt64? {
        for entry in log {
            if case .finished(id, _, _, _) = entry.event { return entry.at }
        }
        return nil
    }
}

/// `PrefixCache.reservePrivate` outside `#expect` (which cannot call a mutating method).
private func reserve(_ cache: inout PrefixCache, _ count: Int) -> Bool { cache.reservePrivate(count) }

/// `count` distinct tokens starting at `base`.
private func tokens(_ base: Int, _ count: Int) -> [Int] { Array(base..<(base + count)) }

@Suite("Prefix cache")
struct PrefixCacheTests {
    @Test func sharedPrefixHitsWholeBlocks() {
        var cache = PrefixCache(blockSize: 16, capacityBlocks: 64)
        let a = tokens(0, 40) // 2 full blocks + 8
        let keysA = PrefixCache.blockKeys(a[...], blockSize: 16)
        #expect(keysA.count == 2)
        #expect(reserve(&cache, 2))
        for key in keysA { cache.commit(key) }
        cache.unpin(keysA)

        // Shares 40 tokens, then differs: both full blocks hit.
        let b = a + tokens(1000, 30)
        let keysB = PrefixCache.blockKeys(b[...], blockSize: 16)
        #expect(cache.matchLength(keysB) == 2)

        // Shares only 31 tokens: the second block differs in its last token, one hit.
        var c = a
        c[31] = 9999
        #expect(cache.matchLength(PrefixCache.blockKeys(c[...], blockSize: 16)) == 1)

        // A different first token: nothing, even though block 2 has the same tokens.
        var d = a
        d[0] = 4242
        #expect(cache.matchLength(PrefixCache.blockKeys(d[...], blockSize: 16)) == 0)
    }

    @Test func sameBlockUnderAnotherParentDoesNotMatch() {
        let block = tokens(500, 16)
        let first = PrefixCache.blockKeys((tokens(0, 16) + block)[...], blockSize: 16)
        let second = PrefixCache.blockKeys((tokens(100, 16) + block)[...], blockSize: 16)
        #expect(first[1] != second[1])
        #expect(PrefixCache.blockKeys(block[...], blockSize: 16)[0] != first[1])
        // Stable: the same tokens always give the same chain.
        #expect(PrefixCache.blockKeys((tokens(0, 16) + block)[...], blockSize: 16) == first)
    }

    @Test func evictsLeastRecentlyUsedChainTailFirst() {
        var cache = PrefixCache(blockSize: 16, capacityBlocks: 4)
        let a = PrefixCache.blockKeys(tokens(0, 32)[...], blockSize: 16)
        let b = PrefixCache.blockKeys(tokens(1000, 32)[...], blockSize: 16)
        for keys in [a, b] {
            #expect(reserve(&cache, 2))
            for key in keys { cache.commit(key) }
            cache.unpin(keys)
        }
        // Released tail first: a[1], a[0], b[1], b[0].
        #expect(cache.evictionOrder == [a[1], a[0], b[1], b[0]])
        // Using a again makes b the least recent.
        cache.pin(a)
        cache.unpin(a)
        #expect(cache.evictionOrder == [b[1], b[0], a[1], a[0]])
        // Room for two more blocks evicts b's, tail first.
        #expect(reserve(&cache, 2))
        #expect(cache.evictions == 2)
        #expect(!cache.contains(b[0]) && !cache.contains(b[1]))
        #expect(cache.matchLength(a) == 2)
    }

    @Test func pinnedBlocksAreNeverEvictedAndCapacityHolds() {
        var cache = PrefixCache(blockSize: 16, capacityBlocks: 4)
        let a = PrefixCache.blockKeys(tokens(0, 48)[...], blockSize: 16)
        #expect(reserve(&cache, 3))
        for key in a { cache.commit(key) } // pinned by their owner
        #expect(cache.usedBlocks == 3)
        #expect(cache.availableBlocks == 1)
        #expect(!reserve(&cache, 2))
        #expect(reserve(&cache, 1))
        #expect(cache.availableBlocks == 0)
        cache.releasePrivate(1)
        cache.unpin(a)
        #expect(cache.evictableBlocks == 3)
        #expect(reserve(&cache, 4))
        #expect(cache.cachedBlocks == 0)
        #expect(cache.usedBlocks == 4)
    }

    @Test func committingABlockCachedMeanwhilePinsTheExistingOne() {
        var cache = PrefixCache(blockSize: 16, capacityBlocks: 8)
        let keys = PrefixCache.blockKeys(tokens(0, 16)[...], blockSize: 16)
        #expect(reserve(&cache, 2))
        cache.commit(keys[0])
        cache.commit(keys[0])
        #expect(cache.cachedBlocks == 1)
        #expect(cache.pins(keys[0]) == 2)
        #expect(cache.privateBlocks == 0)
        cache.unpin(keys)
        #expect(cache.pins(keys[0]) == 1)
    }
}

@Suite("Engine core")
struct EngineCoreTests {
    private let figures = EngineConfiguration(
        blockSize: 16, capacityTokens: 16 * 1024, prefillMicrosPerToken: 100, prefillOverheadMicros: 5_000,
        decodeBaseMicros: 20_000, decodePerRunningMicros: 1_000, maxRunning: 4, maxPrefillTokens: 100_000
    )

    @Test func prefillTimeIsProportionalToUncachedTokens() {
        var engine = ManualEngine(figures)
        let system = tokens(0, 1024)
        engine.submit(1, prompt: system + tokens(5000, 64), maxTokens: 4)
        // 1088 uncached tokens: 5 ms + 1088 × 0.1 ms.
        #expect(engine.steps.first == 5_000_000 + 1088 * 100_000)
        engine.runAll()
        #expect(engine.firstToken(1)?.cached == 0)

        engine.steps = []
        engine.submit(2, prompt: system + tokens(7000, 64), maxTokens: 4)
        // The system prompt's 64 blocks are cached: 64 uncached tokens.
        #expect(engine.steps.first == 5_000_000 + 64 * 100_000)
        engine.runAll()
        #expect(engine.firstToken(2)?.cached == 1024)

        // Counters as vLLM reports them.
        let counters = engine.core.counters
        #expect(counters.prefixCacheQueries == 2 * 1088)
        #expect(counters.prefixCacheHits == 1024)
        #expect(counters.promptTokens == 2 * 1088)
        #expect(counters.generationTokens == 8)
        #expect(counters.requestsFinished == 2)
    }

    @Test func aFullHitStillComputesTheLastToken() {
        var engine = ManualEngine(figures)
        let prompt = tokens(0, 64)
        engine.submit(1, prompt: prompt, maxTokens: 1)
        engine.runAll()
        engine.steps = []
        engine.submit(2, prompt: prompt, maxTokens: 1)
        engine.runAll()
        // Blocks 0-2 hit; the last block holds the last token, which is computed.
        #expect(engine.firstToken(2)?.cached == 48)
        #expect(engine.steps.first == 5_000_000 + 16 * 100_000)
    }

    @Test func interTokenLatencyGrowsWithTheRunningBatch() {
        var engine = ManualEngine(figures)
        engine.submit(1, prompt: tokens(0, 16), maxTokens: 10)
        engine.step() // prefill
        engine.step() // one decode step with one request
        #expect(engine.steps[1] == 20_000_000 + 1_000_000)

        var busy = ManualEngine(figures)
        busy.submit(1, prompt: tokens(0, 16), maxTokens: 10)
        busy.submit(2, prompt: tokens(100, 16), maxTokens: 10)
        busy.submit(3, prompt: tokens(200, 16), maxTokens: 10)
        busy.submit(4, prompt: tokens(300, 16), maxTokens: 10)
        // Request 1's prefill started alone; 2-4 are prefilled together in the next step.
        busy.step()
        busy.step()
        busy.step() // decode with four running
        #expect(busy.steps[2] == 20_000_000 + 4 * 1_000_000)
        busy.runAll()
        for id in 1...4 { #expect(busy.finished(id) != nil) }
        #expect(busy.core.counters.generationTokens == 40)
    }

    @Test func requestsBeyondTheMaximumBatchWaitInOrder() {
        var configuration = figures
        configuration.maxRunning = 2
        var engine = ManualEngine(configuration)
        engine.submit(1, prompt: tokens(0, 16), maxTokens: 3)
        engine.submit(2, prompt: tokens(100, 16), maxTokens: 3)
        engine.submit(3, prompt: tokens(200, 16), maxTokens: 3)
        engine.submit(4, prompt: tokens(300, 16), maxTokens: 3)
        #expect(engine.core.load.waiting == 3) // 1 prefills; 2, 3, 4 queue
        engine.step()
        #expect(engine.core.load.running == 2) // 1 decodes, 2 prefills
        #expect(engine.core.load.waiting == 2)
        engine.runAll()
        let first = [1, 2, 3, 4].map { engine.firstToken($0)!.at }
        #expect(first == first.sorted())
        // 3 starts only after 1 or 2 finished.
        let done = min(engine.finished(1)!, engine.finished(2)!)
        #expect(first[2] > done)
        #expect(engine.core.load.running == 0 && engine.core.load.waiting == 0)
    }

    @Test func aRequestThatDoesNotFitTheFreeCacheWaitsAtTheHead() {
        var configuration = figures
        configuration.capacityTokens = 16 * 10 // 10 blocks
        var engine = ManualEngine(configuration)
        engine.submit(1, prompt: tokens(0, 96), maxTokens: 32) // 8 blocks
        engine.submit(2, prompt: tokens(1000, 48), maxTokens: 16) // 4 blocks: must wait
        engine.submit(3, prompt: tokens(2000, 8), maxTokens: 8) // 1 block, but FIFO behind 2
        engine.step()
        #expect(engine.core.load.waiting == 2)
        engine.runAll()
        #expect(engine.firstToken(2)!.at > engine.finished(1)!)
        #expect(engine.firstToken(3)!.at >= engine.firstToken(2)!.at)
        // What never fits is refused at once.
        engine.submit(9, prompt: tokens(0, 200), maxTokens: 16)
        #expect(engine.log.contains { if case .rejected(9, _) = $0.event { true } else { false } })
        #expect(engine.core.counters.requestsRejected == 1)
    }

    @Test func kvUsageCountsPinnedAndPrivateBlocksOnly() {
        var engine = ManualEngine(figures)
        engine.submit(1, prompt: tokens(0, 160), maxTokens: 32) // 12 blocks
        engine.step()
        #expect(engine.core.load.usedTokens == 12 * 16)
        #expect(engine.core.load.kvUsage == Double(12 * 16) / Double(16 * 1024))
        engine.runAll()
        #expect(engine.core.load.usedTokens == 0)
        // Prompt plus output: 192 tokens, 12 full blocks cached, now unpinned.
        #expect(engine.core.load.cachedTokens == 192)
        #expect(engine.core.cache.evictableBlocks == 12)
    }

    @Test func theOutputIsCachedSoTheNextTurnHitsIt() {
        var engine = ManualEngine(figures)
        let turn1 = tokens(0, 30)
        engine.submit(1, prompt: turn1, maxTokens: 34)
        engine.runAll()
        let reply = (0..<34).map { SimTokenizer.outputTokenID($0) }
        let turn2 = turn1 + reply + tokens(9000, 20)
        engine.submit(2, prompt: turn2, maxTokens: 1)
        engine.runAll()
        // 30 + 34 = 64 tokens: four full blocks of the first turn and its reply.
        #expect(engine.firstToken(2)?.cached == 64)
    }

    @Test func progressEventsEveryNTokens() {
        var engine = ManualEngine(figures)
        engine.submit(1, prompt: tokens(0, 8), maxTokens: 10, notifyEvery: 4)
        engine.runAll()
        let events = engine.log.map(\.event)
        #expect(
            events == [
                .firstToken(1, cachedTokens: 0, promptTokens: 8),
                .tokens(1, generated: 4),
                .tokens(1, generated: 8),
                .finished(1, generated: 10, cachedTokens: 0, promptTokens: 8),
            ]
        )
    }

    @Test func cancelFreesBlocksAndStopsEvents() {
        var engine = ManualEngine(figures)
        engine.submit(1, prompt: tokens(0, 64), maxTokens: 100)
        engine.submit(2, prompt: tokens(500, 64), maxTokens: 100)
        engine.step()
        engine.step()
        engine.cancel(1)
        engine.cancel(2)
        let count = engine.log.count
        engine.runAll()
        #expect(engine.log.count == count)
        #expect(engine.core.load.usedTokens == 0)
        #expect(engine.core.counters.requestsAborted == 2)
        #expect(!engine.core.isBusy)
    }

    @Test func transferredKVSkipsPrefill() {
        var engine = ManualEngine(figures)
        engine.submit(1, prompt: tokens(0, 500), maxTokens: 3, transferred: true)
        // Straight into a decode step: no prefill cost.
        #expect(engine.steps.first == 20_000_000 + 1_000_000)
        engine.runAll()
        #expect(engine.firstToken(1)?.cached == 500)
        #expect(engine.core.counters.transferredTokens == 500)
        #expect(engine.core.counters.prefixCacheQueries == 0)
        #expect(engine.core.counters.prefillSteps == 0)
    }

    @Test func prefillBatchesStopAtTheTokenBudget() {
        var configuration = figures
        configuration.maxPrefillTokens = 100
        var engine = ManualEngine(configuration)
        engine.submit(1, prompt: tokens(0, 10), maxTokens: 2)
        engine.submit(2, prompt: tokens(100, 60), maxTokens: 2)
        engine.submit(3, prompt: tokens(200, 60), maxTokens: 2)
        engine.step() // 1 alone (it arrived to an idle engine)
        // 2 fits the budget, 3 would exceed it: the second prefill step is 2 alone.
        #expect(engine.steps[1] == 5_000_000 + 60 * 100_000)
        engine.runAll()
        #expect(engine.core.counters.prefillSteps == 3)
    }
}

@Suite("Tokenizer")
struct SimTokenizerTests {
    @Test func wordsAndStableIDs() {
        #expect(SimTokenizer.tokenize("a  b\nc") == [SimTokenizer.tokenID("a"), SimTokenizer.tokenID("b"), SimTokenizer.tokenID("c")])
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; the id is its top 31 bits.
        #expect(SimTokenizer.tokenID("a") == Int(0xaf63_dc4c_8601_ec8c as UInt64 >> 33))
        #expect(SimTokenizer.outputTokenID(3, tag: "@s1") == SimTokenizer.tokenID("tok3@s1"))
    }

    @Test func chatHistoryWithOneMoreTurnSharesItsPrefix() {
        let one = [SimTokenizer.ChatMessage(role: "system", content: "be brief"), .init(role: "user", content: "hi")]
        let reply = SimTokenizer.ChatMessage(role: "assistant", content: "tok0 tok1")
        let two = one + [reply, .init(role: "user", content: "more")]
        let a = SimTokenizer.tokenize(chat: one)
        let b = SimTokenizer.tokenize(chat: two)
        // The first rendering ends with the generation prompt, which opens the assistant turn.
        #expect(Array(b.prefix(a.count)) == a)
        #expect(b[a.count] == SimTokenizer.outputTokenID(0))
        #expect(SimTokenizer.tokenize(SimTokenizer.render(chat: two)) == b)
    }
}
