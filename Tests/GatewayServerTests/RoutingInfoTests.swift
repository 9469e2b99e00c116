import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// The operational routes beside inference: /v1/models, /get_loads,
/// /get_server_info, /get_model_info, /health_generate, /flush_cache.
@Suite("Routing info routes")
struct RoutingInfoTests {
    @Test("GET /v1/models: OpenAI list shape, one entry per model id")
    func models() async throws {
        try await withSimWorkers(3, { index, c in c.modelID = index < 2 ? "alpha" : "beta" }) { _, urls in
            try await TestGateway.with { gw in
                let empty = try await gw.get("/v1/models")
                #expect(empty.status == 200)
                #expect(empty.json["object"] == .string("list"))
                #expect(empty.json["data"] == .array([]))

                _ = try await gw.addHealthyWorkers(urls)
                let response = try await gw.get("/v1/models")
                #expect(response.status == 200)
                #expect(response.headers.first(name: "Content-Type") == "application/json")
                #expect(response.json["object"] == .string("list"))
                let data = try #require(response.json["data"]?.arrayValue)
                #expect(data.compactMap { $0["id"]?.stringValue }.sorted() == ["alpha", "beta"])
                for entry in data {
                    #expect(entry["object"] == .string("model"))
                    #expect(entry["created"]?.intValue != nil)
                    #expect(entry["owned_by"]?.stringValue != nil)
                }
                #expect(data.first { $0["id"] == .string("alpha") }?["workers"] == .int(2))
                #expect(data.first { $0["id"] == .string("beta") }?["workers"] == .int(1))
            }
        }
    }

    @Test("GET /get_loads and /get_server_info describe the fleet")
    func loadsAndServerInfo() async throws {
        try await withSimWorkers(2) { _, urls in
            try await TestGateway.with({
                $0.routing.policy = .powerOfTwo
                $0.routing.maxPayloadBytes = 4096
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                let loads = try await gw.get("/get_loads")
                #expect(loads.status == 200)
                let entries = try #require(loads.json["workers"]?.arrayValue)
                #expect(entries.compactMap { $0["worker_id"]?.stringValue } == ids)
                #expect(entries.compactMap { $0["worker"]?.stringValue } == urls)
                #expect(entries.allSatisfy { $0["load"] == .int(0) && $0["model_id"] == .string("sim-model") })

                let info = try await gw.get("/get_server_info")
                #expect(info.status == 200)
                #expect(info.json["policy"] == .string("power_of_two"))
                #expect(info.json["workers_count"] == .int(2))
                #expect(info.json["healthy_workers"] == .int(2))
                #expect(info.json["models"] == .array([.string("sim-model")]))
                #expect(info.json["max_payload_size"] == .int(4096))
            }
        }
    }

    @Test("GET /get_model_info: the SGLang worker's own answer; registration facts for an OpenAI-only worker")
    func modelInfo() async throws {
        try await withSimWorkers(2, { index, c in
            c.runtime = index == 0 ? .sglang : .openai
            c.modelID = index == 0 ? "sg-model" : "oa-model"
        }) { workers, urls in
            try await TestGateway.with { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                func modelInfoCalls() -> Int { workers[0].requestCount(path: "/get_model_info") + workers[0].requestCount(path: "/model_info") }
                let callsBefore = modelInfoCalls()
                let sglang = try await gw.get("/get_model_info?model=sg-model")
                #expect(sglang.status == 200, "\(sglang.text)")
                #expect(sglang.json["model_path"] == .string("sg-model"))
                #expect(sglang.json["architectures"] == .array([.string("LlamaForCausalLM")]))
                #expect(modelInfoCalls() == callsBefore + 1, "the answer came from the worker")

                let openai = try await gw.get("/get_model_info?model=oa-model")
                #expect(openai.status == 200, "\(openai.text)")
                #expect(openai.json["served_model_name"] == .string("oa-model"))
                #expect(openai.json["worker_id"] == .string(ids[1]))

                let ambiguous = try await gw.get("/get_model_info")
                #expect(ambiguous.status == 400)
                #expect(ambiguous.openAIError?["code"] == .string("model_required"))
                let unknown = try await gw.get("/get_model_info?model=nope")
                #expect(unknown.status == 404)
                #expect(unknown.openAIError?["code"] == .string("model_not_found"))
            }
        }
    }

    @Test("GET /health_generate: 200 through an OpenAI-only worker; 503 without workers")
    func healthGenerateOpenAI() async throws {
        try await withSimWorkers(1, { _, c in c.runtime = .openai }) { workers, urls in
            try await TestGateway.with { gw in
                let none = try await gw.get("/health_generate")
                #expect(none.status == 503)
                #expect(none.openAIError?["code"] == .string("no_available_workers"))

                let id = try await gw.addHealthyWorkers(urls)[0]
                let before = workers[0].requestCount(path: "/health")
                let response = try await gw.get("/health_generate")
                #expect(response.status == 200, "\(response.text)")
                #expect(response.json["status"] == .string("ok"))
                #expect(response.json["worker_id"] == .string(id))
                #expect(workers[0].requestCount(path: "/health") > before)
            }
        }
    }

    /// Fails today: the gateway asks SGLang-runtime workers for `/health_generate`, which
    /// the sim worker does not serve (404), and answers 503 worker_unhealthy for a healthy fleet.
    @Test("GET /health_generate: 200 through a healthy SGLang worker")
    func healthGenerateSGLang() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                let response = try await gw.get("/health_generate")
                #expect(response.status == 200, "\(response.text)")
                #expect(response.json["worker_id"] == .string(id))
            }
        }
    }

    @Test("POST /flush_cache: every SGLang worker flushed; a dead one reported as failed")
    func flushCache() async throws {
        try await withSimWorkers(3, { index, c in c.runtime = index < 2 ? .sglang : .openai }) { workers, urls in
            try await TestGateway.with({ $0.healthCheck.interval = .seconds(60) }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let response = try await gw.post("/flush_cache", "")
                #expect(response.status == 200, "\(response.text)")
                #expect(response.json["status"] == .string("success"))
                #expect(response.json["workers_flushed"] == .int(2))
                #expect(response.json["total_http_workers"] == .int(2))
                #expect(response.json["total_workers"] == .int(3))
                #expect(response.json["successful"] == .array([.string(urls[0]), .string(urls[1])]))
                #expect(workers[0].requestCount(path: "/flush_cache") == 1)
                #expect(workers[1].requestCount(path: "/flush_cache") == 1)
                #expect(workers[2].requestCount(path: "/flush_cache") == 0)

                try await workers[1].shutdown()
                let partial = try await gw.post("/flush_cache", "")
                #expect(partial.status == 206, "\(partial.text)")
                #expect(partial.json["status"] == .string("partial_success"))
                #expect(partial.json["workers_flushed"] == .int(1))
                let failed = try #require(partial.json["failed"]?.arrayValue)
                #expect(failed.count == 1)
                #expect(failed.first?["worker"] == .string(urls[1]))
                #expect(failed.first?["error"]?.stringValue?.isEmpty == false)
            }
        }
    }
}
