import AsyncHTTPClient
import GatewayJSON
import NIOHTTP1
import NIOCore
import SimWorker
import Testing

/// Engine figures that make tests quick: a few milliseconds per step.
let quickFigures = EngineConfiguration(
    blockSize: 16, capacityTokens: 4096, prefillMicrosPerToken: 1, prefillOverheadMicros: 1_000,
    decodeBaseMicros: 1_000, decodePerRunningMicros: 100, maxRunning: 8, maxPrefillTokens: 8192
)

func realistic(
    name: String = "w-real",
    runtime: SimWorker.Runtime = .sglang,
    role: SimWorker.Role = .regular,
    figures: EngineConfiguration = quickFigures,
    bootstrapTimeout: Duration = .seconds(5)
) -> SimWorker.Configuration {
    SimWorker.Configuration(
        name: name, runtime: runtime, chunkCount: 4, engine: .realistic, engineConfiguration: figures, role: role,
        bootstrapPort: 0, bootstrapTimeout: bootstrapTimeout
    )
}

/// A system prompt of `words` distinct words.
func systemPrompt(_ words: Int, seed: String = "s") -> String {
    (0..<words).map { "\(seed)\($0)" }.joined(separator: " ")
}

/// The value of an unlabelled-suffix Prometheus sample `name{…}` in `text`.
func sample(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        if let value = line.split(separator: " ").last { return Double(value) }
    }
    return nil
}

@Suite("Realistic worker", .timeLimit(.minutes(1)))
struct RealisticWorkerTests {
    @Test func chatReportsCachedTokensOnASharedPrefix() async throws {
        try await withWorker(realistic()) { _, client in
            let system = systemPrompt(100)
            func ask(_ question: String) async throws -> JSONValue {
                try await client.post(
                    "/v1/chat/completions",
                    #"{"messages":[{"role":"system","content":"\#(system)"},{"role":"user","content":"\#(question)"}],"max_tokens":4}"#
                ).json()
            }
            let first = try await ask("first question")
            #expect(first["usage"]?["prompt_tokens_details"]?["cached_tokens"] == .int(0))
            // <|system|> + 100 words + <|end|> + <|user|> … : 102 tokens shared, six whole blocks.
            let second = try await ask("another one")
            #expect(second["usage"]?["prompt_tokens_details"]?["cached_tokens"] == .int(96))
            #expect(second["usage"]?["prompt_tokens"] == .int(107))
        }
    }

    @Test func streamedUsageCarriesCachedTokens() async throws {
        try await withWorker(realistic()) { _, client in
            let prompt = systemPrompt(40)
            let body = #"{"prompt":"\#(prompt)","max_tokens":6,"stream":true,"stream_options":{"include_usage":true}}"#
            _ = try await client.post("/v1/completions", body)
            let reply = try await client.post("/v1/completions", body)
            let events = reply.events
            #expect(events.last == "[DONE]")
            let usage = try JSONParser.parse(events[events.count - 2])
            #expect(usage["usage"]?["prompt_tokens_details"]?["cached_tokens"] == .int(32))
            #expect(usage["usage"]?["completion_tokens"] == .int(6))
            // The deltas spell the whole output.
            var text = ""
            for event in events.dropLast(2) { text += try JSONParser.parse(event)["choices"]?[0]?["text"]?.stringValue ?? "" }
            #expect(text == SimWorker.generatedText(tokenCount: 6))
        }
    }

    @Test func generateMetaInfoAndEngineCounters() async throws {
        try await withWorker(realistic()) { worker, client in
            let text = systemPrompt(50)
            _ = try await client.post("/generate", #"{"text":"\#(text)","sampling_params":{"max_new_tokens":3}}"#)
            let json = try await client.post("/generate", #"{"text":"\#(text)","sampling_params":{"max_new_tokens":3}}"#).json()
            #expect(json["meta_info"]?["cached_tokens"] == .int(48))
            #expect(json["meta_info"]?["prompt_tokens"] == .int(50))
            #expect(json["output_ids"]?[0] == .int(Int64(SimTokenizer.outputTokenID(0))))

            let metrics = try await client.get("/metrics")
            #expect(metrics.headers.first(name: "Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(sample(metrics.body, "vllm:prefix_cache_queries_total") == 100)
            #expect(sample(metrics.body, "vllm:prefix_cache_hits_total") == 48)
            #expect(sample(metrics.body, "vllm:prompt_tokens_total") == 100)
            #expect(sample(metrics.body, "vllm:generation_tokens_total") == 6)
            #expect(sample(metrics.body, "vllm:request_success_total") == 2)
            #expect(sample(metrics.body, "vllm:num_requests_running") == 0)
            #expect(sample(metrics.body, "vllm:num_requests_waiting") == 0)
            #expect(sample(metrics.body, "vllm:kv_cache_usage_perc") == 0)
            #expect(worker.engineSnapshot?.counters.prefixCacheHits == 48)

            // The cache flush drops what no request uses.
            _ = try await client.post("/flush_cache", "")
            let again = try await client.post("/generate", #"{"text":"\#(text)","sampling_params":{"max_new_tokens":3}}"#).json()
            #expect(again["meta_info"]?["cached_tokens"] == .int(0))
        }
    }

    @Test func loadRoutesShowRunningAndWaiting() async throws {
        var figures = quickFigures
        figures.maxRunning = 1
        figures.prefillOverheadMicros = 60_000_000 // the first request holds the engine until its client leaves
        try await withWorker(realistic(figures: figures)) { worker, client in
            func request(_ word: String) -> String {
                let body = #"{"text":"\#(systemPrompt(20)) \#(word)","sampling_params":{"max_new_tokens":2}}"#
                return "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            try await withRawConnection(port: client.port, write: request("a")) { _ throws in
                try await withRawConnection(port: client.port, write: request("b")) { _ throws in
                    let queued = try await eventually { worker.engineSnapshot?.load.waiting == 1 }
                    #expect(queued)
                    let load = try await client.get("/get_load").json()
                    #expect(load[0]?["num_reqs"] == .int(2))
                    #expect(load[0]?["num_waiting_reqs"] == .int(1))
                    #expect((load[0]?["num_tokens"]?.intValue ?? 0) >= 21)
                    let loads = try await client.get("/v1/loads").json()
                    #expect(loads["loads"]?[0]?["num_running_reqs"] == .int(1))
                    #expect(loads["loads"]?[0]?["max_total_num_tokens"] == .int(4096))
                    let metrics = try await client.get("/metrics").body
                    #expect(sample(metrics, "vllm:num_requests_running") == 1)
                    #expect(sample(metrics, "vllm:num_requests_waiting") == 1)
                    #expect((sample(metrics, "vllm:kv_cache_usage_perc") ?? 0) > 0)
                }
            }
            // Both clients left: both requests are cancelled and their blocks freed.
            let drained = try await eventually { worker.engineSnapshot?.counters.requestsAborted == 2 }
            #expect(drained)
            #expect(worker.engineSnapshot?.load.usedTokens == 0)
        }
    }

    @Test func tooLongARequestIsRefused() async throws {
        try await withWorker(realistic()) { _, client in
            let reply = try await client.post("/generate", #"{"text":"\#(systemPrompt(5000))","sampling_params":{"max_new_tokens":3}}"#)
            #expect(reply.status == 400)
            #expect(reply.body.contains("exceed the KV cache"))
        }
    }

    @Test func serverInfoNamesTheEngineAndRole() async throws {
        try await withWorker(realistic(role: .prefill)) { worker, client in
            let info = try await client.get("/server_info").json()
            #expect(info["disaggregation_mode"] == .string("prefill"))
            #expect(info["disaggregation_bootstrap_port"] == .int(Int64(worker.bootstrapPort ?? -1)))
            #expect(info["max_total_num_tokens"] == .int(4096))
            #expect(info["sim_engine"] == .string("realistic"))
        }
    }

    @Test func aRoleNeedsTheRealisticEngine() async throws {
        let worker = SimWorker(configuration: .init(role: .decode))
        await #expect(throws: SimWorker.LifecycleError.roleNeedsRealisticEngine) { try await worker.start() }
    }
}
