import GatewayCore
import GatewayJSON
import GatewayOpenAI
import GatewayWire
import NIOCore
import Testing

@Suite("OpenAI and SGLang shapes")
struct TranslationTests {
    @Test("/generate becomes /v1/completions with values copied as written (a 64-bit-overflowing seed unchanged)")
    func completionsBody() throws {
        let body = #"{"text": "Hi", "stream": true, "sampling_params": {"max_new_tokens": 8, "seed": 18446744073709551615, "temperature": 0.50, "unknown": 1}}"#
        let out = try GenerateTranslation.completionsBody(fromGenerate: ByteBuffer(string: body), model: "m")
        let text = String(buffer: out)
        #expect(text.contains(#""seed":18446744073709551615"#))
        #expect(text.contains(#""temperature":0.50"#))
        #expect(text.contains(#""max_tokens":8"#))
        #expect(!text.contains("unknown"))
        let json = try JSONParser.parse(out.readableBytesView)
        #expect(json["model"] == .string("m"))
        #expect(json["prompt"] == .string("Hi"))
        #expect(json["stream_options"]?["include_usage"] == .bool(true))
    }

    @Test("Bodies the translation cannot carry are refused with the field's name")
    func refusals() {
        for (body, code) in [
            (#"{"input_embeds": [[0.1]]}"#, "unsupported_input"),
            (#"{"text": 5}"#, "invalid_field"),
            (#"{"input_ids": ["a"]}"#, "invalid_field"),
            (#"{"text": "x", "sampling_params": 3}"#, "invalid_field"),
            ("not json", "invalid_json"),
        ] {
            #expect(throws: GatewayError.self) { try GenerateTranslation.completionsBody(fromGenerate: ByteBuffer(string: body), model: "m") }
            do {
                _ = try GenerateTranslation.completionsBody(fromGenerate: ByteBuffer(string: body), model: "m")
            } catch {
                #expect(error.code.openAI == code, "\(body)")
            }
        }
    }

    @Test("A streamed completion becomes cumulative /generate events, the final one after usage")
    func streamTranslation() throws {
        var translator = GenerateTranslation.StreamTranslator(requestID: "r")
        var out: [ServerSentEvent] = []
        for data in [
            #"{"id":"c1","choices":[{"text":"Hel","finish_reason":null}]}"#,
            #"{"id":"c1","choices":[{"text":"lo","finish_reason":"length"}]}"#,
            #"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}"#,
            "[DONE]",
        ] {
            translator.translate(ServerSentEvent(data: ByteBuffer(string: data))) { out.append($0) }
        }
        #expect(out.count == 3)
        let first = try JSONParser.parse(out[0].data.readableBytesView)
        #expect(first["text"] == .string("Hel"))
        let final = try JSONParser.parse(out[1].data.readableBytesView)
        #expect(final["text"] == .string("Hello"))
        #expect(final["meta_info"]?["finish_reason"]?["type"] == .string("length"))
        #expect(final["meta_info"]?["completion_tokens"] == .int(2))
        #expect(final["meta_info"]?["cached_tokens"] == .int(1))
        #expect(out[2].isDone)
        #expect(translator.isDone)
    }

    @Test("A typed generate builds the body its REST twin would send; no input is missing_required_field")
    func typedGenerate() throws {
        let request = Wire.GenerateRequest(
            model: "m", input: .chat([Wire.ChatMessage(role: "", content: "Hi")]), sampling: .init(maxTokens: 4, seed: 7), stream: true
        )
        #expect(try OpenAIGenerate.route(for: request) == .chatCompletions)
        let json = try JSONParser.parse(try OpenAIGenerate.body(for: request).readableBytesView)
        #expect(json["messages"]?[0]?["role"] == .string("user"))
        #expect(json["max_tokens"] == .int(4))
        #expect(json["seed"] == .int(7))
        #expect(json["stream"] == .bool(true))
        do {
            _ = try OpenAIGenerate.route(for: Wire.GenerateRequest())
            Issue.record("a generate without input was accepted")
        } catch {
            #expect(error.code.openAI == "missing_required_field")
            #expect(error.status == 400)
        }
    }

    @Test("Stream events are read for their text, finish reason, usage and model; an error event throws its error")
    func streamReader() throws {
        var reader = OpenAIGenerate.StreamReader()
        #expect(try reader.text(of: ServerSentEvent(data: ByteBuffer(string: #"{"model":"m","choices":[{"delta":{"content":"a"}}]}"#))) == "a")
        #expect(try reader.text(of: ServerSentEvent(data: ByteBuffer(string: #"{"choices":[{"text":"b","finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#))) == "b")
        #expect(reader.model == "m")
        #expect(reader.finishReason == "stop")
        #expect(reader.usage?.totalTokens == 3)
        #expect(try reader.text(of: .done) == "")
        #expect(throws: GatewayError.self) {
            try reader.text(of: ServerSentEvent(data: ByteBuffer(string: #"{"error":{"message":"boom","code":"upstream_error"}}"#)))
        }
    }
}
