import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Priority tiers, saturation, cost weighting and the load the gateway reports.
@Suite("Routing priority, cost and load")
struct RoutingPriorityTests {
    /// Fast active health checks: one failed probe makes a worker unhealthy, one good probe healthy.
    static func fastHealth(_ config: inout GatewayConfiguration) {
        config.healthCheck = HealthCheckConfig(timeout: .seconds(1), interval: .milliseconds(100), failureThreshold: 1, successThreshold: 1)
    }

    @Test("A higher-priority worker takes all traffic while healthy; the lower one while it is unhealthy or down")
    func priorityFailover() async throws {
        try await withSimWorkers(3) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                Self.fastHealth(&$0)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls) { index in [#""priority": 100"#, #""priority": 10"#, #""priority": 50"#][index] }
                let (counts, _) = try await gw.distribution(count: 20)
                #expect(counts == [workers[0].name: 20], "\(counts)")

                // Top worker unhealthy: the next tier (50) takes everything, not the lowest.
                workers[0].setHealthy(false)
                try await eventually("worker 0 unhealthy") { try await gw.worker(ids[0])["is_healthy"] == .bool(false) }
                let (failover, _) = try await gw.distribution(count: 20)
                #expect(failover == [workers[2].name: 20], "\(failover)")

                // Healthy again: back to the top.
                workers[0].setHealthy(true)
                try await gw.waitUntilHealthy(ids[0])
                try await eventually("worker 0 routable") { gw.gateway.registry.routableWorkers().count == 3 }
                let (back, _) = try await gw.distribution(count: 20)
                #expect(back == [workers[0].name: 20], "\(back)")

                // Priority-50 worker shut down as well as priority 100 unhealthy: the lowest tier answers.
                workers[0].setHealthy(false)
                try await workers[2].shutdown()
                try await eventually("workers 0 and 2 out of routing") {
                    gw.gateway.registry.routableWorkers().map(\.id.description) == [ids[1]]
                }
                let (last, _) = try await gw.distribution(count: 10)
                #expect(last == [workers[1].name: 10], "\(last)")
            }
        }
    }

    @Test("A saturated higher-priority worker (max_load reached by held streams) overflows to the lower one")
    func prioritySaturation() async throws {
        try await withSimWorkers(2, { _, c in
            // Long streams (40 chunks 500 ms apart, ~20 s) that a cancel ends within about a second.
            c.chunkCount = 40
            c.chunkInterval = .milliseconds(500)
        }) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                let ids = try await gw.addHealthyWorkers(urls) { index in [#""priority": 100, "max_load": 2"#, #""priority": 10"#][index] }
                #expect(try await gw.worker(ids[0])["max_load"] == .int(2))
                let (idle, _) = try await gw.distribution(count: 10)
                #expect(idle == [workers[0].name: 10], "\(idle)")

                var held: [OpenStream] = []
                for _ in 0..<2 {
                    let stream = try await gw.openStream(#"{"prompt": "hold", "stream": true, "max_tokens": 40}"#)
                    #expect(stream.simWorker == workers[0].name)
                    held.append(stream)
                }
                #expect(try await gw.load(of: ids[0]) == 2)
                let (saturated, _) = try await gw.distribution(count: 10)
                #expect(saturated == [workers[1].name: 10], "\(saturated)")

                // One stream gone: below max_load, the top worker takes traffic again.
                await held[0].cancel()
                try await eventually("worker 0 below max_load") { try await gw.load(of: ids[0]) == 1 }
                let (relieved, _) = try await gw.distribution(count: 10)
                #expect(relieved == [workers[0].name: 10], "\(relieved)")
                await held[1].cancel()
            }
        }
    }

    @Test("Among equal priority, cost weights the choice: cost 1 vs 3 is about 3:1")
    func costWeighting() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .random }) { gw in
                _ = try await gw.addHealthyWorkers(urls) { index in [#""cost": 1"#, #""cost": 3"#][index] }
                let (counts, _) = try await gw.distribution(count: 400, parallel: 8)
                let cheap = counts[workers[0].name] ?? 0
                let dear = counts[workers[1].name] ?? 0
                #expect(cheap + dear == 400)
                // Expected 300 : 100 (σ ≈ 8.7); 1:1 would be 200 : 200.
                #expect((255...345).contains(cheap), "cost 1 got \(cheap), cost 3 got \(dear)")
                print("cost 1 vs 3 over 400 requests: \(cheap) : \(dear)")
            }
        }
    }

    @Test("Load counts a request until its last byte: 1 during a slow stream, 0 after it ends")
    func loadUntilLastByte() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 4
            c.chunkInterval = .milliseconds(700)
        }) { workers, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                #expect(try await gw.load(of: id) == 0)
                #expect(try await gw.reportedLoad(of: id) == 0)

                let stream = try await gw.openStream(#"{"prompt": "slow", "stream": true, "max_tokens": 40}"#)
                try await stream.waitForChunks(1)
                #expect(!stream.hasEnded)
                #expect(try await gw.load(of: id) == 1)
                #expect(try await gw.reportedLoad(of: id) == 1)
                #expect(workers[0].inFlight == 1)

                let recording = try await stream.finish()
                #expect(recording.events.last == "[DONE]")
                try await eventually("load back to 0", timeout: .seconds(2)) {
                    try await gw.load(of: id) == 0
                }
                #expect(try await gw.reportedLoad(of: id) == 0)
            }
        }
    }
}
