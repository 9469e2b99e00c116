import GatewayCore
import GatewayJSON
import SimWorker
import NIOHTTP1
import Testing

@testable import GatewayServer
@testable import GatewayWorkers
@testable import GatewayHTTP

/// The registration lifecycle over REST, against real sim workers.
@Suite("Worker registration")
struct WorkerRegistrationTests {
    /// The chunk sizes of a whole chunked HTTP/1.1 response (nil when `raw` is not one).
    static func chunkSizes(_ raw: String) -> [Int]? {
        let bytes = Array(raw.utf8)
        func lineEnd(from start: Int) -> Int? {
            var index = start
            while index + 1 < bytes.count {
                if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
                index += 1
            }
            return nil
        }
        // Past the head: the first empty line.
        var index = 0
        while true {
            guard let end = lineEnd(from: index) else { return nil }
            let empty = end == index
            index = end + 2
            if empty { break }
        }
        var sizes: [Int] = []
        while true {
            guard let end = lineEnd(from: index), let size = Int(String(decoding: bytes[index..<end], as: UTF8.self), radix: 16) else { return nil }
            index = end + 2
            if size == 0 { return sizes }
            index += size
            guard index + 2 <= bytes.count, bytes[index] == 13, bytes[index + 1] == 10 else { return nil }
            index += 2
            sizes.append(size)
        }
    }

    @Test("POST answers 202 with the id before the worker is probed; it is routable only once healthy")
    func acceptedBeforeProbe() async throws {
        // /health answers 503 until the "not yet" checks below are done (an event, not a delay).
        try await withSimWorkers(1) { workers, urls in
            workers[0].setHealthy(false)
            try await TestGateway.with { gw in
                let response = try await gw.addWorker(#"{"url": "\#(urls[0])"}"#)
                #expect(response.status == 202)
                let id = try #require(response.json["worker_id"]?.stringValue)
                #expect(WorkerID(id) != nil)
                #expect(response.headers.first(name: "Location") == "/workers/\(id)")
                #expect(response.json["location"] == .string("/workers/\(id)"))
                #expect(response.json["status"] == .string("accepted"))
                #expect(response.json["url"] == .string(urls[0]))
                #expect(response.headers.first(name: "Content-Type") == "application/json")

                // The id exists at once, as a placeholder with its job status.
                let pending = try await gw.worker(id)
                #expect(pending["id"] == .string(id))
                #expect(pending["is_healthy"] == .bool(false))
                #expect(pending["model_id"] == .string("unknown"))
                let job = try #require(pending["job_status"])
                #expect(job["job_type"] == .string("AddWorker"))
                #expect(job["worker_url"] == .string(urls[0]))
                #expect(["pending", "processing"].contains(job["status"]?.stringValue ?? ""))
                #expect(job["timestamp"]?.intValue ?? 0 > 1_700_000_000)
                #expect(gw.gateway.registry.routableWorkers().isEmpty)
                #expect(try await gw.get("/readiness").status == 503)

                workers[0].setHealthy(true)
                try await gw.waitUntilHealthy(id, timeout: .seconds(30))
                let ready = try await gw.worker(id)
                #expect(ready["model_id"] == .string("sim-model"))
                #expect(ready["runtime_type"] == .string("sglang"))
                #expect(ready["job_status"] == nil)
                #expect(ready["connection_mode"] == .string("HTTP"))
                #expect(gw.gateway.registry.routableWorkers().map(\.id.description) == [id])
                let readiness = try await gw.get("/readiness")
                #expect(readiness.status == 200)
                #expect(readiness.json["healthy_workers"] == .int(1))
            }
        }
    }

    @Test("GET /workers past 1,000 workers leaves in pieces (chunked) and is one whole document")
    func largeListInPieces() async throws {
        try await TestGateway.with { gw in
            func register(_ range: Range<Int>) async throws {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lane in 0..<8 {
                        group.addTask {
                            for index in stride(from: range.lowerBound + lane, to: range.upperBound, by: 8) {
                                _ = try await gw.addWorker(
                                    url: "http://127.0.0.1:9/w\(index)", extra: #""model_id": "m", "runtime": "sglang", "disable_health_check": true"#
                                )
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let many = Int64(WorkerRoutes.listInOnePiece + 200)
            try await register(0..<WorkerRoutes.listInOnePiece)
            let whole = try await gw.get("/workers")
            #expect(whole.headers.first(name: "content-length") == String(whole.body.count))
            #expect(whole.json["total"]?.intValue == Int64(WorkerRoutes.listInOnePiece))

            try await register(WorkerRoutes.listInOnePiece..<(WorkerRoutes.listInOnePiece + 200))
            // Registration jobs end in the background (each worker's JSON changes then): the
            // two reads below must see the same document.
            try await eventually("every registration job has ended", timeout: .seconds(20)) {
                !(try await gw.get("/workers").text.contains("job_status"))
            }
            let pieces = try await gw.get("/workers")
            #expect(pieces.status == 200)
            #expect(pieces.headers.first(name: "content-length") == nil)
            #expect(pieces.headers.first(name: "transfer-encoding")?.lowercased() == "chunked")
            #expect(pieces.body.count > 60 * 1024 * 4)
            // On the wire: several chunks, none over 64 KiB (the list is written as it goes).
            let raw = try await RawClient(port: gw.port)
            try await raw.send("GET /workers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            try await eventually("the list arrives", timeout: .seconds(10)) { !raw.isOpen }
            let chunks = try #require(Self.chunkSizes(raw.received))
            #expect(chunks.count >= 4, "\(chunks)")
            #expect(chunks.allSatisfy { $0 <= 64 * 1024 }, "\(chunks)")
            #expect(chunks.reduce(0, +) == pieces.body.count)
            let document = pieces.json
            let listed = document["workers"]?.arrayValue ?? []
            #expect(document["total"]?.intValue == many)
            #expect(Int64(listed.count) == many)
            #expect(Int64(Set(listed.compactMap { $0["url"]?.stringValue }).count) == many)
            #expect(document["stats"]?["regular_count"]?.intValue == many)
        }
    }

    @Test("The same URL in any equivalent spelling gives the same id")
    func sameURLSameID() async throws {
        try await withSimWorkers(1) { _, urls in
            let port = urls[0].split(separator: ":").last!
            try await TestGateway.with { gw in
                let spellings = [
                    "http://127.0.0.1:\(port)", "HTTP://127.0.0.1:\(port)/", "127.0.0.1:\(port)",
                    " http://127.0.0.1:\(port)// ", "Http://127.0.0.1:\(port)",
                ]
                var ids = Set<String>()
                for spelling in spellings {
                    ids.insert(try await gw.addWorker(url: spelling))
                }
                #expect(ids.count == 1)
                let list = try await gw.get("/workers").json
                #expect(list["total"] == .int(1))
                #expect(list["workers"]?.arrayValue?.first?["url"] == .string("http://127.0.0.1:\(port)"))
            }
        }
    }

    @Test("DELETE then GET answers 404; a second DELETE too")
    func deleteThenGet() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(url: urls[0])
                try await gw.waitUntilHealthy(id)
                let removed = try await gw.delete("/workers/\(id)")
                #expect(removed.status == 202)
                #expect(removed.json["worker_id"] == .string(id))
                #expect(removed.json["status"] == .string("accepted"))
                #expect(gw.gateway.registry.routableWorkers().isEmpty)
                let after = try await gw.get("/workers/\(id)")
                #expect(after.status == 404)
                #expect(after.errorCode == "WORKER_NOT_FOUND")
                #expect(try await gw.delete("/workers/\(id)").status == 404)
                #expect(try await gw.get("/workers").json["total"] == .int(0))
                // Registering the URL again is a new worker with a new id.
                let again = try await gw.addWorker(url: urls[0])
                #expect(again != id)
            }
        }
    }

    @Test("DELETE of a pending add cancels its job")
    func deleteCancelsPendingAdd() async throws {
        let port = try await closedPort()
        try await TestGateway.with { gw in
            let id = try await gw.addWorker(url: "http://127.0.0.1:\(port)")
            try await eventually("the add job runs") { await gw.gateway.workers.jobs.runningCount == 1 }
            let removed = try await gw.delete("/workers/\(id)")
            #expect(removed.status == 202)
            #expect(removed.json["message"]?.stringValue?.contains("cancelled") == true)
            try await eventually("the job is gone") { await gw.gateway.workers.jobs.runningCount == 0 }
            #expect(try await gw.get("/workers/\(id)").status == 404)
            #expect(try await gw.get("/workers").json["total"] == .int(0))
        }
    }

    @Test("An unreachable URL ends failed, with the reason, within the startup timeout")
    func unreachableFails() async throws {
        let port = try await closedPort()
        try await TestGateway.with({ $0.registration.startupTimeout = .seconds(1) }) { gw in
            let started = ContinuousClock.now
            let id = try await gw.addWorker(url: "http://127.0.0.1:\(port)")
            try await eventually("the add job fails", timeout: .seconds(5)) {
                try await gw.worker(id)["job_status"]?["status"] == .string("failed")
            }
            // The job may start its last attempt at the deadline; it ends within one probe after it.
            #expect(ContinuousClock.now - started < .seconds(4))
            let worker = try await gw.worker(id)
            #expect(worker["is_healthy"] == .bool(false))
            let message = try #require(worker["job_status"]?["message"]?.stringValue)
            #expect(message.contains("connection refused"), "\(message)")
            #expect(message.contains("startup timeout"), "\(message)")
            #expect(gw.gateway.registry.routableWorkers().isEmpty)
            #expect(await gw.gateway.workers.jobs.runningCount == 0)
        }
    }

    @Test("A failed add is retried when the URL is posted again, keeping its id")
    func failedAddRetried() async throws {
        try await TestGateway.with({ $0.registration.startupTimeout = .milliseconds(300) }) { gw in
            let port = try await closedPort()
            let id = try await gw.addWorker(url: "127.0.0.1:\(port)")
            try await eventually("the add job fails") {
                try await gw.worker(id)["job_status"]?["status"] == .string("failed")
            }
            // Now something listens there; posting the URL again retries the same worker.
            let worker = SimWorker(configuration: .init(port: port))
            _ = try await worker.start()
            defer { Task { try? await worker.shutdown() } }
            let retried = try await gw.addWorker(#"{"url": "http://127.0.0.1:\#(port)"}"#)
            #expect(retried.status == 202)
            #expect(retried.json["worker_id"] == .string(id))
            #expect(retried.json["message"]?.stringValue?.contains("retrying") == true)
            try await gw.waitUntilHealthy(id)
            #expect(try await gw.get("/workers").json["total"] == .int(1))
            try await worker.shutdown()
        }
    }

    @Test("200 concurrent POSTs of 50 distinct URLs give exactly 50 workers and 50 ids")
    func concurrentRegistrations() async throws {
        try await TestGateway.with { gw in
            let ports = (0..<50).map { 20_000 + $0 }
            let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for round in 0..<4 {
                    for port in ports {
                        let spelling = [
                            "http://127.0.0.1:\(port)", "127.0.0.1:\(port)", "HTTP://127.0.0.1:\(port)/", "http://127.0.0.1:\(port)//",
                        ][round]
                        group.addTask {
                            let response = try await gw.addWorker(
                                #"{"url": "\#(spelling)", "model_id": "m", "runtime": "openai", "disable_health_check": true}"#
                            )
                            #expect(response.status == 202)
                            return (port, response.json["worker_id"]?.stringValue ?? "")
                        }
                    }
                }
                var results: [(Int, String)] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.count == 200)
            let idsByPort = Dictionary(grouping: results, by: \.0).mapValues { Set($0.map(\.1)) }
            #expect(idsByPort.count == 50)
            #expect(idsByPort.values.allSatisfy { $0.count == 1 })
            #expect(Set(results.map(\.1)).count == 50)
            let list = try await gw.get("/workers").json
            #expect(list["total"] == .int(50))
            #expect(list["workers"]?.arrayValue?.count == 50)
        }
    }

    @Test("Workers given at start-up are registered")
    func startupWorkers() async throws {
        try await withSimWorkers(2) { _, urls in
            try await TestGateway.with({ $0.workerURLs = urls }) { gw in
                try await eventually("both start-up workers are healthy") {
                    gw.gateway.registry.routableWorkers().count == 2
                }
                let listed = try await gw.get("/workers").json["workers"]?.arrayValue?.compactMap { $0["url"]?.stringValue }
                #expect(listed == urls)
            }
        }
    }

    @Test("An invalid --worker-urls entry stops the gateway at start")
    func invalidStartupWorker() async throws {
        var configuration = TestGateway.configuration()
        configuration.workerURLs = ["not a url"]
        let gateway = try Gateway(configuration: configuration)
        await #expect(throws: Gateway.StartupError.self) {
            try await gateway.run()
        }
    }

    @Test("Runtime and model are detected: SGLang info routes or OpenAI /v1/models")
    func runtimeDetection() async throws {
        try await withSimWorkers(2, { index, c in
            c.runtime = index == 0 ? .sglang : .openai
            c.modelID = index == 0 ? "org/sglang-model" : "llama-model"
        }) { _, urls in
            try await TestGateway.with { gw in
                let sglang = try await gw.addWorker(url: urls[0])
                let openai = try await gw.addWorker(url: urls[1])
                try await gw.waitUntilHealthy(sglang)
                try await gw.waitUntilHealthy(openai)
                let s = try await gw.worker(sglang)
                #expect(s["runtime_type"] == .string("sglang"))
                #expect(s["model_id"] == .string("org/sglang-model"))
                #expect(s["metadata"]?["model_path"] == .string("org/sglang-model"))
                #expect(s["metadata"]?["tp_size"] == .string("1"))
                #expect(s["metadata"]?["architectures"] == .string(#"["LlamaForCausalLM"]"#))
                let o = try await gw.worker(openai)
                #expect(o["runtime_type"] == .string("openai"))
                #expect(o["model_id"] == .string("llama-model"))
                #expect(o["metadata"]?["owned_by"] == .string("sim-worker"))
            }
        }
    }

    @Test("Given model_id and runtime win over what probing finds")
    func givenSettingsKept() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(
                    url: urls[0],
                    extra: #""model_id": "alias", "runtime": "openai", "priority": 7, "cost": 2.5, "worker_type": "prefill", "bootstrap_port": 9000, "labels": {"zone": "a"}"#
                )
                try await gw.waitUntilHealthy(id)
                let w = try await gw.worker(id)
                #expect(w["model_id"] == .string("alias"))
                #expect(w["runtime_type"] == .string("openai"))
                #expect(w["priority"] == .int(7))
                #expect(w["cost"] == .double(2.5))
                #expect(w["worker_type"] == .string("prefill"))
                #expect(w["bootstrap_port"] == .int(9000))
                #expect(w["labels"]?["zone"] == .string("a"))
                let stats = try await gw.get("/workers").json["stats"]
                #expect(stats?["prefill_count"] == .int(1))
                #expect(stats?["regular_count"] == .int(0))
            }
        }
    }
}
