import AsyncHTTPClient
import GatewayJSON
import NIOCore
import NIOHTTP1
import SimWorker
import Testing

@Suite("SimWorker", .timeLimit(.minutes(1)))
struct SimWorkerTests {
    // MARK: Health and metadata

    @Test func healthAnswers200WithWorkerHeader() async throws {
        try await withWorker(.init(name: "w-health")) { _, client in
            let reply = try await client.get("/health")
            #expect(reply.status == 200)
            #expect(reply.body.isEmpty)
            #expect(reply.headers.first(name: "X-Sim-Worker") == "w-health")

            let head = try await client.send(.HEAD, "/health")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.headers.first(name: "X-Sim-Worker") == "w-health")
        }
    }

    @Test func serverInfoLikeSGLang() async throws {
        try await withWorker(.init(name: "w-info", modelID: "llama-x")) { _, client in
            for path in ["/server_info", "/get_server_info"] {
                let reply = try await client.get(path)
                #expect(reply.status == 200)
                #expect(reply.headers.first(name: "Content-Type") == "application/json")
                #expect(reply.headers.first(name: "X-Sim-Worker") == "w-info")
                let json = try reply.json()
                #expect(json["model_path"] == .string("llama-x"))
                #expect(json["served_model_name"] == .string("llama-x"))
                #expect(json["tokenizer_path"] == .string("llama-x"))
                #expect(json["tp_size"] == .int(1))
                #expect(json["dp_size"] == .int(1))
                #expect(json["load_balance_method"] == .string("round_robin"))
                #expect(json["disaggregation_mode"] == .string("null"))
                #expect(json["version"] == .string("sim-0.1"))
                #expect(json["max_total_num_tokens"] == .int(65536))
                #expect(json["max_req_input_len"] == .int(4096))
                #expect(json["host"] == .string("127.0.0.1"))
                #expect(json["port"] == .int(Int64(client.port)))
                #expect(json["sim_worker_name"] == .string("w-info"))
            }
        }
    }

    @Test func modelInfoLikeSGLang() async throws {
        try await withWorker(.init(modelID: "llama-x")) { _, client in
            for path in ["/model_info", "/get_model_info"] {
                let reply = try await client.get(path)
                #expect(reply.status == 200)
                let json = try reply.json()
                #expect(json["model_path"] == .string("llama-x"))
                #expect(json["tokenizer_path"] == .string("llama-x"))
                #expect(json["is_generation"] == .bool(true))
                #expect(json["preferred_sampling_params"] == .null)
                #expect(json["weight_version"] == .string("default"))
                #expect(json["has_image_understanding"] == .bool(false))
                #expect(json["has_audio_understanding"] == .bool(false))
                #expect(json["model_type"] == .string("llama"))
                #expect(json["architectures"] == .array([.string("LlamaForCausalLM")]))
            }
        }
    }

    @Test func modelsList() async throws {
        try await withWorker(.init(modelID: "llama-x")) { _, client in
            let reply = try await client.get("/v1/models")
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "application/json")
            let json = try reply.json()
            #expect(json["object"] == .string("list"))
            let model = try #require(json["data"]?.arrayValue?.first)
            #expect(model["id"] == .string("llama-x"))
            #expect(model["object"] == .string("model"))
            #expect(model["owned_by"] == .string("sim-worker"))
            #expect(model["root"] == .string("llama-x"))
            #expect(model["max_model_len"] == .int(4096))
            #expect(model["created"]?.intValue != nil)
        }
    }

    @Test func nameTemplateResolvesPort() async throws {
        try await withWorker(.init(name: "sim-{port}")) { worker, client in
            #expect(worker.name == "sim-\(client.port)")
            #expect(worker.port == client.port)
            let reply = try await client.get("/health")
            #expect(reply.headers.first(name: "X-Sim-Worker") == "sim-\(client.port)")
        }
    }

    // MARK: /generate

    @Test func generateNonStream() async throws {
        try await withWorker(.init(name: "w-gen")) { worker, client in
            let reply = try await client.post(
                "/generate", #"{"text":"one two  three","sampling_params":{"max_new_tokens":5,"temperature":0},"rid":"r-1"}"#
            )
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "application/json")
            #expect(reply.headers.first(name: "X-Sim-Worker") == "w-gen")
            let json = try reply.json()
            #expect(json["text"] == .string("tok0 tok1 tok2 tok3 tok4"))
            #expect(json["output_ids"]?.arrayValue?.count == 5)
            let meta = try #require(json["meta_info"])
            #expect(meta["id"] == .string("r-1"))
            #expect(meta["finish_reason"] == .object(["type": .string("length"), "length": .int(5)]))
            #expect(meta["prompt_tokens"] == .int(3))
            #expect(meta["completion_tokens"] == .int(5))
            #expect(meta["cached_tokens"] == .int(0))
            #expect(meta["e2e_latency"]?.doubleValue != nil)
            #expect(meta["worker"] == .string("w-gen"))
            #expect(worker.requestCount(path: "/generate") == 1)
            #expect(worker.inFlight == 0)
        }
    }

    @Test func generateDefaultsAndInputIDs() async throws {
        try await withWorker { _, client in
            let json = try await client.post("/generate", #"{"input_ids":[5,6,7,8]}"#).json()
            #expect(json["text"] == .string(SimWorker.generatedText(tokenCount: SimWorker.defaultTokens)))
            #expect(json["meta_info"]?["prompt_tokens"] == .int(4))
            #expect(json["meta_info"]?["id"]?.stringValue?.isEmpty == false)

            let capped = try await client.post("/generate", #"{"text":"x","sampling_params":{"max_new_tokens":100000}}"#).json()
            #expect(capped["meta_info"]?["completion_tokens"] == .int(Int64(SimWorker.maxTokens)))

            let missing = try await client.post("/generate", #"{"sampling_params":{}}"#)
            #expect(missing.status == 400)
        }
    }

    @Test func generateStream() async throws {
        try await withWorker(.init(chunkCount: 4, chunkInterval: .milliseconds(2))) { worker, client in
            let reply = try await client.post("/generate", #"{"text":"a b","sampling_params":{"max_new_tokens":10},"stream":true}"#)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "text/event-stream")
            #expect(reply.headers.first(name: "Cache-Control") == "no-cache")
            #expect(reply.headers.first(name: "X-Sim-Worker") != nil)
            let events = reply.events
            #expect(events.count == 5)
            #expect(events.last == "[DONE]")
            let chunks = try events.dropLast().map { try JSONParser.parse($0) }
            // 10 tokens over 4 chunks: 3, 3, 2, 2, text cumulative.
            let expectedTokens = [3, 6, 8, 10]
            for (index, chunk) in chunks.enumerated() {
                let n = expectedTokens[index]
                #expect(chunk["text"] == .string(SimWorker.generatedText(tokenCount: n)))
                #expect(chunk["output_ids"]?.arrayValue?.count == n)
                #expect(chunk["meta_info"]?["completion_tokens"] == .int(Int64(n)))
                #expect(chunk["meta_info"]?["prompt_tokens"] == .int(2))
                if index < chunks.count - 1 {
                    #expect(chunk["meta_info"]?["finish_reason"] == .null)
                } else {
                    #expect(chunk["meta_info"]?["finish_reason"]?["type"] == .string("length"))
                    #expect(chunk["meta_info"]?["finish_reason"]?["length"] == .int(10))
                }
            }
            #expect(worker.inFlight == 0)
        }
    }

    @Test func fewerTokensThanChunks() async throws {
        try await withWorker(.init(chunkCount: 8)) { _, client in
            let reply = try await client.post("/generate", #"{"text":"a","sampling_params":{"max_new_tokens":3},"stream":true}"#)
            #expect(reply.events.count == 4)
        }
        #expect(SimWorker.chunkSizes(tokenCount: 3, chunkCount: 8) == [1, 1, 1])
        #expect(SimWorker.chunkSizes(tokenCount: 16, chunkCount: 8) == [2, 2, 2, 2, 2, 2, 2, 2])
        #expect(SimWorker.chunkSizes(tokenCount: 17, chunkCount: 8) == [3, 2, 2, 2, 2, 2, 2, 2])
        #expect(SimWorker.wordCount("  a\tb\nc  ") == 3)
    }

    // MARK: OpenAI routes

    @Test func chatCompletion() async throws {
        try await withWorker(.init(name: "w-chat", modelID: "m0")) { _, client in
            let body = #"{"model":"gpt-x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there you"}]}],"max_completion_tokens":4}"#
            let reply = try await client.post("/v1/chat/completions", body)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "X-Sim-Worker") == "w-chat")
            let json = try reply.json()
            #expect(json["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
            #expect(json["object"] == .string("chat.completion"))
            #expect(json["created"]?.intValue != nil)
            #expect(json["model"] == .string("gpt-x"))
            #expect(json["system_fingerprint"] == .string("w-chat"))
            let choice = try #require(json["choices"]?.arrayValue?.first)
            #expect(choice["index"] == .int(0))
            #expect(choice["message"] == .object(["role": .string("assistant"), "content": .string("tok0 tok1 tok2 tok3")]))
            #expect(choice["finish_reason"] == .string("length"))
            #expect(json["usage"] == .object(["prompt_tokens": .int(5), "completion_tokens": .int(4), "total_tokens": .int(9)]))

            // Without a model, the worker's own model id is echoed.
            let plain = try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"x"}]}"#).json()
            #expect(plain["model"] == .string("m0"))
            #expect(plain["usage"]?["completion_tokens"] == .int(16))
        }
    }

    @Test func chatCompletionStream() async throws {
        try await withWorker(.init(chunkCount: 3)) { _, client in
            let body = #"{"messages":[{"role":"user","content":"a b c"}],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}"#
            let reply = try await client.post("/v1/chat/completions", body)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type") == "text/event-stream")
            let events = reply.events
            // 3 content chunks, 1 usage chunk, [DONE].
            #expect(events.count == 5)
            #expect(events.last == "[DONE]")
            let chunks = try events.prefix(3).map { try JSONParser.parse($0) }
            var text = ""
            for (index, chunk) in chunks.enumerated() {
                #expect(chunk["object"] == .string("chat.completion.chunk"))
                let choice = try #require(chunk["choices"]?.arrayValue?.first)
                text += choice["delta"]?["content"]?.stringValue ?? ""
                if index == 0 { #expect(choice["delta"]?["role"] == .string("assistant")) }
                #expect(choice["finish_reason"] == (index == 2 ? .string("length") : .null))
            }
            #expect(text == SimWorker.generatedText(tokenCount: 7))
            let usage = try JSONParser.parse(events[3])
            #expect(usage["choices"] == .array([]))
            #expect(usage["usage"]?["total_tokens"] == .int(10))
            // All chunks of one stream share the id.
            #expect(Set(chunks.compactMap { $0["id"]?.stringValue }).count == 1)
        }
    }

    @Test func textCompletion() async throws {
        try await withWorker(.init(chunkCount: 8)) { _, client in
            let json = try await client.post("/v1/completions", #"{"prompt":"one two","max_tokens":3}"#).json()
            #expect(json["id"]?.stringValue?.hasPrefix("cmpl-") == true)
            #expect(json["object"] == .string("text_completion"))
            let choice = try #require(json["choices"]?.arrayValue?.first)
            #expect(choice["text"] == .string("tok0 tok1 tok2"))
            #expect(choice["finish_reason"] == .string("length"))
            #expect(json["usage"]?["prompt_tokens"] == .int(2))

            let stream = try await client.post("/v1/completions", #"{"prompt":[1,2,3],"stream":true}"#)
            let events = stream.events
            #expect(events.count == 9)
            #expect(events.last == "[DONE]")
            let texts = try events.dropLast().map { try JSONParser.parse($0)["choices"]?.arrayValue?.first?["text"]?.stringValue ?? "" }
            #expect(texts.joined() == SimWorker.generatedText(tokenCount: 16))
            let last = try JSONParser.parse(events[7])
            #expect(last["choices"]?.arrayValue?.first?["finish_reason"] == .string("length"))
            #expect(last["object"] == .string("text_completion"))
        }
    }

    @Test func embeddings() async throws {
        try await withWorker { _, client in
            let reply = try await client.post("/v1/embeddings", #"{"input":["hello world","bye"],"model":"e5"}"#)
            #expect(reply.status == 200)
            let json = try reply.json()
            #expect(json["object"] == .string("list"))
            #expect(json["model"] == .string("e5"))
            let data = try #require(json["data"]?.arrayValue)
            #expect(data.count == 2)
            #expect(data[1]["index"] == .int(1))
            #expect(data[0]["object"] == .string("embedding"))
            #expect(data[0]["embedding"]?.arrayValue?.count == SimWorker.embeddingDimensions)
            #expect(json["usage"]?["prompt_tokens"] == .int(3))

            // Deterministic.
            let again = try await client.post("/v1/embeddings", #"{"input":"hello world"}"#).json()
            #expect(again["data"]?.arrayValue?.first?["embedding"] == data[0]["embedding"])

            #expect(try await client.post("/v1/embeddings", #"{"model":"e5"}"#).status == 400)
        }
    }

    @Test func rerank() async throws {
        try await withWorker(.init(runtime: .openai)) { _, client in
            let body = #"{"query":"red apple","documents":["green pear","red apple pie","an apple"]}"#
            let reply = try await client.post("/v1/rerank", body)
            #expect(reply.status == 200)
            let results = try #require(try reply.json()["results"]?.arrayValue)
            #expect(results.map { $0["index"] } == [.int(1), .int(2), .int(0)])
            let scores = results.compactMap { $0["relevance_score"]?.doubleValue }
            #expect(scores == scores.sorted(by: >))
            #expect(results[0]["document"]?["text"] == .string("red apple pie"))

            let top = try await client.post("/v1/rerank", #"{"query":"apple","documents":["a","apple"],"top_n":1}"#).json()
            #expect(top["results"]?.arrayValue?.count == 1)
            #expect(try await client.post("/v1/rerank", #"{"documents":[]}"#).status == 400)
        }
    }

    // MARK: Operations

    @Test func loadAndFlushCache() async throws {
        try await withWorker { _, client in
            let load = try await client.get("/get_load")
            #expect(load.status == 200)
            let entry = try #require(try load.json().arrayValue?.first)
            #expect(entry["dp_rank"] == .int(0))
            #expect(entry["num_reqs"] == .int(0))
            #expect(entry["num_waiting_reqs"] == .int(0))
            #expect(entry["num_tokens"] == .int(0))

            for method in [HTTPMethod.POST, .GET] {
                let flush = try await client.send(method, "/flush_cache")
                #expect(flush.status == 200)
                #expect(flush.body == "Cache flushed.\n")
                #expect(flush.headers.first(name: "X-Sim-Worker") != nil)
            }
        }
    }

    @Test func loadCountsInFlightStreams() async throws {
        try await withWorker(.init(chunkCount: 10, chunkInterval: .milliseconds(100))) { worker, client in
            let request = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n{\"text\":\"x\",\"stream\":true}"
            try await withRawConnection(port: client.port, write: request) { inbound in
                var iterator = inbound.makeAsyncIterator()
                var seen = ""
                while !seen.contains("data: "), let chunk = try await iterator.next() {
                    seen += String(buffer: chunk)
                }
                #expect(worker.inFlight == 1)
                let load = try await client.get("/get_load").json()
                #expect(load.arrayValue?.first?["num_reqs"] == .int(1))
                #expect(load.arrayValue?.first?["num_tokens"] == .int(16))
            }
            // The client went away mid-stream: the worker stops and releases the slot.
            #expect(try await eventually { worker.inFlight == 0 })
            #expect(try await eventually { worker.openConnectionCount == 1 })  // only the AsyncHTTPClient one
        }
    }

    // MARK: Errors

    @Test func errorReplies() async throws {
        try await withWorker(.init(name: "w-err")) { _, client in
            let bad = try await client.post("/v1/chat/completions", #"{"messages": [}"#)
            #expect(bad.status == 400)
            #expect(bad.headers.first(name: "X-Sim-Worker") == "w-err")
            #expect(bad.headers.first(name: "Content-Type") == "application/json")
            let error = try #require(try bad.json()["error"])
            #expect(error["type"] == .string("invalid_request_error"))
            #expect(error["code"] == .int(400))
            #expect(error["message"]?.stringValue?.isEmpty == false)

            #expect(try await client.post("/generate", "[1,2]").status == 400)
            #expect(try await client.post("/generate", "").status == 400)
            #expect(try await client.post("/v1/completions", #"{"prompt":"x","max_tokens":-1}"#).status == 400)

            let missing = try await client.get("/nope")
            #expect(missing.status == 404)
            #expect(missing.headers.first(name: "X-Sim-Worker") == "w-err")
            #expect(try missing.json()["error"]?["code"] == .int(404))

            let wrongMethod = try await client.send(.DELETE, "/v1/models")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.headers.first(name: "Allow") == "GET")
            #expect(wrongMethod.headers.first(name: "X-Sim-Worker") == "w-err")
            #expect(try await client.get("/generate").headers.first(name: "Allow") == "POST, PUT")

            let big = String(repeating: "a", count: SimWorker.maxBodyBytes + 1)
            let tooLarge = try await client.post("/v1/completions", big)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.headers.first(name: "X-Sim-Worker") == "w-err")
            // The connection still serves requests afterwards.
            #expect(try await client.get("/health").status == 200)
        }
    }

    @Test func openAIRuntimeHidesSGLangRoutes() async throws {
        try await withWorker(.init(name: "w-oai", runtime: .openai)) { _, client in
            for path in ["/server_info", "/get_server_info", "/model_info", "/get_model_info", "/get_load", "/flush_cache"] {
                let reply = try await client.get(path)
                #expect(reply.status == 404, "\(path)")
                #expect(reply.headers.first(name: "X-Sim-Worker") == "w-oai")
            }
            #expect(try await client.post("/generate", #"{"text":"x"}"#).status == 404)
            #expect(try await client.get("/health").status == 200)
            #expect(try await client.get("/v1/models").status == 200)
            #expect(try await client.post("/v1/completions", #"{"prompt":"x"}"#).status == 200)
            #expect(try await client.post("/v1/chat/completions", #"{"messages":[{"role":"user","content":"x"}]}"#).status == 200)
            #expect(try await client.post("/v1/embeddings", #"{"input":"x"}"#).status == 200)
        }
    }

    // MARK: Simulated conditions

    @Test func startupDelayAnswers503ThenReady() async throws {
        // The delay is long enough that a loaded machine still asks before it ends; the
        // ready answer is then awaited (bounded), not slept for.
        let started = ContinuousClock.now
        try await withWorker(.init(startupDelay: .seconds(6))) { _, client in
            let loading = try await client.get("/health")
            try #require(ContinuousClock.now - started < .seconds(6), "the first request came after the delay")
            #expect(loading.status == 503)
            #expect(loading.headers.first(name: "Content-Type") == "application/json")
            #expect(try loading.json() == .object(["error": .object(["message": .string("Loading model"), "code": .int(503)])]))
            var ready = false
            while !ready, ContinuousClock.now - started < .seconds(30) {
                ready = try await client.get("/health").status == 200
                if !ready { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(ready)
            #expect(ContinuousClock.now - started >= .seconds(6))
        }
    }

    @Test func failureRate() async throws {
        try await withWorker(.init(name: "w-fail", failureRate: 1)) { worker, client in
            for path in ["/generate", "/v1/completions"] {
                let reply = try await client.post(path, #"{"text":"x","prompt":"x"}"#)
                #expect(reply.status == 500)
                #expect(reply.headers.first(name: "X-Sim-Worker") == "w-fail")
                #expect(try reply.json()["error"]?["code"] == .int(500))
            }
            #expect(try await client.get("/health").status == 200)
            #expect(worker.inFlight == 0)
            worker.setFailureRate(0)
            #expect(try await client.post("/generate", #"{"text":"x"}"#).status == 200)
        }
    }

    @Test func setHealthyFlipsHealth() async throws {
        try await withWorker { worker, client in
            worker.setHealthy(false)
            let down = try await client.get("/health")
            #expect(down.status == 503)
            #expect(try down.json()["error"]?["code"] == .int(503))
            worker.setHealthy(true)
            #expect(try await client.get("/health").status == 200)
        }
    }

    @Test func latencyDelaysReplies() async throws {
        try await withWorker { worker, client in
            worker.setLatency(.milliseconds(150))
            let clock = ContinuousClock()
            let start = clock.now
            let delayed = try await client.post("/v1/completions", #"{"prompt":"x"}"#)
            #expect(delayed.status == 200)
            #expect(clock.now - start >= .milliseconds(150))
            // Health is not delayed.
            worker.setLatency(.seconds(30))
            let health = try await client.get("/health")
            #expect(health.status == 200)
        }
    }

    // MARK: Connections

    @Test func keepAliveServesManySequentialRequests() async throws {
        try await withWorker { worker, client in
            for i in 0..<100 {
                let reply = i.isMultiple(of: 2)
                    ? try await client.get("/v1/models")
                    : try await client.post("/v1/completions", #"{"prompt":"x","max_tokens":2}"#)
                #expect(reply.status == 200)
            }
            #expect(worker.requestCount(path: "/v1/models") == 50)
            #expect(worker.requestCount(path: "/v1/completions") == 50)
            #expect(worker.totalRequestCount == 100)
            #expect(worker.connectionCount == 1)
        }
    }

    @Test func pipelinedRequestsAnswerInOrder() async throws {
        try await withWorker(.init(latency: .milliseconds(20))) { _, client in
            let body = #"{"prompt":"a","max_tokens":2}"#
            let requests =
                "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let received = try await withRawConnection(port: client.port, write: requests) { inbound in
                var text = ""
                for try await chunk in inbound { text += String(buffer: chunk) }
                return text
            }
            // Bodies are not newline-terminated, so count status lines by their text.
            #expect(received.ranges(of: "HTTP/1.1 200 OK\r\n").count == 3)
            let completion = try #require(received.firstRange(of: "text_completion"))
            let models = try #require(received.firstRange(of: "\"object\":\"list\""))
            #expect(completion.lowerBound < models.lowerBound)
            #expect(received.contains("Connection: close"))
        }
    }

    // MARK: Lifecycle

    @Test func shutdownIsIdempotentAndClosesConnections() async throws {
        let worker = SimWorker(configuration: .init(chunkCount: 100, chunkInterval: .milliseconds(50)))
        let port = try await worker.start()
        #expect(try await worker.start() == port)
        let request = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n{\"text\":\"x\",\"stream\":true}"
        try await withRawConnection(port: port, write: request) { inbound in
            var iterator = inbound.makeAsyncIterator()
            _ = try await iterator.next()
            try await worker.shutdown()
            // The server closed the stream: the rest of the inbound sequence ends.
            while (try? await iterator.next()) != nil {}
        }
        try await worker.shutdown()
        #expect(worker.inFlight == 0)
        #expect(worker.openConnectionCount == 0)
        await #expect(throws: SimWorker.LifecycleError.alreadyShutDown) { try await worker.start() }
    }

    @Test func runStopsOnCancellation() async throws {
        let worker = SimWorker()
        let task = Task { try await worker.run() }
        #expect(try await eventually { worker.port != nil })
        let port = try #require(worker.port)
        let client = TestClient(port: port)
        #expect(try await client.get("/health").status == 200)
        try await client.http.shutdown()
        task.cancel()
        try await task.value
        await #expect(throws: SimWorker.LifecycleError.alreadyShutDown) { try await worker.start() }
    }
}
