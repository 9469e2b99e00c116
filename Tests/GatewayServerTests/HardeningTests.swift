import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayJSON
import NIOCore
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

@Suite("Admission control")
struct AdmissionTests {
    @Test("Over capacity: queue, then 429 when the queue is full and 408 when the wait runs out, with Retry-After")
    func queueing() async throws {
        try await withSimWorkers(1, { _, c in c.latency = .milliseconds(800) }) { _, urls in
            try await TestGateway.with({
                $0.admission = .init(maxConcurrentRequests: 1, queueSize: 1, queueTimeout: .milliseconds(300))
            }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                async let first = gw.complete()
                try await eventually("the first request holds the slot") { gw.gateway.proxyAdmission?.running == 1 }
                async let queued = gw.complete()
                try await eventually("the second waits") { gw.gateway.proxyAdmission?.queued == 1 }
                let refused = try await gw.complete()
                #expect(refused.status == 429)
                #expect(refused.json["error"]?["code"] == .string("queue_full"))
                #expect(refused.headers.first(name: "Retry-After") == "1")
                let timedOut = try await queued
                #expect(timedOut.status == 408)
                #expect(timedOut.json["error"]?["code"] == .string("queue_timeout"))
                #expect(timedOut.headers.first(name: "Retry-After") != nil)
                #expect(try await first.status == 200)
            }
        }
    }

    @Test("The slot is held until a stream's last byte")
    func slotHeldUntilLastByte() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 4
            c.chunkInterval = .milliseconds(150)
        }) { _, urls in
            try await TestGateway.with({ $0.admission = .init(maxConcurrentRequests: 4, queueSize: 10) }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let stream = try await gw.post("/v1/completions", #"{"prompt": "x", "stream": true, "max_tokens": 4}"#)
                #expect(stream.status == 200)
                #expect(stream.text.contains("[DONE]"))
                // The whole stream was read; only then is the slot back.
                try await eventually("the slot is released") { gw.gateway.proxyAdmission?.running == 0 }
                async let open = gw.post("/v1/completions", #"{"prompt": "x", "stream": true, "max_tokens": 4}"#)
                try await eventually("a running stream holds a slot") { gw.gateway.proxyAdmission?.running == 1 }
                _ = try await open
                try await eventually("and gives it back at its end") { gw.gateway.proxyAdmission?.running == 0 }
            }
        }
    }

    @Test("Without --api-key the rate limit is per client address: rotating bearer strings buys no fresh bucket")
    func rateLimitPerAddress() async throws {
        try await withSimWorkers(1) { _, urls in
            // One token every 5 s (burst 1): no refill can happen during the checks, however slow the machine.
            try await TestGateway.with({ $0.admission.rateLimitPerSecond = 0.2 }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let body = #"{"prompt": "x", "max_tokens": 1}"#
                var statuses: [Int] = []
                for bearer in ["key-a", "key-b", "key-c"] {
                    statuses.append(try await gw.request(.POST, "/v1/completions", body: body, headers: [("Authorization", "Bearer \(bearer)")]).status)
                }
                statuses.append(try await gw.post("/v1/completions", body).status)
                #expect(statuses == [200, 429, 429, 429])
                let limited = try await gw.request(.POST, "/v1/completions", body: body, headers: [("Authorization", "Bearer key-d")])
                #expect(limited.json["error"]?["code"] == .string("rate_limited"))
                #expect(limited.headers.first(name: "Retry-After") != nil)
            }
        }
    }

    @Test("With --api-key the rate limit is per authenticated key: the inference and admin keys are counted apart")
    func rateLimitPerKey() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with({
                $0.admission.rateLimitPerSecond = 0.2
                $0.auth = .init(apiKey: "user-key", adminAPIKey: "admin-key")
            }) { gw in
                let admin = [("Authorization", "Bearer admin-key")]
                let added = try await gw.request(.POST, "/workers", body: #"{"url": "\#(urls[0])"}"#, headers: admin)
                let id = try #require(added.json["worker_id"]?.stringValue)
                try await eventually("healthy") { try await gw.request(.GET, "/workers/\(id)", headers: admin).json["is_healthy"] == .bool(true) }
                let body = #"{"prompt": "x", "max_tokens": 1}"#
                func status(_ key: String) async throws -> Int {
                    try await gw.request(.POST, "/v1/completions", body: body, headers: [("Authorization", "Bearer \(key)")]).status
                }
                #expect(try await status("user-key") == 200)
                #expect(try await status("user-key") == 429)
                #expect(try await status("admin-key") == 200)
                #expect(try await status("admin-key") == 429)
                // A wrong key is refused before the limiter: 401, and it spends nobody's token.
                #expect(try await status("guess") == 401)
            }
        }
    }

    @Test("Admission controller: FIFO hand-over, full queue, timeout, cancellation")
    func controllerUnit() async throws {
        let controller = AdmissionController(configuration: .init(maxConcurrent: 1, queueSize: 2, queueTimeout: .seconds(5)))
        let first = try await controller.acquire()
        let order = OrderLog()
        let waiters = Task {
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<2 {
                    group.addTask {
                        if let permit = try? await controller.acquire() {
                            order.append(i)
                            permit.release()
                        }
                    }
                    while controller.queued <= i { try? await Task.sleep(for: .milliseconds(5)) }
                }
            }
        }
        try await eventually("two waiters queued") { controller.queued == 2 }
        await #expect(throws: AdmissionController.Refusal.queueFull) { _ = try await controller.acquire() }
        first.release()
        await waiters.value
        #expect(order.values == [0, 1])
        #expect(controller.running == 0)

        let short = AdmissionController(configuration: .init(maxConcurrent: 1, queueSize: 1, queueTimeout: .milliseconds(50)))
        let held = try await short.acquire()
        await #expect(throws: AdmissionController.Refusal.timedOut) { _ = try await short.acquire() }
        let cancelled = Task { try await short.acquire() }
        try await eventually("queued") { short.queued == 1 }
        cancelled.cancel()
        _ = await cancelled.result
        #expect(short.queued == 0)
        held.release()
        #expect(short.running == 0)
    }
}

final class OrderLog: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var items: [Int] = []
    func append(_ i: Int) { lock.withLock { items.append(i) } }
    var values: [Int] { lock.withLock { items } }
}

@Suite("Auth")
struct AuthTests {
    @Test("--api-key protects inference; --admin-api-key protects worker management; probes stay open")
    func keys() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({ $0.auth = .init(apiKey: "user-key", adminAPIKey: "admin-key") }) { gw in
                let body = #"{"url": "\#(urls[0])"}"#
                let anonymous = try await gw.post("/workers", body)
                #expect(anonymous.status == 401)
                #expect(anonymous.errorCode == "UNAUTHORIZED")
                #expect(anonymous.headers.first(name: "WWW-Authenticate") == "Bearer")
                let wrong = try await gw.request(.POST, "/workers", body: body, headers: [("Authorization", "Bearer user-key")])
                #expect(wrong.status == 401)
                let added = try await gw.request(.POST, "/workers", body: body, headers: [("Authorization", "Bearer admin-key")])
                #expect(added.status == 202)
                let id = try #require(added.json["worker_id"]?.stringValue)
                try await eventually("healthy") {
                    try await gw.request(.GET, "/workers/\(id)", headers: [("Authorization", "Bearer admin-key")]).json["is_healthy"] == .bool(true)
                }

                let completion = #"{"prompt": "x", "max_tokens": 1}"#
                let noKey = try await gw.post("/v1/completions", completion)
                #expect(noKey.status == 401)
                #expect(noKey.json["error"]?["code"] == .string("invalid_api_key"))
                #expect(noKey.json["error"]?["type"] == .string("authentication_error"))
                #expect(try await gw.request(.POST, "/v1/completions", body: completion, headers: [("Authorization", "Bearer nope")]).status == 401)
                let ok = try await gw.request(.POST, "/v1/completions", body: completion, headers: [("Authorization", "Bearer user-key")])
                #expect(ok.status == 200)
                // The gateway's key is not passed on to the worker.
                #expect(!workers[0].lastRequestHeaders(path: "/v1/completions").contains { $0.name.lowercased() == "authorization" })
                for path in ["/health", "/liveness", "/readiness"] {
                    #expect([200, 503].contains(try await gw.get(path).status))
                }
            }
        }
    }
}

@Suite("Slow and idle clients")
struct ClientTimeoutTests {
    @Test("A client sending its request a byte at a time is cut off at the header timeout")
    func slowLoris() async throws {
        try await TestGateway.with({ $0.clientTimeouts = .init(idle: .seconds(30), headerRead: .milliseconds(600), bodyRead: .seconds(30)) }) { gw in
            let client = try await RawClient(port: gw.port)
            let started = ContinuousClock.now
            let request = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + String(repeating: "a", count: 40)
            for byte in request {
                guard client.isOpen else { break }
                try? await client.send(String(byte))
                try await Task.sleep(for: .milliseconds(100))
            }
            try await eventually("the slow client is disconnected", timeout: .seconds(5)) { !client.isOpen }
            #expect(ContinuousClock.now - started < .seconds(3))
            // Others are still served.
            #expect(try await gw.get("/health").status == 200)
        }
    }

    @Test("A request head over the size limit gets 400 and a closed connection; the gateway goes on")
    func oversizedHead() async throws {
        try await TestGateway.with { gw in
            let client = try await RawClient(port: gw.port)
            try? await client.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 512 * 1024) + "\r\n\r\n")
            try await eventually("the connection is closed", timeout: .seconds(5)) { !client.isOpen }
            #expect(client.received.hasPrefix("HTTP/1.1 400"), "\(client.received.prefix(80))")
            #expect(try await gw.get("/health").status == 200)
        }
    }

    @Test("100 refused oversized heads leave no socket open in the gateway (closed fully, not half-closed until the idle timeout)")
    func refusedHeadsFreeTheirSockets() async throws {
        try await TestGateway.with({ $0.clientTimeouts = .init(idle: .seconds(120), headerRead: .seconds(120), bodyRead: .seconds(120)) }) { gw in
            let baseline = acceptedSocketDescriptors(port: gw.port)
            var clients: [RawClient] = []
            for _ in 0..<100 {
                let client = try await RawClient(port: gw.port)
                // More than the head limit: the gateway stops reading with bytes still unread.
                try? await client.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 200 * 1024) + "\r\n\r\n")
                clients.append(client)
            }
            // The clients stay open and never read on; only the gateway can free its side.
            try await eventually("the gateway holds no socket of a refused connection", timeout: .seconds(10)) {
                acceptedSocketDescriptors(port: gw.port) <= baseline
            }
            for client in clients { await client.close() }
            #expect(try await gw.get("/health").status == 200)
        }
    }

    @Test("A body that trickles in is cut off at the body timeout; an idle connection at the idle timeout")
    func slowBodyAndIdle() async throws {
        try await TestGateway.with({ $0.clientTimeouts = .init(idle: .milliseconds(800), headerRead: .seconds(5), bodyRead: .milliseconds(500)) }) { gw in
            let slowBody = try await RawClient(port: gw.port)
            try await slowBody.send("POST /workers HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"url\"")
            try await eventually("the slow body is cut off", timeout: .seconds(4)) { !slowBody.isOpen }

            let idle = try await RawClient(port: gw.port)
            try await eventually("the idle connection is closed", timeout: .seconds(4)) { !idle.isOpen }
        }
    }

    @Test("2,000 idle connections are held open while traffic flows")
    func manyIdleConnections() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                var idle: [RawClient] = []
                for _ in 0..<2000 { idle.append(try await RawClient(port: gw.port)) }
                var statuses: [Int] = []
                for _ in 0..<50 { statuses.append(try await gw.complete().status) }
                #expect(statuses.allSatisfy { $0 == 200 })
                #expect(idle.filter(\.isOpen).count == 2000)
                for connection in idle { await connection.close() }
            }
        }
    }
}

@Suite("Faults")
struct FaultTests {
    @Test("A worker that accepts and never answers: 504 at the request timeout; the client is not left hanging")
    func silentWorker() async throws {
        let bad = try await BadWorker(.silent)
        try await TestGateway.with({
            $0.routing.requestTimeout = .milliseconds(700)
            $0.retry.isEnabled = false
        }) { gw in
            let id = try await gw.addWorker(url: bad.url, extra: #""model_id": "m", "runtime": "openai", "disable_health_check": true"#)
            try await gw.waitUntilHealthy(id)
            let started = ContinuousClock.now
            let response = try await gw.post("/v1/completions", #"{"prompt": "x"}"#)
            #expect(response.status == 504)
            #expect(response.json["error"]?["code"] == .string("upstream_timeout"))
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(try await gw.worker(id)["load"] == .int(0))
        }
        await bad.close()
    }

    @Test("A worker answering garbage or half a response: retried elsewhere, or a clear failure when alone")
    func brokenAnswers() async throws {
        let garbage = try await BadWorker(.garbage)
        let half = try await BadWorker(.halfResponse)
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                let extra = #""model_id": "sim-model", "runtime": "openai", "disable_health_check": true"#
                let goodIDs = try await gw.addHealthyWorkers(urls)
                let garbageID = try await gw.addWorker(url: garbage.url, extra: extra)
                try await gw.waitUntilHealthy(garbageID)
                try await eventually("both workers routable") { gw.gateway.registry.routableWorkers().count == 2 }
                // Garbage before any byte reached the client: retried on the good worker.
                for _ in 0..<6 {
                    let response = try await gw.complete()
                    #expect(response.status == 200)
                    #expect(response.simWorker == workers[0].name)
                }
                #expect(try await gw.delete("/workers/\(garbageID)").status == 202)

                // Half an answer (the head, then 10 of its 100 bytes): a small answer is read
                // whole before anything is relayed, so the client never sees the broken one.
                let halfID = try await gw.addWorker(url: half.url, extra: extra)
                try await gw.waitUntilHealthy(halfID)
                #expect(try await gw.put("/workers/\(halfID)", #"{"priority": 99}"#).status == 202)
                try await eventually("the priority applies") { try await gw.worker(halfID)["priority"] == .int(99) }
                let retried = try await gw.post("/v1/completions", #"{"prompt": "x"}"#)
                #expect(retried.status == 200)
                #expect(retried.simWorker == workers[0].name)
                #expect(half.requests >= 1, "the half-answering worker was tried first")

                // Alone, it gives a clear error, not a truncated 200 and not a hang.
                #expect(try await gw.delete("/workers/\(goodIDs[0])").status == 202)
                try await eventually("only the half worker is left") { gw.gateway.registry.routableWorkers().count == 1 }
                let started = ContinuousClock.now
                let alone = try await gw.post("/v1/completions", #"{"prompt": "x"}"#)
                #expect(alone.status == 502 || alone.status == 503, "\(alone.status) \(alone.text)")
                #expect(alone.openAIError?["code"] != nil, "\(alone.text)")
                #expect(ContinuousClock.now - started < .seconds(5))
                try await eventually("the load is released") { try await gw.worker(halfID)["load"] == .int(0) }
            }
        }
        await garbage.close()
        await half.close()
    }

    @Test("All workers dead: 503 within a second once passive health has seen them fail; the registry keeps them, unhealthy")
    func allWorkersDead() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                $0.healthCheck = HealthCheckConfig(timeout: .seconds(2), interval: .seconds(60), failureThreshold: 3, successThreshold: 2)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                for worker in workers { try await worker.shutdown() }
                // The client's pool must notice the closed keep-alive connections first.
                try await Task.sleep(for: .milliseconds(200))
                // The first request meets both refusals (retried from one to the other) and fails.
                let first = try await gw.complete()
                #expect(first.status == 502 || first.status == 503, "\(first.status) \(first.text)")
                for id in ids { #expect(try await gw.worker(id)["is_healthy"] == .bool(false)) }
                // From then on: 503 at once, no attempt, no wait for a timeout.
                let started = ContinuousClock.now
                let next = try await gw.complete()
                #expect(next.status == 503)
                #expect(next.openAIError?["code"] == .string("no_available_workers"), "\(next.text)")
                #expect(ContinuousClock.now - started < .seconds(1))
                #expect(try await gw.get("/readiness").status == 503)
                #expect(try await gw.get("/workers").json["total"] == .int(2), "dead workers stay registered")
            }
        }
    }

    @Test("Graceful shutdown: readiness 503, a running stream finishes, then the gateway stops")
    func gracefulShutdown() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 5
            c.chunkInterval = .milliseconds(200)
        }) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                async let stream = gw.post("/v1/completions", #"{"prompt": "x", "stream": true, "max_tokens": 5}"#)
                try await eventually("the stream runs") { gw.gateway.registry.workers().first?.load == 1 }
                await gw.gateway.shutdown()
                #expect(gw.gateway.lifecycle.isDraining)
                let finished = try await stream
                #expect(finished.status == 200)
                #expect(finished.text.contains("data: [DONE]"))
            }
        }
    }
}

/// How many of this process's descriptors are TCP sockets the listener on `port` accepted
/// (local port `port`, not listening), read from /proc/net/tcp{,6} and /proc/self/fd.
func acceptedSocketDescriptors(port: Int) -> Int {
    var inodes = Set<String>()
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, let local = fields[1].split(separator: ":").last,
                  Int(local, radix: 16) == port, fields[3] != "0A" else { continue }
            inodes.insert(String(fields[9]))
        }
    }
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return descriptors.filter { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd),
              target.hasPrefix("socket:[") else { return false }
        return inodes.contains(String(target.dropFirst(8).dropLast()))
    }.count
}
