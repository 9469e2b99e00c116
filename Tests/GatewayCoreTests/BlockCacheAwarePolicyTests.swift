import Testing

@testable import GatewayCore

/// `count` distinct words with `prefix`: 16 of them make one block.
private func words(_ prefix: String, _ count: Int, from start: Int = 0) -> String {
    (start..<(start + count)).map { "\(prefix)\($0)" }.joined(separator: " ")
}

private func text(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite("Prompt blocks")
struct PromptBlocksTests {
    @Test("Blocks of 16 words; the incomplete tail and an unterminated last word do not count")
    func blockBoundaries() {
        #expect(PromptBlocks.chain(text(words("w", 15) + " ")).isEmpty)
        #expect(PromptBlocks.chain(text(words("w", 16))).isEmpty, "the 16th word might go on")
        #expect(PromptBlocks.chain(text(words("w", 16) + " ")).count == 1)
        #expect(PromptBlocks.chain(text(words("w", 40) + " ")).count == 2)
    }

    @Test("A longer prompt shares the chain of its prefix; whitespace amounts do not matter")
    func prefixSharing() {
        let short = PromptBlocks.chain(text(words("s", 64) + " "))
        let long = PromptBlocks.chain(text(words("s", 64) + " " + words("q", 20) + " "))
        #expect(short.count == 4)
        #expect(Array(long.prefix(4)) == short)
        let spaced = PromptBlocks.chain(text((0..<64).map { "s\($0)" }.joined(separator: " \n\t ") + " "))
        #expect(spaced == short)
        // One word changed in block 2: blocks 0-1 shared, every later chain hash differs.
        var changed = (0..<64).map { "s\($0)" }
        changed[40] = "x"
        let other = PromptBlocks.chain(text(changed.joined(separator: " ") + " "))
        #expect(Array(other.prefix(2)) == Array(short.prefix(2)))
        #expect(other[2] != short[2] && other[3] != short[3])
    }

    @Test("Text without spaces is cut by bytes")
    func byteCap() {
        let blob = text(String(repeating: "字", count: 200))  // 600 bytes, one "word"
        #expect(PromptBlocks.chain(blob).count == 600 / PromptBlocks.maxBlockBytes)
    }

    @Test("Block LRU evicts the least recently used block")
    func lru() {
        var lru = BlockLRU(capacity: 3)
        for h: UInt64 in [1, 2, 3] { lru.touch(h) }
        lru.touch(1)
        lru.touch(4)  // evicts 2
        #expect(!lru.contains(2))
        #expect(lru.contains(1) && lru.contains(3) && lru.contains(4))
        #expect(lru.orderedHashes == [4, 1, 3])
        #expect(lru.count == 3)
    }
}

@Suite("Cache-aware routing on blocks")
struct BlockCacheAwarePolicyTests {
    typealias View = BlockCacheAwarePolicy.CandidateView
    let configuration = BlockCacheAwarePolicy.Configuration()

    @Test("The worker holding most of the prompt wins on cache")
    func cacheWins() {
        let views = [View(matched: 2, load: 1, score: 900, held: 100), View(matched: 60, load: 1, score: 100, held: 100), View(matched: 0, load: 1, score: 50, held: 100)]
        let decision = BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: configuration)
        #expect(decision.winner == 1)
        #expect(decision.rule == .cache)
    }

    @Test("Below the threshold, the rendezvous home wins (affinity)")
    func affinity() {
        let views = [View(matched: 10, load: 0, score: 100, held: 100), View(matched: 0, load: 0, score: 900, held: 100)]
        let decision = BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: configuration)
        #expect(decision.winner == 1)
        #expect(decision.rule == .affinity)
    }

    @Test("A holder at the load bound loses to the next holder, then to the home; the rule says load")
    func loadBound() {
        // 12 in flight over 3: the bound is ceil(1.25 × 13 / 3) = 6.
        let views = [View(matched: 64, load: 8, score: 900, held: 100), View(matched: 40, load: 2, score: 100, held: 100), View(matched: 0, load: 2, score: 500, held: 100)]
        let decision = BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: configuration)
        #expect(decision.capacity == 6)
        #expect(decision.winner == 1)
        #expect(decision.rule == .load)
        var noSecondHolder = views
        noSecondHolder[1].matched = 0
        let spilled = BlockCacheAwarePolicy.decide(noSecondHolder, blocks: 64, configuration: configuration)
        #expect(spilled.winner == 2, "the home among those within the bound")
        #expect(spilled.rule == .load)
    }

    @Test("Ties between holders go by rendezvous score, not by order")
    func tieByScore() {
        let views = [View(matched: 64, load: 0, score: 100, held: 100), View(matched: 64, load: 1, score: 700, held: 100)]
        #expect(BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: configuration).winner == 1)
        #expect(BlockCacheAwarePolicy.decide(views.reversed(), blocks: 64, configuration: configuration).winner == 0)
    }

    @Test("A new worker that is the home takes its share at once (warmup)")
    func warmup() {
        let views = [View(matched: 64, load: 0, score: 100, held: 1000), View(matched: 0, load: 0, score: 900, held: 10), View(matched: 0, load: 0, score: 50, held: 1000)]
        let small = BlockCacheAwarePolicy.Configuration(blocksPerWorker: 1024)
        let decision = BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: small)
        #expect(decision.winner == 1)
        #expect(decision.rule == .warmup)
        var warmed = views
        warmed[1].held = 800
        #expect(BlockCacheAwarePolicy.decide(warmed, blocks: 64, configuration: small).rule == .cache)
        // A cold fleet (caches far from full): no warm-up, the holder wins.
        #expect(BlockCacheAwarePolicy.decide(views, blocks: 64, configuration: configuration).rule == .cache)
    }

    @Test("Replicas sharing nothing pick the same worker for the same prefix")
    func replicasAgree() throws {
        let urls = (0..<4).map { "http://10.0.0.\($0 + 1):8000" }
        func fleet() throws -> [RouteCandidate] {
            try urls.map { url in
                RouteCandidate(handle: WorkerHandle(id: .random()), url: try WorkerURL(url), modelID: "m", priority: 50, cost: 1, runtime: .sglang, apiKey: nil, maxLoad: nil)
            }
        }
        let a = try fleet()
        let b = try fleet()
        let policyA = BlockCacheAwarePolicy()
        let policyB = BlockCacheAwarePolicy()
        var spread = Set<String>()
        for group in 0..<24 {
            for question in 0..<3 {
                let prompt = RoutingRequest(text: text(words("g\(group)w", 256) + " " + words("q\(question)w", 20)))
                let pickA = policyA.select(a, all: a, model: "m", request: prompt, snapshot: snapshot(a)).url.description
                let pickB = policyB.select(b, all: b, model: "m", request: prompt, snapshot: snapshot(b)).url.description
                #expect(pickA == pickB)
                spread.insert(pickA)
            }
        }
        #expect(spread.count == 4, "24 groups spread over the fleet")
    }

    @Test("Policy: a prefix seen on a worker goes back to it; the explanation says why")
    func endToEndPick() throws {
        let list = try candidates(3)
        let policy = BlockCacheAwarePolicy()
        let system = words("sys", 320)
        let first = policy.select(list, all: list, model: "m", request: RoutingRequest(text: text(system + " " + words("a", 20))), snapshot: snapshot(list))
        let box = RouteExplanationBox()
        let second = policy.select(list, all: list, model: "m", request: RoutingRequest(text: text(system + " " + words("b", 20)), explanation: box), snapshot: snapshot(list))
        #expect(second.id == first.id)
        let explanation = try #require(box.explanation)
        #expect(explanation.rule == "cache")
        #expect(explanation.blocks == 21)
        #expect(explanation.candidates.map(\.matched).sorted() == [0, 0, 20])
        #expect(explanation.headerValue.hasPrefix("rule=cache; worker=\(first.url.description); blocks=21"))
        let stats = policy.statistics
        #expect(stats.decisions[.cache] == 1)
        #expect(stats.decisions[.affinity] == 1)
        #expect(stats.matchedBlocks == 20 && stats.promptBlocks == 42)
    }

    @Test("Memory is bounded per worker; leaving workers are forgotten")
    func bounded() throws {
        let list = try candidates(1)
        let policy = BlockCacheAwarePolicy(configuration: .init(blocksPerWorker: 50))
        for i in 0..<20 {
            _ = policy.select(list, all: list, model: "m", request: RoutingRequest(text: text(words("p\(i)w", 160) + " ")), snapshot: snapshot(list))
        }
        #expect(policy.heldBlocks(model: "m", worker: list[0].id) == 50)
        policy.maintain(liveWorkers: [])
        #expect(policy.heldBlocks(model: "m", worker: list[0].id) == 0)
    }

    @Test("No text: the least loaded")
    func noText() throws {
        let list = try candidates(2)
        list[0].handle.beginRequest()
        let policy = BlockCacheAwarePolicy()
        #expect(policy.select(list, all: list, model: "m", request: .init(), snapshot: snapshot(list)).id == list[1].id)
    }
}
