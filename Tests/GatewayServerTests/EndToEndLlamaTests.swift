import AsyncHTTPClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GatewayCore
import GatewayJSON
import NIOCore
import NIOHTTP1
import Testing

@testable import GatewayServer

/// Two real llama.cpp servers (SmolLM2-135M) behind the gateway. Runs when
/// LLAMA_SERVER_BIN and LLAMA_MODEL are set (scripts/test.sh installs llama.cpp and
/// sets them; `scripts/real-worker.sh install` prints them). Asserts on shapes, not
/// on generated text.
@Suite(
    "End to end with llama.cpp",
    .enabled(if: LlamaServers.configured, "set LLAMA_SERVER_BIN and LLAMA_MODEL (scripts/real-worker.sh install)"),
    .serialized
)
struct EndToEndLlamaTests {
    @Test("Chat (plain and streamed), completions, /generate translation and /v1/models through the gateway")
    func throughTheGateway() async throws {
        try await LlamaServers.with(count: 2) { urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                var ids: [String] = []
                for url in urls {
                    let id = try await gw.addWorker(url: url)
                    try await gw.waitUntilHealthy(id, timeout: .seconds(60))
                    ids.append(id)
                }
                let info = try await gw.worker(ids[0])
                #expect(info["runtime_type"] == .string("openai"))
                #expect(info["model_id"] == .string(LlamaServers.alias))

                // /v1/models from the registry.
                let models = try await gw.get("/v1/models").json
                #expect(models["object"] == .string("list"))
                #expect(models["data"]?.arrayValue?.count == 1)
                #expect(models["data"]?[0]?["id"] == .string(LlamaServers.alias))
                #expect(models["data"]?[0]?["workers"] == .int(2))

                // Chat, twice: round robin reaches both servers.
                var served = Set<String>()
                for _ in 0..<2 {
                    let chat = try await gw.post(
                        "/v1/chat/completions",
                        #"{"model": "\#(LlamaServers.alias)", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}"#
                    )
                    #expect(chat.status == 200, "\(chat.text)")
                    #expect(chat.json["object"] == .string("chat.completion"))
                    #expect(chat.json["choices"]?[0]?["message"]?["content"]?.stringValue != nil)
                    #expect((chat.json["usage"]?["completion_tokens"]?.intValue ?? 0) > 0)
                    served.insert(chat.headers.first(name: "X-Gateway-Worker-Id") ?? "")
                }
                #expect(served == Set(ids))

                // Streamed chat: chunks with deltas, then [DONE].
                let stream = try await gw.post(
                    "/v1/chat/completions",
                    #"{"messages": [{"role": "user", "content": "Count to three."}], "max_tokens": 8, "stream": true}"#
                )
                #expect(stream.status == 200)
                #expect(stream.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
                let events = sseData(stream.text)
                #expect(events.last == "[DONE]")
                let chunks = events.dropLast().compactMap { try? JSONParser.parse($0) }
                #expect(!chunks.isEmpty)
                #expect(chunks.allSatisfy { $0["object"] == .string("chat.completion.chunk") })
                #expect(chunks.contains { $0["choices"]?[0]?["delta"]?["content"]?.stringValue != nil })

                // Completions.
                let completion = try await gw.post("/v1/completions", #"{"prompt": "The sky is", "max_tokens": 8}"#)
                #expect(completion.status == 200, "\(completion.text)")
                #expect(completion.json["choices"]?[0]?["text"]?.stringValue != nil)

                // /generate, translated to /v1/completions and back into SGLang's shape.
                let generate = try await gw.post("/generate", #"{"text": "Once upon a time", "sampling_params": {"max_new_tokens": 8, "temperature": 0}}"#)
                #expect(generate.status == 200, "\(generate.text)")
                #expect(generate.json["text"]?.stringValue != nil)
                #expect(generate.json["meta_info"]?["finish_reason"]?["type"]?.stringValue != nil)
                #expect((generate.json["meta_info"]?["completion_tokens"]?.intValue ?? 0) > 0)
                #expect((generate.json["meta_info"]?["prompt_tokens"]?.intValue ?? 0) > 0)

                // Streamed /generate: cumulative text, then [DONE].
                let generateStream = try await gw.post("/generate", #"{"text": "Once upon a time", "stream": true, "sampling_params": {"max_new_tokens": 6}}"#)
                #expect(generateStream.status == 200)
                let generateEvents = sseData(generateStream.text)
                #expect(generateEvents.last == "[DONE]")
                let texts = generateEvents.dropLast().compactMap { try? JSONParser.parse($0)["text"]?.stringValue }
                #expect(!texts.isEmpty)
                for (previous, next) in zip(texts, texts.dropFirst()) {
                    #expect(next.hasPrefix(previous), "SGLang streams cumulative text")
                }
                let last = try JSONParser.parse(try #require(generateEvents.dropLast().last))
                #expect(last["meta_info"]?["finish_reason"]?["type"]?.stringValue != nil)
            }
        }
    }
}

/// The data of each SSE event in `text`.
func sseData(_ text: String) -> [String] {
    text.components(separatedBy: "\n\n").compactMap { event in
        let lines = event.split(separator: "\n").filter { $0.hasPrefix("data:") }
        guard !lines.isEmpty else { return nil }
        return lines.map { $0.dropFirst(5).trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
    }
}

/// llama.cpp servers started for a test and stopped after it.
enum LlamaServers {
    static let alias = "SmolLM2-135M-Instruct"
    static var binary: String? { ProcessInfo.processInfo.environment["LLAMA_SERVER_BIN"] }
    static var model: String? { ProcessInfo.processInfo.environment["LLAMA_MODEL"] }
    /// scripts/test.sh sets MODEL_GATEWAY_REQUIRE_E2E: there the suite must run, so a
    /// missing server fails the suite (`with` requires both), never skips it.
    static var configured: Bool { (binary != nil && model != nil) || required }
    static var required: Bool { ProcessInfo.processInfo.environment["MODEL_GATEWAY_REQUIRE_E2E"] == "1" }

    static func with<T>(count: Int, _ body: ([String]) async throws -> T) async throws -> T {
        let binary = try #require(binary)
        let model = try #require(model)
        var processes: [Process] = []
        defer {
            // llama-server may take its time over SIGTERM; the test does not wait for that.
            for process in processes where process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
        }
        var urls: [String] = []
        for _ in 0..<count {
            let port = try await closedPort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "-m", model, "--alias", alias, "--host", "127.0.0.1", "--port", String(port), "-t", "1", "-np", "2", "-c", "4096",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            processes.append(process)
            urls.append("http://127.0.0.1:\(port)")
        }
        return try await body(urls)
    }
}
