import Foundation
import GatewayClient
import GatewayCore
import GatewayJSON
import GatewayWire
import GatewayWorkers
import NIOHTTP1
import SimWorker
import Synchronization
import Testing

@testable import GatewayServer

/// The code and HTTP status of a server error thrown by `body`, or nil if it did not throw one.
private func callError(_ body: () async throws -> Void) async -> (code: String, status: Int)? {
    do {
        try await body()
        return nil
    } catch let error as GatewayClientError {
        guard let code = error.code, let status = error.httpStatus else { return nil }
        return (code, status)
    } catch {
        return nil
    }
}

/// Sim workers whose streams take `chunks` × 100 ms.
private func slowStreams(_ chunks: Int) -> (Int, inout SimWorker.Configuration) -> Void {
    { _, configuration in
        configuration.chunkCount = chunks
        configuration.chunkInterval = .milliseconds(100)
    }
}

private let longStream = #"{"prompt": "tell me a story", "max_tokens": 400, "stream": true}"#

@Suite("Worker status, drain, PATCH and filters")
struct WorkerDrainTests {
    @Test("DELETE drains: out of routing at once, draining with its count in job_status, /get_loads and metrics; removed when the stream ends")
    func drainWaitsForTheStream() async throws {
        try await withSimWorkers(2, slowStreams(30)) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                #expect(try await gw.worker(ids[0])["status"] == .string("ready"))
                // Open streams until one runs on worker 0.
                var streams: [OpenStream] = []
                while workers[0].inFlight == 0 && streams.count < 4 {
                    streams.append(try await gw.openStream(longStream))
                }
                let onFirst = try #require(streams.first { $0.headers.first(name: "X-Sim-Worker") == workers[0].name })
                #expect(try await gw.load(of: ids[0]) == 1)

                let deleted = try await gw.delete("/workers/\(ids[0])")
                #expect(deleted.status == 202)
                #expect(deleted.json["worker_status"] == .string("draining"))
                #expect(deleted.json["in_flight"] == .int(1))
                let info = try await gw.worker(ids[0])
                #expect(info["status"] == .string("draining"))
                #expect(info["is_healthy"] == .bool(false))
                #expect(info["job_status"]?["job_type"] == .string("RemoveWorker"))
                #expect(info["job_status"]?["status"] == .string("draining"))
                #expect(info["job_status"]?["in_flight"] == .int(1))
                // New traffic goes elsewhere.
                let (after, _) = try await gw.distribution(count: 4)
                #expect(after == [workers[1].name: 4], "\(after)")
                // Still visible where loads are shown.
                let loads = try await gw.get("/get_loads").json["workers"]?.arrayValue ?? []
                let entry = loads.first { $0["worker_id"] == .string(ids[0]) }
                #expect(entry?["status"] == .string("draining") && entry?["load"] == .int(1))
                let metrics = try await gw.get("/metrics").text
                #expect(metrics.contains(#"smg_worker_status{worker_id="\#(ids[0])",status="draining"} 1"#))
                #expect(metrics.contains(#"smg_workers{status="draining"} 1"#))
                // A second DELETE starts nothing new; a change is refused.
                #expect(try await gw.delete("/workers/\(ids[0])").json["worker_status"] == .string("draining"))
                let patch = try await gw.request(.PATCH, "/workers/\(ids[0])", body: #"{"priority": 3}"#)
                #expect(patch.status == 409 && patch.errorCode == "WORKER_DRAINING")

                // The stream runs to its end, complete; then the worker is gone.
                let recording = try await onFirst.finish()
                #expect(recording.error == nil)
                #expect(recording.events.last == "[DONE]")
                try await eventually("removed once drained") { try await gw.get("/workers/\(ids[0])").status == 404 }
                for stream in streams where stream !== onFirst { _ = try await stream.finish() }
            }
        }
    }

    @Test("At --drain-timeout-secs the requests still running are cut with an error event (REST and binary) and the worker is removed")
    func drainTimeoutCuts() async throws {
        try await withSimWorkers(1, slowStreams(300)) { workers, urls in
            try await TestGateway.with({ $0.registration.drainTimeout = .milliseconds(500) }) { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                let stream = try await gw.openStream(longStream)
                let client = try await gw.binaryClient()
                defer { Task { await client.close() } }
                let generate = Task {
                    let request = Wire.GenerateRequest(input: .text("tell me a story"), sampling: .init(maxTokens: 400), stream: true)
                    for try await _ in client.generateStream(request) {}
                }
                try await eventually("both streams run") { workers[0].inFlight == 2 }
                #expect(try await gw.load(of: id) == 2)
                let workerID = try #require(WorkerID(id))
                let handle = try #require(gw.gateway.registry.worker(workerID)?.handle)
                let cut = Mutex<WorkerCut?>(nil)
                let observation = handle.onCut { reason in cut.withLock { $0 = reason } }
                defer { observation.cancel() }
                #expect(try await gw.delete("/workers/\(id)").status == 202)
                try await eventually("removed at the deadline") { try await gw.get("/workers/\(id)").status == 404 }
                #expect(cut.withLock { $0 } == .drainTimedOut(after: .milliseconds(500)))
                #expect(handle.cut != nil)
                // The REST stream ends with the cut's error event, then [DONE].
                let recording = try await stream.finish()
                #expect(recording.events.last == "[DONE]")
                let errorEvent = recording.jsonEvents.last { $0["error"] != nil }
                #expect(errorEvent?["error"]?["code"] == .string("worker_drain_timeout"), "\(recording.text.suffix(400))")
                // The binary generate ends with the same error.
                let binaryCut = await callError { _ = try await generate.value }
                #expect(binaryCut?.code == "worker_drain_timeout" && binaryCut?.status == 503)
                #expect(handle.load == 0, "the cut requests released the worker's load")
            }
        }
    }

    @Test("DELETE ?force=true removes at once even with a stream open; a bad force value is a 400")
    func forceRemovesAtOnce() async throws {
        try await withSimWorkers(1, slowStreams(30)) { workers, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                let stream = try await gw.openStream(longStream)
                try await eventually("the stream runs") { workers[0].inFlight == 1 }
                let bad = try await gw.delete("/workers/\(id)?force=maybe")
                #expect(bad.status == 400 && bad.errorCode == "INVALID_FIELD")
                let forced = try await gw.delete("/workers/\(id)?force=true")
                #expect(forced.status == 202 && forced.json["worker_status"] == .string("removed"))
                #expect(try await gw.get("/workers/\(id)").status == 404)
                // Requests already sent to it finish.
                #expect(try await stream.finish().error == nil)
            }
        }
    }

    @Test("A removed worker's URL registers again as a new worker while the old one drains")
    func urlFreeWhileDraining() async throws {
        try await withSimWorkers(1, slowStreams(30)) { workers, urls in
            try await TestGateway.with { gw in
                let old = try await gw.addHealthyWorkers(urls)[0]
                let stream = try await gw.openStream(longStream)
                try await eventually("the stream runs") { workers[0].inFlight == 1 }
                #expect(try await gw.delete("/workers/\(old)").status == 202)
                let new = try await gw.addWorker(url: urls[0])
                #expect(new != old)
                try await gw.waitUntilHealthy(new)
                let listed = try await gw.get("/workers").json["workers"]?.arrayValue ?? []
                #expect(listed.compactMap { $0["status"]?.stringValue } == ["draining", "ready"])
                _ = try await stream.finish()
                try await eventually("the old one goes") { try await gw.get("/workers/\(old)").status == 404 }
                #expect(try await gw.worker(new)["status"] == .string("ready"))
            }
        }
    }

    @Test("PATCH takes smg 1.x's body (health as an object, labels merged); PUT keeps the flat names; errors are clear")
    func patch() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(url: urls[0], extra: #""labels": {"zone": "a", "old": "x"}"#)
                try await gw.waitUntilHealthy(id)
                let body = #"{"priority": 70, "cost": 2.5, "labels": {"tier": "gold", "old": null}, "api_key": "sk-1", "health": {"check_interval_secs": 7, "failure_threshold": 4, "success_threshold": 1, "timeout_secs": 3, "disable_health_check": false, "drain_settle_secs": 5}}"#
                let patched = try await gw.request(.PATCH, "/workers/\(id)", body: body)
                #expect(patched.status == 202, "\(patched.text)")
                let info = try await gw.worker(id)
                #expect(info["priority"] == .int(70))
                #expect(info["cost"] == .double(2.5))
                #expect(info["labels"] == .object(["tier": .string("gold"), "zone": .string("a")]))
                #expect(info["has_api_key"] == .bool(true))
                #expect(info["health_check"]?["interval_secs"] == .int(7))
                #expect(info["health_check"]?["failure_threshold"] == .int(4))
                #expect(info["health_check"]?["success_threshold"] == .int(1))
                #expect(info["health_check"]?["timeout_secs"] == .int(3))

                let cases: [(String, String)] = [
                    (#"{"health": 5}"#, "field 'health' must be an object"),
                    (#"{"health": {"check_interval_secs": 0}}"#, "field 'health.check_interval_secs' must be between"),
                    (#"{"health": {"failure_threshold": 2}, "health_failure_threshold": 2}"#, "field 'health.failure_threshold' is also given"),
                    (#"{"url": "http://elsewhere:1"}"#, "field 'url' cannot be changed"),
                    (#"{}"#, "nothing to update"),
                ]
                for (body, message) in cases {
                    let response = try await gw.request(.PATCH, "/workers/\(id)", body: body)
                    #expect(response.status == 400, "\(body): \(response.status)")
                    #expect(response.json["error"]?.stringValue?.contains(message) == true, "\(body): \(response.text)")
                }
                // PUT: flat names, as before.
                #expect(try await gw.put("/workers/\(id)", #"{"health_check_interval_secs": 9}"#).status == 202)
                #expect(try await gw.worker(id)["health_check"]?["interval_secs"] == .int(9))
                let unknown = try await gw.request(.PATCH, "/workers/\(WorkerID.random())", body: #"{"priority": 1}"#)
                #expect(unknown.status == 404 && unknown.errorCode == "WORKER_NOT_FOUND")
            }
        }
    }

    @Test("GET /workers filters by model, status and worker_type; invalid values are a 400; the binary list filters the same")
    func filters() async throws {
        try await withSimWorkers(2, { index, configuration in configuration.modelID = index == 0 ? "model-a" : "model-b" }) { workers, urls in
            try await TestGateway.with { gw in
                let a = try await gw.addWorker(url: urls[0])
                let b = try await gw.addWorker(url: urls[1], extra: #""worker_type": "prefill""#)
                let unreachable = try await gw.addWorker(url: "http://127.0.0.1:\(try await closedPort())", extra: #""model_id": "model-a""#)
                try await gw.waitUntilHealthy(a)
                try await gw.waitUntilHealthy(b)
                func ids(_ query: String) async throws -> [String] {
                    let response = try await gw.get("/workers" + query)
                    #expect(response.status == 200, "\(query): \(response.text)")
                    #expect(response.json["total"]?.intValue == Int64(response.json["workers"]?.arrayValue?.count ?? -1))
                    return response.json["workers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                }
                #expect(try await ids("") == [a, b, unreachable])
                #expect(try await ids("?model=model-a") == [a, unreachable])
                #expect(try await ids("?status=ready") == [a, b])
                #expect(try await ids("?status=pending") == [unreachable])
                #expect(try await ids("?worker_type=prefill") == [b])
                #expect(try await ids("?model=model-a&status=ready&worker_type=regular") == [a])
                #expect(try await ids("?model=&status=&unknown=1") == [a, b, unreachable])
                #expect(try await ids("?model=nobody").isEmpty)
                for query in ["?status=healthy", "?worker_type=gpu", "?status=READY%20"] {
                    let response = try await gw.get("/workers" + query)
                    #expect(response.status == 400 && response.errorCode == "INVALID_FIELD", "\(query): \(response.text)")
                }

                let client = try await gw.binaryClient()
                defer { Task { await client.close() } }
                #expect(try await client.listWorkers(.init(status: .ready)).workers.map(\.id) == [a, b])
                #expect(try await client.listWorkers(.init(model: "model-a")).workers.map(\.id) == [a, unreachable])
                let listed = try await client.listWorkers(.init(workerType: .prefill))
                #expect(listed.workers.map(\.id) == [b] && listed.total == 1 && listed.workers[0].status == .ready)
                let badStatus = await callError { _ = try await client.listWorkers(.init(status: .unrecognized(42))) }
                #expect(badStatus?.code == "INVALID_FIELD" && badStatus?.status == 400)
                let badType = await callError { _ = try await client.listWorkers(.init(workerType: .unrecognized(9))) }
                #expect(badType?.code == "INVALID_FIELD" && badType?.status == 400)
            }
        }
    }

    @Test("Binary: status in WorkerInfo, remove drains (or force), draining visible, updates of a draining worker refused as on REST")
    func binaryLifecycle() async throws {
        try await withSimWorkers(1, slowStreams(30)) { workers, urls in
            try await TestGateway.with { gw in
                let client = try await gw.binaryClient()
                defer { Task { await client.close() } }
                let id = try await gw.addHealthyWorkers(urls)[0]
                #expect(try await client.getWorker(id: id).status == .ready)
                let stream = try await gw.openStream(longStream)
                try await eventually("the stream runs") { workers[0].inFlight == 1 }
                let removed = try await client.removeWorker(id: id)
                #expect(removed.workerStatus == .draining && removed.inFlight == 1)
                let info = try await client.getWorker(id: id)
                #expect(info.status == .draining && !info.isHealthy)
                #expect(info.jobStatus?.status == .draining && info.jobStatus?.inFlight == 1 && info.jobStatus?.jobType == .removeWorker)
                let refused = await callError { _ = try await client.updateWorker(.init(workerID: id, priority: 1)) }
                #expect(refused?.code == "WORKER_DRAINING" && refused?.status == 409)
                let forced = try await client.removeWorker(id: id, force: true)
                #expect(forced.workerStatus == .unspecified)
                let gone = await callError { _ = try await client.getWorker(id: id) }
                #expect(gone?.code == "WORKER_NOT_FOUND")
                _ = try await stream.finish()
            }
        }
    }

    @Test("--remove-unhealthy-workers removes a worker that stays not_ready past the limit, and a failed add")
    func removeUnhealthy() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.registration.removeUnhealthyWorkers = true
                $0.registration.unhealthyRemovalTimeout = .seconds(1)
                $0.registration.startupTimeout = .milliseconds(300)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                let failed = try await gw.addWorker(url: "http://127.0.0.1:\(try await closedPort())")
                workers[0].setHealthy(false)
                try await eventually("not_ready") { try await gw.worker(ids[0])["status"] == .string("not_ready") }
                try await eventually("the sick worker is removed", timeout: .seconds(15)) { try await gw.get("/workers/\(ids[0])").status == 404 }
                try await eventually("the failed add is removed", timeout: .seconds(15)) { try await gw.get("/workers/\(failed)").status == 404 }
                #expect(try await gw.worker(ids[1])["status"] == .string("ready"))
            }
        }
    }
}
