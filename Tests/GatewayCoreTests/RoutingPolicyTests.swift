import Testing

@testable import GatewayCore

/// Candidates with fixed settings and fresh handles.
func candidates(_ count: Int, priority: (Int) -> UInt32 = { _ in 50 }, cost: (Int) -> Double = { _ in 1 }, maxLoad: Int? = nil) throws -> [RouteCandidate] {
    try (0..<count).map { i in
        RouteCandidate(
            handle: WorkerHandle(id: .random()), url: try WorkerURL("http://10.0.0.\(i + 1):8000"), modelID: "m",
            priority: priority(i), cost: cost(i), runtime: .sglang, apiKey: nil, maxLoad: maxLoad
        )
    }
}

func snapshot(_ list: [RouteCandidate], version: UInt64 = 1) -> RoutingSnapshot {
    RoutingSnapshot(version: version, candidatesByModel: ["m": list], knownModels: ["m"])
}

@Suite("Routing policies")
struct RoutingPolicyTests {
    @Test("Round robin is an exact rotation with equal costs")
    func roundRobinExact() throws {
        let list = try candidates(3)
        let policy = RoundRobinPolicy()
        let picks = (0..<30).map { _ in policy.select(list, all: list, model: "m", request: .init(), snapshot: snapshot(list)).id }
        for (index, id) in picks.enumerated() { #expect(id == list[index % 3].id) }
    }

    @Test("Weighted round robin follows 1/cost exactly over a cycle")
    func roundRobinWeighted() throws {
        let list = try candidates(2, cost: { $0 == 0 ? 1 : 3 })
        let policy = RoundRobinPolicy()
        var counts: [WorkerID: Int] = [:]
        for _ in 0..<400 { counts[policy.select(list, all: list, model: "m", request: .init(), snapshot: snapshot(list)).id, default: 0] += 1 }
        #expect(counts[list[0].id] == 300)
        #expect(counts[list[1].id] == 100)
    }

    @Test("Random spreads over every worker, weighted by cost")
    func randomWeighted() throws {
        let list = try candidates(2, cost: { $0 == 0 ? 1 : 3 })
        let policy = RandomPolicy()
        var counts: [WorkerID: Int] = [:]
        for _ in 0..<4000 { counts[policy.select(list, all: list, model: "m", request: .init(), snapshot: snapshot(list)).id, default: 0] += 1 }
        let ratio = Double(counts[list[0].id]!) / Double(counts[list[1].id]!)
        #expect(ratio > 2.3 && ratio < 3.9, "ratio \(ratio)")
    }

    @Test("Power of two never picks the more loaded of two")
    func powerOfTwo() throws {
        let list = try candidates(2)
        for _ in 0..<10 { list[0].handle.beginRequest() }
        let policy = PowerOfTwoPolicy()
        for _ in 0..<100 {
            #expect(policy.select(list, all: list, model: "m", request: .init(), snapshot: snapshot(list)).id == list[1].id)
        }
    }

    @Test("Consistent hash: same key, same worker; removing one worker moves only its keys")
    func consistentHashStability() throws {
        let list = try candidates(5)
        let policy = ConsistentHashPolicy()
        let keys = (0..<500).map { "user-\($0)" }
        let before = keys.map { policy.owner(of: $0, among: list)! }
        #expect(keys.map { policy.owner(of: $0, among: list)! } == before)
        // Every worker gets some keys.
        #expect(Set(before).count == 5)
        let removed = list[2].id
        let remaining = list.filter { $0.id != removed }
        let after = keys.map { policy.owner(of: $0, among: remaining)! }
        for (old, new) in zip(before, after) {
            if old == removed { #expect(new != removed) } else { #expect(new == old) }
        }
        // An unavailable worker is skipped without rebuilding: same answer as removal.
        let skipping = keys.map {
            policy.select(remaining, all: list, model: "m", request: .init(key: $0), snapshot: snapshot(list, version: 3)).id
        }
        #expect(skipping == after)
    }

    @Test("Cache-aware: a repeated prefix sticks to one worker; new prompts go where there is room")
    func cacheAwareSticks() throws {
        let list = try candidates(3)
        let policy = CacheAwarePolicy()
        let prefix = String(repeating: "You are a careful assistant. ", count: 20)
        let first = policy.select(list, all: list, model: "m", request: .init(text: Array((prefix + "Q1").utf8)), snapshot: snapshot(list)).id
        for i in 2..<20 {
            let pick = policy.select(list, all: list, model: "m", request: .init(text: Array((prefix + "Q\(i)").utf8)), snapshot: snapshot(list)).id
            #expect(pick == first)
        }
        // Unrelated prompts go to the workers with the least cached text.
        let other = policy.select(list, all: list, model: "m", request: .init(text: Array("completely different".utf8)), snapshot: snapshot(list)).id
        #expect(other != first)
    }

    @Test("Cache-aware rebalances to the least loaded when loads pass both thresholds")
    func cacheAwareRebalances() throws {
        let list = try candidates(2)
        let policy = CacheAwarePolicy(configuration: .init(cacheThreshold: 0.3, balanceAbsThreshold: 4, balanceRelThreshold: 1.5))
        let text = Array(String(repeating: "shared context ", count: 50).utf8)
        let owner = policy.select(list, all: list, model: "m", request: .init(text: text), snapshot: snapshot(list))
        let other = list.first { $0.id != owner.id }!
        // Below the absolute threshold: still the owner.
        for _ in 0..<4 { owner.handle.beginRequest() }
        #expect(policy.select(list, all: list, model: "m", request: .init(text: text), snapshot: snapshot(list)).id == owner.id)
        // Above both thresholds: the idle worker.
        owner.handle.beginRequest()
        #expect(policy.select(list, all: list, model: "m", request: .init(text: text), snapshot: snapshot(list)).id == other.id)
    }

    @Test("Cache-aware maintenance forgets removed workers and evicts over the size limit")
    func cacheAwareMaintenance() throws {
        let list = try candidates(2)
        let policy = CacheAwarePolicy(configuration: .init(maxTreeSize: 100))
        for i in 0..<20 {
            _ = policy.select([list[0]], all: list, model: "m", request: .init(text: Array("prompt number \(i) with padding".utf8)), snapshot: snapshot(list))
        }
        _ = policy.select([list[1]], all: list, model: "m", request: .init(text: Array("for the other".utf8)), snapshot: snapshot(list))
        #expect(policy.cachedBytes(model: "m", worker: list[0].id) > 100)
        policy.maintain(liveWorkers: [list[0].id])
        #expect(policy.cachedBytes(model: "m", worker: list[0].id) <= 100)
        #expect(policy.cachedBytes(model: "m", worker: list[1].id) == 0)
    }
}

@Suite("Worker selection")
struct WorkerSelectorTests {
    func registry(_ specs: [(String, String, UInt32, Double, Int?)]) throws -> (WorkerRegistry, [Worker]) {
        let registry = WorkerRegistry(wallClock: { 0 })
        var workers: [Worker] = []
        for (url, model, priority, cost, maxLoad) in specs {
            let spec = WorkerSpec(url: try WorkerURL(url), modelID: model, priority: priority, cost: cost, runtimeType: .sglang, maxLoad: maxLoad)
            let id = registry.reserve(spec).worker.id
            workers.append(try #require(registry.completeRegistration(id, probe: .init(modelID: model, runtimeType: .sglang))))
        }
        return (registry, workers)
    }

    @Test("Model resolution: named, only one, unknown, ambiguous")
    func models() throws {
        let (registry, workers) = try registry([("http://a:1", "m1", 50, 1, nil), ("http://b:1", "m2", 50, 1, nil)])
        let selector = WorkerSelector(registry: registry, policy: RoundRobinPolicy())
        #expect(try selector.select(model: "m2", request: .init()).get().id == workers[1].id)
        #expect(selector.select(model: "nope", request: .init()) == .failure(.modelNotFound("nope", served: ["m1", "m2"])))
        #expect(selector.select(model: nil, request: .init()) == .failure(.modelRequired(served: ["m1", "m2"])))
        _ = registry.remove(workers[1].id)
        #expect(try selector.select(model: nil, request: .init()).get().id == workers[0].id)
        _ = registry.remove(workers[0].id)
        #expect(selector.select(model: nil, request: .init()) == .failure(.noAvailableWorkers(model: nil)))
    }

    @Test("Shedding: every worker saturated is a 503 with Retry-After, not a pick of a saturated one", arguments: [PolicyName.roundRobin, .cacheAwareBlocks])
    func shedding(policy: PolicyName) throws {
        let (registry, workers) = try registry([("http://a:1", "m", 50, 1, 1), ("http://b:1", "m", 50, 1, 1)])
        let shedding = WorkerSelector(registry: registry, policy: policy.makePolicy(), shedWhenSaturated: true)
        let queueing = WorkerSelector(registry: registry, policy: policy.makePolicy())
        let request = RoutingRequest(text: Array("hello there".utf8))
        workers[0].handle.beginRequest()
        #expect(try shedding.select(model: "m", request: request).get().id == workers[1].id, "a saturated worker is vetoed")
        workers[1].handle.beginRequest()
        #expect(shedding.select(model: "m", request: request) == .failure(.overloaded(model: "m")))
        #expect(queueing.select(model: "m", request: request).map { _ in true } == .success(true))
        let error = GatewayError(SelectionFailure.overloaded(model: "m"))
        #expect(error.status == 503)
        #expect(error.retryAfter == "1")
    }

    @Test("Higher priority takes all traffic until it is unhealthy, open-circuited or saturated")
    func priorityTiers() throws {
        let (registry, workers) = try registry([("http://high:1", "m", 90, 1, 2), ("http://low:1", "m", 10, 1, nil)])
        let selector = WorkerSelector(registry: registry, policy: RandomPolicy())
        for _ in 0..<50 { #expect(try selector.select(model: "m", request: .init()).get().id == workers[0].id) }
        // Saturated (max_load 2): the lower tier takes it.
        workers[0].handle.beginRequest()
        workers[0].handle.beginRequest()
        #expect(try selector.select(model: "m", request: .init()).get().id == workers[1].id)
        workers[0].handle.endRequest()
        #expect(try selector.select(model: "m", request: .init()).get().id == workers[0].id)
        // Open circuit.
        for _ in 0..<10 { _ = workers[0].handle.recordFailure(at: .now) }
        #expect(try selector.select(model: "m", request: .init()).get().id == workers[1].id)
        // Unhealthy: gone from the snapshot.
        _ = registry.recordConnectionRefused(workers[1].id)
        #expect(selector.select(model: "m", request: .init()) == .failure(.noAvailableWorkers(model: "m")))
    }

    @Test(
        "One priority: the policy's pick is checked alone, and an unavailable pick falls back to the full check",
        arguments: [PolicyName.random, .roundRobin, .powerOfTwo, .consistentHash]
    )
    func singlePriorityPick(policy: PolicyName) throws {
        let (registry, workers) = try registry([("http://a:1", "m", 50, 1, 1), ("http://b:1", "m", 50, 1, 1), ("http://c:1", "m", 50, 1, 1)])
        let selector = WorkerSelector(registry: registry, policy: policy.makePolicy())
        #expect(selector.policy.picksIndependently)
        // b saturated, c's breaker open: only a may serve.
        workers[1].handle.beginRequest()
        for _ in 0..<10 { _ = workers[2].handle.recordFailure(at: .now) }
        for i in 0..<60 {
            #expect(try selector.select(model: "m", request: .init(key: "user-\(i)")).get().id == workers[0].id)
        }
        // All saturated: they still serve, but an open breaker never does.
        workers[0].handle.beginRequest()
        for i in 0..<60 {
            #expect(try selector.select(model: "m", request: .init(key: "user-\(i)")).get().id != workers[2].id)
        }
    }

    @Test("What policies derive from a snapshot is never reused for another, even one with the same version number")
    func derivedStatePerSnapshot() throws {
        let text = Array("system: you are helpful. user: hello".utf8)
        let cacheAware = CacheAwarePolicy()
        let hashing = ConsistentHashPolicy()
        for round in 0..<2 {
            // Other URLs each round: a ring kept from the first round would place keys elsewhere.
            let list = try candidates(3).enumerated().map { i, c in
                RouteCandidate(
                    handle: c.handle, url: try WorkerURL("http://10.\(round).0.\(i + 1):8000"), modelID: "m",
                    priority: c.priority, cost: c.cost, runtime: c.runtime, apiKey: nil, maxLoad: nil
                )
            }
            let snap = snapshot(list, version: 1)
            for i in 0..<20 {
                let cached = cacheAware.select(list, all: list, model: "m", request: .init(text: text), snapshot: snap)
                #expect(list.contains { $0.id == cached.id })
                let hashed = hashing.select(list, all: list, model: "m", request: .init(key: "user-\(i)"), snapshot: snap)
                #expect(list.contains { $0.id == hashed.id })
                let fresh = ConsistentHashPolicy().select(list, all: list, model: "m", request: .init(key: "user-\(i)"), snapshot: snap)
                #expect(hashed.id == fresh.id)
            }
        }
    }

    @Test("The routing generator spreads evenly and never repeats a value, even from several threads")
    func routingRandom() async throws {
        var generator = RoutingRandom()
        var buckets = [Int](repeating: 0, count: 64)
        for _ in 0..<64_000 { buckets[Int.random(in: 0..<64, using: &generator)] += 1 }
        // 1,000 expected per bucket; the standard deviation is about 31.
        #expect(buckets.allSatisfy { (800...1200).contains($0) }, "\(buckets)")
        let values = await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var local = RoutingRandom()
                    return (0..<10_000).map { _ in local.next() }
                }
            }
            return await group.reduce(into: [UInt64]()) { $0 += $1 }
        }
        #expect(Set(values).count == 40_000)
    }

    @Test("Tried workers are skipped; when all are saturated they still serve")
    func exclusionAndSaturation() throws {
        let (registry, workers) = try registry([("http://a:1", "m", 50, 1, 1), ("http://b:1", "m", 50, 1, 1)])
        let selector = WorkerSelector(registry: registry, policy: RoundRobinPolicy())
        #expect(try selector.select(model: "m", request: .init(), excluding: [workers[0].id]).get().id == workers[1].id)
        #expect(selector.select(model: "m", request: .init(), excluding: [workers[0].id, workers[1].id]) == .failure(.noAvailableWorkers(model: "m")))
        workers[0].handle.beginRequest()
        workers[1].handle.beginRequest()
        #expect((try? selector.select(model: "m", request: .init()).get()) != nil)
    }

    @Test("The registry's snapshot follows health, updates and removal")
    func snapshotFollowsRegistry() throws {
        let (registry, workers) = try registry([("http://a:1", "m", 50, 1, nil), ("http://b:1", "m", 50, 1, nil)])
        let v1 = registry.routingSnapshot
        #expect(v1.candidatesByModel["m"]?.count == 2)
        _ = registry.recordConnectionRefused(workers[0].id)
        let v2 = registry.routingSnapshot
        #expect(v2.version > v1.version)
        #expect(v2.candidatesByModel["m"]?.map(\.id) == [workers[1].id])
        #expect(v2.knownModels == ["m"])
        _ = registry.update(workers[1].id, WorkerUpdate(priority: 7))
        #expect(registry.routingSnapshot.candidatesByModel["m"]?.first?.priority == 7)
        _ = registry.remove(workers[1].id)
        #expect(registry.routingSnapshot.candidatesByModel["m"] == nil)
    }
}

extension Result where Success == RouteCandidate, Failure == SelectionFailure {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.success(let a), .success(let b)): a.id == b.id
        case (.failure(let a), .failure(let b)): a == b
        default: false
        }
    }
}
