import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Streamed answers relayed as they arrive; disconnects and dying workers;
/// `/generate` translated for OpenAI-only workers.
@Suite("Routing streams and translation")
struct RoutingStreamingTests {
    @Test("The first chunk reaches the client before the worker finishes; data: [DONE] arrives")
    func firstChunkEarly() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 5
            c.chunkInterval = .milliseconds(200)
        }) { workers, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let recording = try await gw.stream(#"{"prompt": "tell me a story", "stream": true, "max_tokens": 10}"#)
                #expect(recording.status == 200)
                #expect(recording.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
                #expect(recording.error == nil)
                let first = try #require(recording.firstChunkAt)
                let total = recording.endedAt
                // The worker takes 4 × 200 ms between its first and last chunk.
                #expect(total >= .milliseconds(700), "the stream ended after \(total)")
                // Told by the gap, not by the start: a loaded machine may delay the whole stream,
                // but a relay that buffered would deliver the first chunk at the end.
                #expect(total - first >= .milliseconds(500), "first chunk at \(first), end at \(total)")
                print("streaming: first chunk after \(first), stream ended after \(total), gap \(total - first)")
                #expect(recording.chunks.count >= 3, "chunks were not relayed one by one: \(recording.chunks.count)")

                let events = recording.events
                #expect(events.last == "[DONE]")
                let json = recording.jsonEvents
                #expect(json.count == 5, "\(events)")
                let text = json.compactMap { $0["choices"]?[0]?["text"]?.stringValue }.joined()
                #expect(text == SimWorker.generatedText(tokenCount: 10))
                #expect(json.last?["choices"]?[0]?["finish_reason"] == .string("length"))
                #expect(recording.simWorker == workers[0].name)
            }
        }
    }

    @Test("A client that disconnects mid-stream cancels the upstream request")
    func clientDisconnectCancelsUpstream() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 20
            c.chunkInterval = .milliseconds(500)
        }) { workers, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                // 20 chunks, 500 ms apart: about 9.5 s if nobody hangs up.
                let stream = try await gw.openStream(#"{"prompt": "a long answer", "stream": true, "max_tokens": 40}"#)
                try await stream.waitForChunks(1)
                #expect(workers[0].inFlight == 1)
                #expect(try await gw.load(of: id) == 1)

                let hungUp = ContinuousClock.now
                await stream.cancel()
                try await eventually("the worker's request ends", timeout: .seconds(3)) { workers[0].inFlight == 0 }
                let upstreamGone = ContinuousClock.now - hungUp
                try await eventually("the gateway's load returns to 0", timeout: .seconds(3)) { try await gw.load(of: id) == 0 }
                print("client disconnect: upstream request ended \(upstreamGone) after the client hung up")
                #expect(upstreamGone < .seconds(3))
                #expect(stream.chunkCount < 20)
            }
        }
    }

    @Test("A worker dying mid-stream ends the client's stream with an SSE error event and [DONE], not a hang")
    func workerDiesMidStream() async throws {
        try await withSimWorkers(1, { _, c in
            c.chunkCount = 20
            c.chunkInterval = .milliseconds(500)
        }) { workers, urls in
            try await TestGateway.with({ $0.healthCheck.interval = .seconds(60) }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let stream = try await gw.openStream(#"{"prompt": "a long answer", "stream": true, "max_tokens": 40}"#)
                try await stream.waitForChunks(1)
                let killed = ContinuousClock.now
                try await workers[0].shutdown()
                let recording = try await stream.finish(timeout: .seconds(5))
                print("worker death: client stream ended \(ContinuousClock.now - killed) after the worker stopped")
                #expect(recording.status == 200)
                let events = recording.events
                #expect(events.last == "[DONE]", "\(events)")
                let error = try #require(recording.jsonEvents.last?["error"], "no error event: \(events)")
                #expect(error["code"] == .string("upstream_error"))
                #expect(error["message"]?.stringValue?.isEmpty == false)
                // The events before it were the worker's own chunks.
                #expect(recording.jsonEvents.dropLast().allSatisfy { $0["choices"] != nil })
                #expect(recording.jsonEvents.count < 21)
            }
        }
    }

    @Test("/generate to an OpenAI-only worker is translated (whole answer)")
    func generateTranslatedWhole() async throws {
        try await withSimWorkers(1, { _, c in c.runtime = .openai }) { workers, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addHealthyWorkers(urls)[0]
                #expect(try await gw.worker(id)["runtime_type"] == .string("openai"))
                let response = try await gw.post("/generate", #"{"text": "the quick brown fox", "sampling_params": {"max_new_tokens": 8}}"#)
                #expect(response.status == 200, "\(response.text)")
                let json = response.json
                #expect(json["text"] == .string(SimWorker.generatedText(tokenCount: 8)))
                let meta = try #require(json["meta_info"])
                #expect(meta["id"]?.stringValue?.isEmpty == false)
                #expect(meta["finish_reason"]?["type"] == .string("length"))
                #expect(meta["finish_reason"]?["length"] == .int(8))
                #expect(meta["prompt_tokens"] == .int(4))
                #expect(meta["completion_tokens"] == .int(8))
                // It went to the worker as /v1/completions.
                #expect(workers[0].requestCount(path: "/v1/completions") == 1)
                #expect(workers[0].requestCount(path: "/generate") == 0)
            }
        }
    }

    @Test("/generate streamed to an OpenAI-only worker gives cumulative text events and [DONE]")
    func generateTranslatedStream() async throws {
        try await withSimWorkers(1, { _, c in
            c.runtime = .openai
            c.chunkCount = 4
        }) { workers, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let recording = try await gw.stream(#"{"text": "the quick brown fox", "stream": true, "sampling_params": {"max_new_tokens": 8}}"#, path: "/generate")
                #expect(recording.status == 200)
                let events = recording.events
                #expect(events.last == "[DONE]", "\(events)")
                let texts = recording.jsonEvents.compactMap { $0["text"]?.stringValue }
                #expect(texts.count == 4, "\(events)")
                for (previous, next) in zip(texts, texts.dropFirst()) {
                    #expect(next.hasPrefix(previous) && next.count > previous.count, "not cumulative: \(previous) → \(next)")
                }
                #expect(texts.last == SimWorker.generatedText(tokenCount: 8))
                let last = try #require(recording.jsonEvents.last)
                #expect(last["meta_info"]?["finish_reason"]?["type"] == .string("length"))
                #expect(last["meta_info"]?["completion_tokens"] == .int(8))
                #expect(last["meta_info"]?["prompt_tokens"] == .int(4))
                #expect(recording.jsonEvents.dropLast().allSatisfy { $0["meta_info"]?["finish_reason"] == .null })
                #expect(workers[0].requestCount(path: "/v1/completions") == 1)
            }
        }
    }

    @Test("chat/completions and completions go to either runtime")
    func openAIRoutesToBothRuntimes() async throws {
        try await withSimWorkers(2, { index, c in c.runtime = index == 0 ? .sglang : .openai }) { workers, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let chat = try await gw.distribution(count: 4, path: "/v1/chat/completions") { _ in
                    #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}"#
                }
                #expect(chat.counts == [workers[0].name: 2, workers[1].name: 2], "\(chat.counts)")
                let completions = try await gw.distribution(count: 4)
                #expect(completions.counts == [workers[0].name: 2, workers[1].name: 2], "\(completions.counts)")
                // /generate too: passed through to SGLang (output_ids), translated for OpenAI.
                var shapes: [String: Bool] = [:]
                for _ in 0..<2 {
                    let response = try await gw.post("/generate", #"{"text": "hi there", "sampling_params": {"max_new_tokens": 3}}"#)
                    #expect(response.status == 200)
                    #expect(response.json["text"] == .string(SimWorker.generatedText(tokenCount: 3)))
                    shapes[response.simWorker ?? "?"] = response.json["output_ids"] != nil
                }
                #expect(shapes == [workers[0].name: true, workers[1].name: false])
            }
        }
    }
}
