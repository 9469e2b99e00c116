import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Model selection and the errors of the inference routes: all OpenAI-shaped JSON
/// `{"error": {"message", "type", "code"}}` with the matching status.
@Suite("Routing models and errors")
struct RoutingErrorTests {
    /// Checks an OpenAI-shaped error and returns its message.
    @discardableResult
    static func expectOpenAIError(
        _ response: TestResponse, status: Int, code: String, type: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        #expect(response.status == status, "\(response.status) \(response.text)", sourceLocation: sourceLocation)
        #expect(response.headers.first(name: "Content-Type") == "application/json", sourceLocation: sourceLocation)
        let error = response.openAIError
        #expect(error?["code"] == .string(code), "\(response.text)", sourceLocation: sourceLocation)
        let expectedType = type ?? (status == 404 ? "not_found_error" : status == 503 ? "service_unavailable" : status < 500 ? "invalid_request_error" : "server_error")
        #expect(error?["type"] == .string(expectedType), "\(response.text)", sourceLocation: sourceLocation)
        let message = error?["message"]?.stringValue
        #expect(message?.isEmpty == false, "no message: \(response.text)", sourceLocation: sourceLocation)
        // Nothing reached a worker for errors the gateway makes itself.
        if status != 502 && status != 504 {
            #expect(response.simWorker == nil, sourceLocation: sourceLocation)
        }
        return message
    }

    @Test("Multi-model: \"model\" selects; unknown → 404 model_not_found; none with two models → 400 model_required")
    func multiModel() async throws {
        try await withSimWorkers(3, { index, c in c.modelID = index < 2 ? "alpha" : "beta" }) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let alpha = try await gw.distribution(count: 10) { _ in #"{"model": "alpha", "prompt": "hi"}"# }
                #expect(alpha.counts == [workers[0].name: 5, workers[1].name: 5], "\(alpha.counts)")
                let beta = try await gw.distribution(count: 5) { _ in #"{"model": "beta", "prompt": "hi"}"# }
                #expect(beta.counts == [workers[2].name: 5], "\(beta.counts)")
                let chat = try await gw.post("/v1/chat/completions", #"{"model": "beta", "messages": [{"role": "user", "content": "hi"}]}"#)
                #expect(chat.status == 200)
                #expect(chat.json["model"] == .string("beta"))
                #expect(chat.simWorker == workers[2].name)

                let unknown = try await gw.post("/v1/completions", #"{"model": "gamma", "prompt": "hi"}"#)
                let message = Self.expectOpenAIError(unknown, status: 404, code: "model_not_found")
                #expect(message?.contains("gamma") == true)

                let missing = try await gw.post("/v1/completions", #"{"prompt": "hi"}"#)
                Self.expectOpenAIError(missing, status: 400, code: "model_required")
                let empty = try await gw.post("/v1/chat/completions", #"{"model": "", "messages": [{"role": "user", "content": "hi"}]}"#)
                Self.expectOpenAIError(empty, status: 400, code: "model_required")
                #expect(workers.map { $0.requestCount(path: "/v1/completions") }.reduce(0, +) == 15)
            }
        }
    }

    @Test("One model served: a request without \"model\" is routed to it")
    func singleModelNoModelField() async throws {
        try await withSimWorkers(2, { _, c in c.modelID = "only-model" }) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let response = try await gw.post("/v1/completions", #"{"prompt": "hi"}"#)
                #expect(response.status == 200, "\(response.text)")
                #expect(response.json["model"] == .string("only-model"))
                #expect(try await gw.post("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}]}"#).status == 200)
                #expect(try await gw.post("/generate", #"{"text": "hi"}"#).status == 200)
            }
        }
    }

    @Test("400 rows: bad JSON, missing required field, wrong type for model/stream")
    func badRequests() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let rows: [(path: String, body: String, code: String)] = [
                    ("/v1/chat/completions", #"{"messages": [{"role": "user""#, "invalid_json"),
                    ("/v1/completions", "not json at all", "invalid_json"),
                    ("/generate", #"["text", "hi"]"#, "invalid_json"),
                    // A key the gateway routes on, given twice: the worker might read the other one.
                    ("/v1/completions", #"{"prompt": "hi", "model": "sim-model", "model": "other"}"#, "invalid_json"),
                    ("/v1/chat/completions", #"{"messages": [], "stream": false, "stream": true}"#, "invalid_json"),
                    // A string the gateway skips is held to the parser's rules.
                    ("/v1/completions", #"{"prompt": "hi", "logit_note": "\x41"}"#, "invalid_json"),
                    ("/generate", #"{"text": "hi", "rid": "\ud800"}"#, "invalid_json"),
                    ("/v1/chat/completions", #"{"model": "sim-model"}"#, "missing_required_field"),
                    ("/v1/chat/completions", #"{"messages": null}"#, "missing_required_field"),
                    ("/v1/completions", #"{"max_tokens": 3}"#, "missing_required_field"),
                    ("/generate", #"{"sampling_params": {"max_new_tokens": 3}}"#, "missing_required_field"),
                    ("/v1/completions", #"{"prompt": "hi", "model": 5}"#, "invalid_field"),
                    ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}], "model": ["a"]}"#, "invalid_field"),
                    ("/v1/completions", #"{"prompt": "hi", "stream": "yes"}"#, "invalid_field"),
                    ("/generate", #"{"text": "hi", "stream": 1}"#, "invalid_field"),
                ]
                for row in rows {
                    let response = try await gw.post(row.path, row.body)
                    Self.expectOpenAIError(response, status: 400, code: row.code)
                }
                #expect(workers[0].requestCount(path: "/v1/completions") + workers[0].requestCount(path: "/v1/chat/completions") + workers[0].requestCount(path: "/generate") == 0)
            }
        }
    }

    @Test("413 when the body exceeds routing.maxPayloadBytes")
    func payloadTooLarge() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with({ $0.routing.maxPayloadBytes = 1024 }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let small = try await gw.complete(prompt: String(repeating: "a", count: 900))
                #expect(small.status == 200)
                let big = try await gw.complete(prompt: String(repeating: "a", count: 4096))
                Self.expectOpenAIError(big, status: 413, code: "payload_too_large")
                #expect(workers[0].requestCount(path: "/v1/completions") == 1)
            }
        }
    }

    @Test("503 no_available_workers, at once, with no worker registered")
    func noWorkers() async throws {
        // Any wait for a retry would take 5 s: "at once" is then told apart from waiting
        // with a margin no loaded machine eats up.
        try await TestGateway.with({ $0.retry.backoff = Backoff(initial: .seconds(5), maximum: .seconds(5), multiplier: 1, jitter: 0) }) { gw in
            for (path, body) in [("/v1/completions", #"{"prompt": "hi"}"#), ("/generate", #"{"text": "hi"}"#)] {
                let started = ContinuousClock.now
                let response = try await gw.post(path, body)
                let elapsed = ContinuousClock.now - started
                Self.expectOpenAIError(response, status: 503, code: "no_available_workers")
                #expect(elapsed < .seconds(3), "answered after \(elapsed)")
            }
        }
    }

    @Test("503 no_available_workers in under a second when every worker is unhealthy")
    func allUnhealthy() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.healthCheck = HealthCheckConfig(timeout: .seconds(1), interval: .milliseconds(100), failureThreshold: 1, successThreshold: 1)
            }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                for worker in workers { worker.setHealthy(false) }
                for id in ids {
                    try await eventually("\(id) unhealthy") { try await gw.worker(id)["is_healthy"] == .bool(false) }
                }
                let started = ContinuousClock.now
                let response = try await gw.complete()
                let elapsed = ContinuousClock.now - started
                let message = Self.expectOpenAIError(response, status: 503, code: "no_available_workers")
                #expect(message?.contains("sim-model") == true)
                #expect(elapsed < .seconds(1), "answered after \(elapsed)")
            }
        }
    }

    @Test("502 upstream_error when every worker refuses and retries are exhausted")
    func allRefusing() async throws {
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({ $0.healthCheck.interval = .seconds(60) }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                for worker in workers { try await worker.shutdown() }
                try await Task.sleep(for: .milliseconds(200))
                let started = ContinuousClock.now
                let response = try await gw.complete()
                let elapsed = ContinuousClock.now - started
                Self.expectOpenAIError(response, status: 502, code: "upstream_error")
                #expect(elapsed < .seconds(3), "answered after \(elapsed)")
                // Both were tried (and marked unhealthy by the refusal).
                for id in ids { #expect(try await gw.worker(id)["is_healthy"] == .bool(false)) }
            }
        }
    }

    @Test("504 upstream_timeout when routing.requestTimeout passes before the worker answers")
    func requestTimeout() async throws {
        try await withSimWorkers(1, { _, c in c.latency = .seconds(3) }) { _, urls in
            try await TestGateway.with({ $0.routing.requestTimeout = .milliseconds(500) }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let started = ContinuousClock.now
                let response = try await gw.complete()
                let elapsed = ContinuousClock.now - started
                Self.expectOpenAIError(response, status: 504, code: "upstream_timeout")
                #expect(elapsed >= .milliseconds(450), "answered after \(elapsed)")
                #expect(elapsed < .seconds(2), "answered after \(elapsed)")
            }
        }
    }
}
