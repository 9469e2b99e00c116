import GatewayJSON
import GatewayWire
import NIOCore

/// A binary `generate` as an OpenAI request, and the usage an OpenAI answer reports.
/// The binary protocol sends this request through the proxy; the CLI's `--rest` mode
/// sends the same one over HTTP, so both paths make the same request of a worker.
public enum OpenAIGenerate {
    /// The OpenAI request a binary generate becomes: completions for text and token
    /// ids, chat completions for messages.
    static func request(for request: Wire.GenerateRequest) throws(GatewayError) -> (InferenceRoute, ByteBuffer) {
        var json = JSONWriter()
        json.beginObject()
        if !request.model.isEmpty { json.field("model", request.model) }
        let route: InferenceRoute
        switch request.input {
        case .text(let text):
            route = .completions
            json.field("prompt", text)
        case .tokenIDs(let ids):
            guard !ids.isEmpty else { throw GatewayError.invalidField("token_ids", "must not be empty") }
            route = .completions
            json.key("prompt")
            json.beginArray()
            for id in ids { json.int(id) }
            json.endArray()
        case .chat(let messages):
            guard !messages.isEmpty else { throw GatewayError.invalidField("chat", "must hold at least one message") }
            route = .chatCompletions
            json.key("messages")
            json.beginArray()
            for message in messages {
                json.beginObject()
                json.field("role", message.role.isEmpty ? "user" : message.role)
                json.field("content", message.content)
                if !message.name.isEmpty { json.field("name", message.name) }
                json.endObject()
            }
            json.endArray()
        case nil:
            throw GatewayError(status: 400, code: "MISSING_FIELD", message: "generate needs text, token_ids or chat")
        }
        if let sampling = request.sampling {
            if let v = sampling.maxTokens { json.field("max_tokens", v) }
            if let v = sampling.temperature { json.field("temperature", Double(v)) }
            if let v = sampling.topP { json.field("top_p", Double(v)) }
            if let v = sampling.topK { json.field("top_k", v) }
            if let v = sampling.seed { json.field("seed", v) }
            if let v = sampling.frequencyPenalty { json.field("frequency_penalty", Double(v)) }
            if let v = sampling.presencePenalty { json.field("presence_penalty", Double(v)) }
            if !sampling.stop.isEmpty {
                json.key("stop")
                json.beginArray()
                for stop in sampling.stop { json.string(stop) }
                json.endArray()
            }
            if sampling.ignoreEOS { json.field("ignore_eos", true) }
        }
        if request.stream {
            json.field("stream", true)
            json.key("stream_options")
            json.beginObject()
            json.field("include_usage", true)
            json.endObject()
        }
        json.endObject()
        return (route, ByteBuffer(bytes: json.bytes))
    }

    public static func usage(_ value: JSONValue?) -> Wire.Usage? {
        guard let value, value != .null, let prompt = value["prompt_tokens"]?.intValue else { return nil }
        let completion = value["completion_tokens"]?.intValue ?? 0
        return Wire.Usage(
            promptTokens: UInt32(clamping: prompt), completionTokens: UInt32(clamping: completion),
            totalTokens: UInt32(clamping: value["total_tokens"]?.intValue ?? prompt + completion)
        )
    }

    /// `request(for:)` with the route as its path (for HTTP clients).
    public static func httpRequest(for request: Wire.GenerateRequest) throws(GatewayError) -> (path: String, body: ByteBuffer) {
        let (route, body) = try self.request(for: request)
        return (route.rawValue, body)
    }
}
