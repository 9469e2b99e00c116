import Foundation
import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Retries, the circuit breaker and passive health: a failing worker costs the
/// client as little as possible.
@Suite("Routing resilience")
struct RoutingResilienceTests {
    /// Active checks too slow to interfere: only requests change a worker's state.
    static func slowHealth(_ config: inout GatewayConfiguration) {
        config.healthCheck = HealthCheckConfig(timeout: .seconds(2), interval: .seconds(60), failureThreshold: 3, successThreshold: 2)
    }

    @Test("A worker shut down costs the client no failed request")
    func killedWorkerNoFailures() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                Self.slowHealth(&$0)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                try await workers[0].shutdown()
                let (counts, _) = try await gw.distribution(count: 20)
                #expect(counts == [workers[1].name: 20], "\(counts)")
                // Not vacuous: requests did meet the dead worker (which passive health then marked).
                #expect(try await gw.worker(ids[0])["is_healthy"] == .bool(false))
            }
        }
    }

    @Test("A worker answering 500 is retried on the other")
    func fiveHundredRetried() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                Self.slowHealth(&$0)
            }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                workers[0].setFailureRate(1)
                let (counts, _) = try await gw.distribution(count: 10)
                #expect(counts == [workers[1].name: 10], "\(counts)")
                // Not vacuous: the failing worker was tried (and answered 500).
                #expect(workers[0].requestCount(path: "/v1/completions") >= 1)
            }
        }
    }

    @Test("With retries disabled, a worker's 500 reaches the client as the worker gave it")
    func retriesDisabled() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                $0.retry.isEnabled = false
                Self.slowHealth(&$0)
            }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                workers[0].setFailureRate(1)
                var statuses: [Int] = []
                for _ in 0..<10 {
                    let response = try await gw.complete()
                    statuses.append(response.status)
                    if response.status == 500 {
                        #expect(response.simWorker == workers[0].name)
                        #expect(response.openAIError?["message"] == .string("Simulated failure"))
                    } else {
                        #expect(response.status == 200)
                        #expect(response.simWorker == workers[1].name)
                    }
                }
                #expect(statuses.filter { $0 == 500 }.count == 5, "\(statuses)")
                // No retry on the other worker behind the client's back. (Worker 0 may count one more:
                // the HTTP client re-sends a request that met a connection the worker had just closed.)
                #expect(workers[1].requestCount(path: "/v1/completions") == 5)
                #expect((5...6).contains(workers[0].requestCount(path: "/v1/completions")))
            }
        }
    }

    static func breaker(_ config: inout GatewayConfiguration) {
        config.routing.policy = .roundRobin
        // Long enough that a loaded machine cannot end the open period during the checks made while open.
        config.circuitBreaker = .init(failureThreshold: 3, successThreshold: 2, openDuration: .seconds(6))
        slowHealth(&config)
    }

    @Test("Circuit breaker: opens on 5xx, traffic avoids the worker, half-opens after the open duration, closes after successes")
    func breakerCycle() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with(Self.breaker) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                #expect(try await gw.breakerState(of: ids[0]) == "closed")
                workers[0].setFailureRate(1)
                // Each request fails on worker 0 at most once, then succeeds on worker 1.
                var sent = 0
                while workers[0].requestCount(path: "/v1/completions") < 3 && sent < 20 {
                    let response = try await gw.complete()
                    #expect(response.status == 200)
                    #expect(response.simWorker == workers[1].name)
                    sent += 1
                }
                #expect(workers[0].requestCount(path: "/v1/completions") == 3)
                #expect(try await gw.breakerState(of: ids[0]) == "open")
                #expect(try await gw.breakerState(of: ids[1]) == "closed")

                // While open, worker 0 gets nothing, even though it is healthy.
                workers[0].setFailureRate(0)
                let (whileOpen, _) = try await gw.distribution(count: 10)
                #expect(whileOpen == [workers[1].name: 10], "\(whileOpen)")
                #expect(workers[0].requestCount(path: "/v1/completions") == 3)
                #expect(try await gw.breakerState(of: ids[0]) == "open", "the open period ended during the check; it proves nothing")
                // Its checks pass, but it takes no traffic: WorkerInfo does not call it healthy.
                #expect(try await gw.worker(ids[0])["is_healthy"] == .bool(false))

                // After the open duration: half-open, trial requests flow, 2 successes close it.
                try await eventually("half-open", timeout: .seconds(15)) { try await gw.breakerState(of: ids[0]) == "half_open" }
                let (trials, _) = try await gw.distribution(count: 8)
                #expect((trials[workers[0].name] ?? 0) >= 2, "\(trials)")
                #expect(try await gw.breakerState(of: ids[0]) == "closed")
            }
        }
    }

    @Test("Circuit breaker: a worker that crashed under load takes traffic after its next passing health check, not after the open time")
    func passingCheckHalfOpensTheBreaker() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                // Only a health check can end this open period within the test.
                $0.circuitBreaker = .init(failureThreshold: 3, successThreshold: 2, openDuration: .seconds(600))
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                // The crash: inference fails and so does /health.
                workers[0].setHealthy(false)
                workers[0].setFailureRate(1)
                for _ in 0..<8 where workers[0].requestCount(path: "/v1/completions") < 3 {
                    #expect(try await gw.complete().status == 200)
                }
                #expect(try await gw.breakerState(of: ids[0]) == "open")
                #expect(try await gw.worker(ids[0])["is_healthy"] == .bool(false))
                // Back: the next passing check half-opens the breaker (checks run every second here).
                workers[0].setFailureRate(0)
                workers[0].setHealthy(true)
                try await eventually("half-open after a passing check", timeout: .seconds(15)) {
                    try await gw.breakerState(of: ids[0]) == "half_open"
                }
                try await eventually("healthy again", timeout: .seconds(15)) { try await gw.worker(ids[0])["is_healthy"] == .bool(true) }
                let (trials, _) = try await gw.distribution(count: 8)
                #expect((trials[workers[0].name] ?? 0) >= 2, "\(trials)")
                #expect(try await gw.breakerState(of: ids[0]) == "closed")
            }
        }
    }

    @Test("Circuit breaker: a failure while half-open opens it again")
    func breakerReopens() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with(Self.breaker) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                workers[0].setFailureRate(1)
                for _ in 0..<8 where workers[0].requestCount(path: "/v1/completions") < 3 {
                    #expect(try await gw.complete().status == 200)
                }
                #expect(try await gw.breakerState(of: ids[0]) == "open")
                try await eventually("half-open", timeout: .seconds(15)) { try await gw.breakerState(of: ids[0]) == "half_open" }
                let before = workers[0].requestCount(path: "/v1/completions")
                for _ in 0..<2 { #expect(try await gw.complete().status == 200) }
                #expect(workers[0].requestCount(path: "/v1/completions") == before + 1, "one trial request")
                #expect(try await gw.breakerState(of: ids[0]) == "open")
            }
        }
    }

    @Test("Circuit breaker: 4xx answers do not open it; the 400 reaches the client unchanged")
    func breakerIgnores4xx() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with(Self.breaker) { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                let body = #"{"prompt": "hello", "max_tokens": -1}"#
                // What the worker itself answers.
                let direct = try await gw.send(.POST, to: urls[0] + "/v1/completions", body: body)
                #expect(direct.status == 400)
                #expect(direct.openAIError?["message"]?.stringValue?.contains("max_tokens") == true)
                let directBody = direct.body

                for attempt in 0..<12 {
                    let response = try await gw.request(.POST, "/v1/completions", body: body)
                    #expect(response.status == 400, "attempt \(attempt): \(response.status)")
                    #expect(response.body == directBody, "\(response.text) vs \(String(decoding: directBody, as: UTF8.self))")
                    #expect(response.simWorker == workers[0].name)
                }
                // 12 + 1 requests reached the worker: none retried, none refused by an open breaker.
                #expect(workers[0].requestCount(path: "/v1/completions") == 13)
                #expect(try await gw.breakerState(of: id) == "closed")
                #expect(try await gw.complete().status == 200)
            }
        }
    }

    @Test("Passive health: the first request meeting a refused connection marks the worker unhealthy, and still succeeds")
    func passiveHealth() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                Self.slowHealth(&$0)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                try await workers[0].shutdown()
                // Let the client's pool see the closed keep-alive connections (a reused, dead
                // connection is a transport error, not a refusal).
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await gw.worker(ids[0])["is_healthy"] == .bool(true), "the active check must not have run")

                var markedAfter: Int?
                for index in 1...2 {
                    let response = try await gw.complete()
                    #expect(response.status == 200)
                    #expect(response.simWorker == workers[1].name)
                    if try await gw.worker(ids[0])["is_healthy"] == .bool(false) {
                        markedAfter = index
                        break
                    }
                }
                // Round robin over two workers tries worker 0 within two requests.
                #expect(markedAfter != nil, "worker 0 is still healthy after two requests")
                #expect(gw.gateway.registry.routableWorkers().map(\.id.description) == [ids[1]])
                let (counts, _) = try await gw.distribution(count: 6)
                #expect(counts == [workers[1].name: 6])
            }
        }
    }

    /// Fails today: a refused connection marks the worker unhealthy (InferenceProxy.noteFailure →
    /// WorkerRegistry.recordConnectionRefused) even when its health checks are disabled, and
    /// nothing ever marks it healthy again.
    @Test("Passive health does not take a worker without health checks out of routing for good")
    func passiveHealthWithoutChecks() async throws {
        let port = try await closedPort()
        try await TestGateway.with { gw in
            // Registered without probing: healthy at once, never checked.
            let id = try await gw.addWorker(
                url: "http://127.0.0.1:\(port)", extra: #""model_id": "sim-model", "runtime": "sglang", "disable_health_check": true"#
            )
            try await gw.waitUntilHealthy(id)
            // Nothing listens yet: the request fails upstream.
            let refused = try await gw.complete()
            #expect(refused.status == 502, "\(refused.text)")

            // The worker comes up. Nothing will ever probe it, so routing must still use it.
            let worker = SimWorker(configuration: .init(name: "late", port: port))
            _ = try await worker.start()
            defer { Task { try? await worker.shutdown() } }
            let response = try await gw.complete()
            #expect(response.status == 200, "\(response.status) \(response.text)")
            #expect(response.simWorker == "late")
            #expect(try await gw.worker(id)["is_healthy"] == .bool(true))
            try await worker.shutdown()
        }
    }
}
