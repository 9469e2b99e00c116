import GatewayCore
import GatewayJSON
import NIOCore

/// SGLang's `/generate` for workers that only speak OpenAI (llama.cpp, vLLM …):
/// the request becomes a `/v1/completions` request, the answer (whole or
/// streamed) becomes SGLang's `{text, output_ids?, meta_info}` shape.
public enum GenerateTranslation {
    /// `sampling_params` members and the completions members they become.
    static let renames: [(String, String)] = [
        ("max_new_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
        ("min_p", "min_p"), ("stop", "stop"), ("seed", "seed"), ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"), ("repetition_penalty", "repetition_penalty"), ("n", "n"),
        ("ignore_eos", "ignore_eos"),
    ]
    private static let topKeys: Set<String> = ["text", "input_ids", "input_embeds", "sampling_params", "stream"]
    private static let samplingKeys = Set(renames.map(\.0))

    /// The `/v1/completions` body for a `/generate` body. Values are copied as the
    /// client wrote them (an integer seed wider than 64 bits reaches the worker unchanged).
    public static func completionsBody(fromGenerate body: ByteBuffer, model: String) throws(GatewayError) -> ByteBuffer {
        let result: Result<[UInt8], GatewayError> = body.withUnsafeReadableBytes { bytes in
            Result { () throws(GatewayError) in try completionsBody(bytes, model: model) }
        }
        return ByteBuffer(bytes: try result.get())
    }

    private static func completionsBody(_ bytes: UnsafeRawBufferPointer, model: String) throws(GatewayError) -> [UInt8] {
        let found: [String: Range<Int>]
        do throws(JSONParseError) {
            found = try JSONFieldScanner.scan(bytes, keys: topKeys)
        } catch {
            throw GatewayError.openAI(400, "invalid_json", "request body is not valid JSON: \(error.description)")
        }
        func value(_ key: String) -> JSONValue? {
            guard let range = found[key] else { return nil }
            let value = try? JSONFieldScanner.value(in: bytes, at: range)
            return value == .null ? nil : value
        }
        func raw(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[range]) }

        var out = JSONWriter(capacity: bytes.count + 64)
        out.beginObject()
        out.field("model", model)
        if let text = value("text") {
            guard text.stringValue != nil || text.arrayValue?.allSatisfy({ $0.stringValue != nil }) == true else {
                throw GatewayError.openAI(400, "invalid_field", "'text' must be a string or an array of strings")
            }
            out.key("prompt")
            out.raw(raw(found["text"]!))
        } else if let ids = value("input_ids") {
            guard ids.arrayValue?.allSatisfy({ $0.intValue != nil }) == true else {
                throw GatewayError.openAI(400, "invalid_field", "'input_ids' must be an array of integers for an OpenAI-compatible worker")
            }
            out.key("prompt")
            out.raw(raw(found["input_ids"]!))
        } else {
            throw GatewayError.openAI(400, "unsupported_input", "this worker speaks OpenAI only: give 'text' or 'input_ids' (not 'input_embeds')")
        }
        if let range = found["sampling_params"], value("sampling_params") != nil {
            let inner = raw(range)
            let sampling: [String: Range<Int>]
            do throws(JSONParseError) {
                sampling = try JSONFieldScanner.scan(inner, keys: samplingKeys)
            } catch {
                throw GatewayError.openAI(400, "invalid_field", "'sampling_params' must be an object")
            }
            for (from, to) in renames {
                guard let member = sampling[from] else { continue }
                let text = UnsafeRawBufferPointer(rebasing: inner[member])
                if text.elementsEqual("null".utf8) { continue }
                out.key(to)
                out.raw(text)
            }
        }
        if value("stream")?.boolValue == true {
            out.field("stream", true)
            out.key("stream_options")
            out.beginObject()
            out.field("include_usage", true)
            out.endObject()
        }
        out.endObject()
        return out.bytes
    }

    /// SGLang's finish_reason object for an OpenAI finish_reason.
    static func finishReason(_ reason: JSONValue?, completionTokens: Int) -> JSONValue {
        switch reason?.stringValue {
        case "length": return .object(["type": .string("length"), "length": .int(Int64(completionTokens))])
        case "stop": return .object(["type": .string("stop"), "matched": .null])
        case let other?: return .object(["type": .string(other)])
        case nil: return .null
        }
    }

    /// A whole `/v1/completions` answer as a `/generate` answer.
    public static func generateBody(fromCompletions body: ByteBuffer, requestID: String, latency: Double) -> ByteBuffer? {
        guard let answer = try? JSONParser.parse(body.readableBytesView).objectValue,
            let choice = answer["choices"]?.arrayValue?.first
        else { return nil }
        let usage = answer["usage"]
        let completion = Int(usage?["completion_tokens"]?.intValue ?? 0)
        var json = JSONWriter()
        json.beginObject()
        json.field("text", choice["text"]?.stringValue ?? "")
        json.key("meta_info")
        json.beginObject()
        json.field("id", answer["id"]?.stringValue ?? requestID)
        json.field("finish_reason", finishReason(choice["finish_reason"], completionTokens: completion))
        json.field("prompt_tokens", usage?["prompt_tokens"]?.intValue ?? 0)
        json.field("completion_tokens", completion)
        json.field("cached_tokens", usage?["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0)
        json.field("e2e_latency", latency)
        json.endObject()
        json.endObject()
        return ByteBuffer(bytes: json.bytes)
    }

    /// Turns the events of a `/v1/completions` stream into `/generate` events
    /// (cumulative text, as SGLang streams it).
    public struct StreamTranslator: Sendable {
        let requestID: String
        private var text = ""
        private var id: String?
        private var chunks = 0
        private var promptTokens = 0
        private var cachedTokens: Int?
        private var completionTokens: Int?
        /// The finishing event is held until usage (sent after it) is known.
        private var finish: JSONValue?
        public private(set) var isDone = false

        public init(requestID: String) {
            self.requestID = requestID
        }

        /// Translates one worker event; `emit` receives the events for the client.
        public mutating func translate(_ event: ServerSentEvent, _ emit: (ServerSentEvent) throws -> Void) rethrows {
            if event.isDone {
                if let final = takeFinal() { try emit(final) }
                try emit(.done)
                isDone = true
                return
            }
            guard let object = try? JSONParser.parse(event.data.readableBytesView).objectValue else { return }
            if object["error"] != nil {
                // Worker errors are relayed as they are.
                try emit(event)
                return
            }
            id = id ?? object["id"]?.stringValue
            if let usage = object["usage"], usage != .null {
                promptTokens = Int(usage["prompt_tokens"]?.intValue ?? 0)
                completionTokens = usage["completion_tokens"]?.intValue.map { Int($0) }
                cachedTokens = usage["prompt_tokens_details"]?["cached_tokens"]?.intValue.map { Int($0) }
            }
            guard let choice = object["choices"]?.arrayValue?.first else { return }
            let delta = choice["text"]?.stringValue ?? ""
            text += delta
            if !delta.isEmpty { chunks += 1 }
            if let reason = choice["finish_reason"], reason != .null {
                finish = reason
            } else if !delta.isEmpty {
                try emit(makeEvent(finishReason: .null))
            }
        }

        /// The worker's stream ended: a held final event and `[DONE]`, unless sent.
        public mutating func finish(_ emit: (ServerSentEvent) throws -> Void) rethrows {
            guard !isDone else { return }
            if let final = takeFinal() { try emit(final) }
            try emit(.done)
            isDone = true
        }

        private mutating func takeFinal() -> ServerSentEvent? {
            guard let reason = finish else { return nil }
            finish = nil
            return makeEvent(finishReason: GenerateTranslation.finishReason(reason, completionTokens: completionTokens ?? chunks))
        }

        private func makeEvent(finishReason: JSONValue) -> ServerSentEvent {
            var json = JSONWriter()
            json.beginObject()
            json.field("text", text)
            json.key("meta_info")
            json.beginObject()
            json.field("id", id ?? requestID)
            json.field("finish_reason", finishReason)
            json.field("prompt_tokens", promptTokens)
            json.field("completion_tokens", finishReason == .null ? chunks : (completionTokens ?? chunks))
            if let cachedTokens { json.field("cached_tokens", cachedTokens) }
            json.endObject()
            json.endObject()
            return ServerSentEvent(data: json.bytes)
        }
    }
}
