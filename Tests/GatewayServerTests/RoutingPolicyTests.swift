import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Each load-balancing policy's distribution, observed through real sim workers
/// (which one answered: its `X-Sim-Worker` header).
@Suite("Routing policies through the gateway")
struct RoutingPolicyTests {
    @Test("round_robin: 3 workers, 30 requests, exactly 10 each, in rotation")
    func roundRobinExact() async throws {
        try await withSimWorkers(3) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let (counts, sequence) = try await gw.distribution(count: 30)
                let names = Set(workers.map(\.name))
                #expect(Set(counts.keys) == names)
                #expect(counts.values.allSatisfy { $0 == 10 }, "\(counts)")
                // A rotation: the first three are the three workers, then the same order again.
                #expect(Set(sequence.prefix(3)).count == 3)
                for (index, name) in sequence.enumerated() {
                    #expect(name == sequence[index % 3], "request \(index) went to \(name): \(sequence)")
                }
                // The workers agree: each saw exactly 10.
                for worker in workers {
                    #expect(worker.requestCount(path: "/v1/completions") == 10)
                }
            }
        }
    }

    @Test("random: roughly uniform over 3 workers, and not a rotation")
    func randomUniform() async throws {
        try await withSimWorkers(3) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .random }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let (counts, sequence) = try await gw.distribution(count: 300)
                #expect(Set(counts.keys) == Set(workers.map(\.name)))
                // Expected 100 each, σ ≈ 8.2: ±45 is more than 5σ.
                for (name, count) in counts {
                    #expect((55...145).contains(count), "\(name): \(count) of 300 (\(counts))")
                }
                let periodic = sequence.indices.allSatisfy { sequence[$0] == sequence[$0 % 3] }
                #expect(!periodic, "random routing produced an exact rotation")
            }
        }
    }

    @Test("power_of_two: with long streams held on one worker, new requests go to the other")
    func powerOfTwoPrefersLessLoaded() async throws {
        try await withSimWorkers(2, { _, c in
            // Long streams (40 chunks 500 ms apart, ~20 s) that a cancel ends within about a second.
            c.chunkCount = 40
            c.chunkInterval = .milliseconds(500)
        }) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .powerOfTwo }) { gw in
                // Worker 0 alone first: it takes the long streams.
                let busy = try await gw.addHealthyWorkers([urls[0]])[0]
                var held: [OpenStream] = []
                for _ in 0..<4 {
                    let stream = try await gw.openStream(#"{"prompt": "long", "stream": true, "max_tokens": 40}"#)
                    #expect(stream.status == 200)
                    #expect(stream.simWorker == workers[0].name)
                    held.append(stream)
                }
                try await eventually("4 streams in flight on worker 0") { workers[0].inFlight == 4 }
                #expect(try await gw.load(of: busy) == 4)

                let idle = try await gw.addWorker(url: urls[1])
                try await gw.waitUntilHealthy(idle)
                let (counts, _) = try await gw.distribution(count: 20)
                #expect(counts == [workers[1].name: 20], "\(counts)")
                #expect(workers[0].requestCount(path: "/v1/completions") == 4)

                for stream in held { await stream.cancel() }
                try await eventually("loads back to 0") {
                    try await gw.load(of: busy) == 0
                }
                // Balanced again: both workers take traffic.
                let (after, _) = try await gw.distribution(count: 20)
                #expect(after.count == 2, "\(after)")
            }
        }
    }

    @Test("consistent_hash: the same X-SMG-Routing-Key (or body user) always reaches the same worker")
    func consistentHashSticky() async throws {
        try await withSimWorkers(3) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .consistentHash }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let keys = (0..<40).map { "user-\($0)" }
                var owner: [String: String] = [:]
                for key in keys {
                    let response = try await gw.complete(headers: [("X-SMG-Routing-Key", key)])
                    #expect(response.status == 200)
                    owner[key] = response.simWorker
                }
                // Keys spread over the fleet (the test is not vacuous).
                #expect(Set(owner.values).count == 3, "\(Dictionary(grouping: keys) { owner[$0]! }.mapValues(\.count))")
                for round in 0..<3 {
                    for key in keys {
                        let response = try await gw.complete(headers: [("X-SMG-Routing-Key", key)])
                        #expect(response.simWorker == owner[key], "round \(round): \(key)")
                    }
                }
                // The body's "user" hashes like the header.
                for key in keys {
                    let response = try await gw.complete(fields: #""user": "\#(key)""#)
                    #expect(response.simWorker == owner[key], "user \(key)")
                }
                // The header wins over the body.
                let a = try #require(keys.first)
                let b = try #require(keys.first { owner[$0] != owner[a] })
                for _ in 0..<5 {
                    let response = try await gw.complete(fields: #""user": "\#(b)""#, headers: [("X-SMG-Routing-Key", a)])
                    #expect(response.simWorker == owner[a])
                }
                let received: Int = workers.map { $0.requestCount(path: "/v1/completions") }.reduce(0, +)
                #expect(received == 205, "every request reached exactly one worker")
            }
        }
    }

    @Test("consistent_hash: removing a worker moves only its keys; re-adding its URL brings them back")
    func consistentHashMinimalMovement() async throws {
        try await withSimWorkers(3) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .consistentHash }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                let keys = (0..<60).map { "session-\($0)" }
                func owners() async throws -> [String: String] {
                    var result: [String: String] = [:]
                    for key in keys {
                        let response = try await gw.complete(headers: [("X-SMG-Routing-Key", key)])
                        #expect(response.status == 200, "\(key): \(response.text)")
                        result[key] = response.simWorker ?? "<none>"
                    }
                    return result
                }
                let before = try await owners()
                let removedName = workers[1].name
                let moved = keys.filter { before[$0] == removedName }
                #expect(!moved.isEmpty, "no key was on worker 1; the test would prove nothing")
                #expect(moved.count < keys.count)

                #expect(try await gw.delete("/workers/\(ids[1])").status == 202)
                let during = try await owners()
                for key in keys {
                    if before[key] == removedName {
                        #expect(during[key] != removedName, "\(key) still reached the removed worker")
                    } else {
                        #expect(during[key] == before[key], "\(key) moved from \(before[key]!) to \(during[key]!) though its worker stayed")
                    }
                }

                // Same URL again: a new id, the same ring positions.
                let again = try await gw.addWorker(url: urls[1])
                #expect(again != ids[1])
                try await gw.waitUntilHealthy(again)
                try await eventually("3 routable workers") { gw.gateway.registry.routableWorkers().count == 3 }
                let after = try await owners()
                #expect(after == before, "keys that changed: \(keys.filter { after[$0] != before[$0] })")
            }
        }
    }

    @Test("cache_aware (the default policy): a repeated long prefix sticks to one worker; different prompts spread")
    func cacheAwareAffinity() async throws {
        try await withSimWorkers(3) { workers, urls in
            // No policy set: the default, as `--policy` left out.
            try await TestGateway.with { gw in
                #expect(try await gw.get("/get_server_info").json["policy"] == .string("cache_aware"))
                _ = try await gw.addHealthyWorkers(urls)
                let prefix = String(repeating: "You are a careful assistant that answers in French. ", count: 12)
                var served = Set<String>()
                for index in 0..<15 {
                    let response = try await gw.complete(prompt: prefix + "Question \(index): what is \(index) squared?")
                    #expect(response.status == 200)
                    served.insert(response.simWorker ?? "<none>")
                }
                #expect(served.count == 1, "the shared prefix went to \(served)")

                // Unrelated prompts go where the least is cached: the other workers.
                var others: [String] = []
                for topic in ["Zebras live in Africa and eat grass all day long.", "Quantum chromodynamics describes the strong force between quarks."] {
                    let response = try await gw.complete(prompt: topic)
                    others.append(response.simWorker ?? "<none>")
                }
                let all = served.union(others)
                #expect(all == Set(workers.map(\.name)), "prompts reached \(all)")
                // And each stays where it went.
                for (topic, worker) in zip(["Zebras live in Africa and eat grass all day long. Why?", "Quantum chromodynamics describes the strong force between quarks. Explain."], others) {
                    #expect(try await gw.complete(prompt: topic).simWorker == worker)
                }
            }
        }
    }

    @Test("cache_aware: when the prefix owner's load passes the thresholds, the prefix goes to another worker")
    func cacheAwareRebalances() async throws {
        try await withSimWorkers(2, { _, c in
            // Long streams (40 chunks 500 ms apart, ~20 s) that a cancel ends within about a second.
            c.chunkCount = 40
            c.chunkInterval = .milliseconds(500)
        }) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .cacheAware
                $0.routing.cacheAware = .init(cacheThreshold: 0.3, balanceAbsThreshold: 1, balanceRelThreshold: 1.5)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                let prefix = String(repeating: "Summarise the following legal contract clause by clause. ", count: 10)
                let first = try await gw.complete(prompt: prefix + "Clause 0.")
                let owner = try #require(first.simWorker)
                let other = try #require(workers.map(\.name).first { $0 != owner })
                let ownerIndex = try #require(workers.firstIndex { $0.name == owner })
                // Balanced: the prefix stays with its owner.
                for index in 1..<4 {
                    #expect(try await gw.complete(prompt: prefix + "Clause \(index).").simWorker == owner)
                }
                // Two long streams on the owner: loads 2 vs 0 pass abs 1 and rel 1.5.
                var held: [OpenStream] = []
                for index in 0..<2 {
                    let stream = try await gw.openStream(
                        #"{"prompt": \#(JSONValue.string(prefix + "Stream \(index).").jsonString), "stream": true, "max_tokens": 40}"#
                    )
                    #expect(stream.simWorker == owner, "stream \(index) went to \(stream.simWorker ?? "?"), not the prefix owner")
                    held.append(stream)
                }
                try await eventually("2 streams in flight on the owner") { try await gw.load(of: ids[ownerIndex]) == 2 }
                for index in 0..<3 {
                    let response = try await gw.complete(prompt: prefix + "Clause \(10 + index).")
                    #expect(response.status == 200)
                    #expect(response.simWorker == other, "imbalanced load: the prefix should go to \(other), went to \(response.simWorker ?? "?")")
                }
                for stream in held { await stream.cancel() }
            }
        }
    }
}
