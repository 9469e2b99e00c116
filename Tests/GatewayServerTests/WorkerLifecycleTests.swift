import GatewayCore
import GatewayJSON
import SimWorker
import NIOHTTP1
import Testing

@testable import GatewayServer

@Suite("Worker reads, updates and health")
struct WorkerLifecycleTests {
    @Test("Any spelling of an id finds the worker; it prints lowercase")
    func idSpellings() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(url: urls[0])
                for spelling in [id.uppercased(), "{\(id)}", "urn:uuid:\(id)", "%7B\(id)%7D"] {
                    let response = try await gw.get("/workers/\(spelling)")
                    #expect(response.status == 200, "\(spelling)")
                    #expect(response.json["id"] == .string(id))
                }
                #expect(id == id.lowercased())
            }
        }
    }

    @Test("PUT is visible to the next GET; labels merge; the API key is never shown")
    func updates() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(url: urls[0], extra: #""labels": {"zone": "a", "tier": "gold"}"#)
                try await gw.waitUntilHealthy(id)
                let response = try await gw.put(
                    "/workers/\(id)",
                    #"{"priority": 90, "cost": 0.5, "labels": {"zone": "b", "tier": null, "new": "x"}, "api_key": "sk-secret", "health_check_interval_secs": 7, "health_failure_threshold": 5}"#
                )
                #expect(response.status == 202)
                #expect(response.json["status"] == .string("accepted"))
                #expect(response.json["worker_id"] == .string(id))
                let worker = try await gw.worker(id)
                #expect(worker["priority"] == .int(90))
                #expect(worker["cost"] == .double(0.5))
                #expect(worker["labels"] == .object(["zone": .string("b"), "new": .string("x")]))
                #expect(worker["has_api_key"] == .bool(true))
                #expect(worker["health_check"]?["interval_secs"] == .int(7))
                #expect(worker["health_check"]?["failure_threshold"] == .int(5))
                let everything = try await gw.get("/workers").text + (try await gw.get("/workers/\(id)").text)
                #expect(!everything.contains("sk-secret"))

                #expect(try await gw.put("/workers/\(id)", #"{"api_key": null}"#).status == 202)
                #expect(try await gw.worker(id)["has_api_key"] == .bool(false))
            }
        }
    }

    @Test("GET /workers keeps registration order across removals")
    func stableOrder() async throws {
        try await withSimWorkers(4) { _, urls in
            try await TestGateway.with { gw in
                var ids: [String] = []
                for url in urls { ids.append(try await gw.addWorker(url: url)) }
                #expect(try await gw.delete("/workers/\(ids[1])").status == 202)
                for _ in 0..<3 {
                    let listed = try await gw.get("/workers").json["workers"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
                    #expect(listed == [ids[0], ids[2], ids[3]])
                }
            }
        }
    }

    @Test("Active health checks: unhealthy after the failure threshold, healthy again after the success threshold")
    func activeHealthChecks() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({
                $0.healthCheck.interval = .milliseconds(100)
                $0.healthCheck.failureThreshold = 2
                $0.healthCheck.successThreshold = 2
            }) { gw in
                let id = try await gw.addWorker(url: urls[0])
                try await gw.waitUntilHealthy(id)
                #expect(try await gw.get("/readiness").status == 200)

                workers[0].setHealthy(false)
                try await eventually("the worker is marked unhealthy") {
                    try await gw.worker(id)["is_healthy"] == .bool(false)
                }
                #expect(try await gw.get("/readiness").status == 503)
                #expect(gw.gateway.registry.routableWorkers().isEmpty)

                workers[0].setHealthy(true)
                try await gw.waitUntilHealthy(id)
                #expect(try await gw.get("/readiness").status == 200)
            }
        }
    }

    @Test("A worker that stops listening is unhealthy at its next check, not after the threshold")
    func refusedIsImmediate() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({
                $0.healthCheck.interval = .milliseconds(100)
                $0.healthCheck.failureThreshold = 1000
            }) { gw in
                let id = try await gw.addWorker(url: urls[0])
                try await gw.waitUntilHealthy(id)
                try await workers[0].shutdown()
                try await eventually("the dead worker leaves routing", timeout: .seconds(3)) {
                    gw.gateway.registry.routableWorkers().isEmpty
                }
            }
        }
    }

    @Test("A worker with health checks disabled is not probed after registration")
    func disabledHealthChecks() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({ $0.healthCheck.interval = .milliseconds(50) }) { gw in
                let id = try await gw.addWorker(url: urls[0], extra: #""disable_health_check": true"#)
                try await gw.waitUntilHealthy(id)
                #expect(try await gw.worker(id)["disable_health_check"] == .bool(true))
                workers[0].setHealthy(false)
                let before = workers[0].requestCount(path: "/health")
                try await Task.sleep(for: .milliseconds(400))
                #expect(workers[0].requestCount(path: "/health") == before)
                #expect(try await gw.worker(id)["is_healthy"] == .bool(true))
            }
        }
    }

    @Test("Probes: /health, /liveness and HEAD answer; readiness explains itself")
    func probes() async throws {
        try await TestGateway.with { gw in
            for path in ["/health", "/liveness"] {
                let response = try await gw.get(path)
                #expect(response.status == 200)
                #expect(response.json["status"] == .string("ok"))
            }
            let head = try await gw.request(.HEAD, "/health")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            let readiness = try await gw.get("/readiness")
            #expect(readiness.status == 503)
            #expect(readiness.json["status"] == .string("not ready"))
            #expect(readiness.json["reason"] == .string("no workers registered"))
        }
    }
}
