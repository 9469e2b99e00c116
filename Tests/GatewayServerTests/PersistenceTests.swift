import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayJSON
import NIOCore
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

@Suite("Durable registry")
struct PersistenceTests {
    static func temporaryStatePath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gateway-state-\(UUID().uuidString).sqlite").path
    }

    @Test("A restart restores every worker with its id and settings; unhealthy until probed again, then routed")
    func restartRestores() async throws {
        let path = Self.temporaryStatePath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        try await withSimWorkers(2) { workers, urls in
            let (kept, removed) = try await TestGateway.with({ $0.statePath = path }) { gw in
                let kept = try await gw.addWorker(url: urls[0], extra: #""labels": {"zone": "a"}"#)
                let removed = try await gw.addWorker(url: urls[1])
                try await gw.waitUntilHealthy(kept)
                #expect(try await gw.put("/workers/\(kept)", #"{"priority": 90, "api_key": "sk-x"}"#).status == 202)
                #expect(try await gw.delete("/workers/\(removed)").status == 202)
                return (kept, removed)
            }
            workers[0].setHealthy(false)
            try await TestGateway.with({ $0.statePath = path }) { gw in
                let listed = try await gw.get("/workers").json["workers"]?.arrayValue ?? []
                #expect(listed.compactMap { $0["id"]?.stringValue } == [kept])
                let worker = try await gw.worker(kept)
                #expect(worker["url"] == .string(urls[0]))
                #expect(worker["priority"] == .int(90))
                #expect(worker["labels"]?["zone"] == .string("a"))
                #expect(worker["has_api_key"] == .bool(true))
                #expect(worker["is_healthy"] == .bool(false))
                #expect(worker["job_status"]?["job_type"] == .string("AddWorker"))
                #expect(try await gw.get("/workers/\(removed)").status == 404)
                #expect(try await gw.get("/readiness").status == 503)
                workers[0].setHealthy(true)
                try await gw.waitUntilHealthy(kept)
                #expect(try await gw.post("/v1/completions", #"{"prompt": "hi", "max_tokens": 2}"#).status == 200)
                // New registrations continue after the restored ones.
                let again = try await gw.addWorker(url: urls[1])
                #expect(again != removed)
                #expect(try await gw.get("/workers").json["workers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [kept, again])
            }
        }
    }

    @Test("Without a state path nothing survives a restart")
    func memoryOnly() async throws {
        try await withSimWorkers(1) { _, urls in
            _ = try await TestGateway.with { gw in try await gw.addWorker(url: urls[0]) }
            let total = try await TestGateway.with { gw in try await gw.get("/workers").json["total"] }
            #expect(total == .int(0))
        }
    }

    @Test("kill -9 during concurrent registrations (100 in all) loses no acknowledged worker and leaves no half record")
    func crashDuringRegistrations() async throws {
        let path = Self.temporaryStatePath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var configuration = HTTPClient.Configuration()
        // Requests queued when the gateway dies fail at once instead of retrying the connection.
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let first = try await GatewayProcess.start(statePath: path)
            let urls = (0..<100).map { "http://127.0.0.1:\(5000 + $0)" }
            let acknowledged = ConcurrentSet()
            @Sendable func register(_ url: String) async {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(first.port)/workers")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: #"{"url": "\#(url)", "model_id": "m", "runtime": "openai", "disable_health_check": true}"#))
                guard let response = try? await client.execute(request, timeout: .seconds(10)),
                    response.status == .accepted,
                    let body = try? await response.body.collect(upTo: 1 << 16),
                    let id = (try? JSONParser.parse(body.readableBytesView))?["worker_id"]?.stringValue
                else { return }
                acknowledged.insert(id, url)
            }
            // 20 registrations acknowledged first, then 80 at once; the 10th of those to
            // start kills the gateway instead of sending, so the kill lands with requests in
            // flight and at most 9 of the 80 answered, however the machine schedules tasks.
            await withTaskGroup(of: Void.self) { group in
                for url in urls[0..<20] { group.addTask { await register(url) } }
            }
            #expect(acknowledged.count == 20)
            let started = ConcurrentSet()
            await withTaskGroup(of: Void.self) { group in
                for url in urls[20...] {
                    group.addTask {
                        if started.insert(url, url) == 10 {
                            first.kill9()
                            return
                        }
                        await register(url)
                    }
                }
            }
            #expect(acknowledged.count >= 20)
            #expect(acknowledged.count < 100, "the kill came too late to test anything")

            let second = try await GatewayProcess.start(statePath: path)
            defer { second.kill9() }
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(second.port)/workers")
            request.method = .GET
            let response = try await client.execute(request, timeout: .seconds(10))
            let listed = try JSONParser.parse(try await response.body.collect(upTo: 16 << 20).readableBytesView)["workers"]?.arrayValue ?? []
            var restored: [String: String] = [:]
            for worker in listed {
                let id = try #require(worker["id"]?.stringValue)
                let url = try #require(worker["url"]?.stringValue)
                #expect(urls.contains(url), "a record with a URL nobody sent: \(url)")
                #expect(worker["model_id"] == .string("m"))
                restored[id] = url
            }
            for (id, url) in acknowledged.snapshot {
                #expect(restored[id] == url, "acknowledged worker \(id) (\(url)) was lost")
            }
            #expect(Set(restored.values).count == restored.count, "one URL, one worker")
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// Ids and URLs collected from concurrent tasks.
final class ConcurrentSet: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var values: [String: String] = [:]

    /// Adds an entry; returns the count after it.
    @discardableResult
    func insert(_ id: String, _ url: String) -> Int {
        lock.withLock {
            values[id] = url
            return values.count
        }
    }
    var count: Int { lock.withLock { values.count } }
    var snapshot: [String: String] { lock.withLock { values } }
}

/// `model-gateway serve` as a child process (to kill it with SIGKILL).
struct GatewayProcess {
    let process: Process
    let port: Int

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("model-gateway")
    }

    static func start(statePath: String) async throws -> GatewayProcess {
        let port = try await closedPort()
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "serve", "--host", "127.0.0.1", "--port", String(port), "--binary-port", "0", "--state-path", statePath, "--log-level", "error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let gateway = GatewayProcess(process: process, port: port)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = client.shutdown() }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let response = try? await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/liveness"), timeout: .seconds(1)),
                response.status == .ok
            {
                return gateway
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        gateway.kill9()
        throw TestFailure("model-gateway did not start (\(executable.path))")
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
