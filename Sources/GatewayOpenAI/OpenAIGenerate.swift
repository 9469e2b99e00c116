import GatewayCore
import GatewayJSON
import GatewayWire
import NIOCore

/// A typed generate (the binary protocol's `GenerateRequest`, which the CLI builds as
/// well) as an OpenAI request, and OpenAI answers read back into its result.
///
/// The binary door hands the typed request to the inference core, which builds the
/// worker's body here; the CLI's REST mode sends the same body to the gateway, so both
/// make the same request of a worker and read its answer with the same code.
public enum OpenAIGenerate {
    /// The route a typed generate goes to: completions for text and token ids, chat
    /// completions for messages.
    public static func route(for request: Wire.GenerateRequest) throws(GatewayError) -> InferenceRoute {
        switch request.input {
        case .text: return .completions
        case .tokenIDs(let ids):
            guard !ids.isEmpty else { throw GatewayError.invalidField("token_ids", "must not be empty") }
            return .completions
        case .chat(let messages):
            guard !messages.isEmpty else { throw GatewayError.invalidField("chat", "must hold at least one message") }
            return .chatCompletions
        case nil:
            // The REST twin's code (its body lacks the prompt), on both doors.
            throw GatewayError(status: 400, code: .missingField, message: "generate needs text, token_ids or chat")
        }
    }

    /// What routing needs from a typed generate (no body to scan).
    public static func routing(for request: Wire.GenerateRequest, wantText: Bool, maxTextBytes: Int) throws(GatewayError) -> InferenceRequest {
        let route = try route(for: request)
        var text: [UInt8]?
        if wantText {
            switch request.input {
            case .text(let prompt): text = Array(prompt.utf8.prefix(maxTextBytes))
            case .tokenIDs(let ids): text = Array(ids.map(String.init).joined(separator: " ").utf8.prefix(maxTextBytes))
            case .chat(let messages):
                var joined = ""
                for message in messages { joined += (message.role.isEmpty ? "user" : message.role) + ": " + message.content + "\n" }
                text = Array(joined.utf8.prefix(maxTextBytes))
            case nil: text = nil
            }
        }
        return InferenceRequest(
            route: route, body: ByteBuffer(), model: request.model.isEmpty ? nil : request.model, stream: request.stream,
            routingText: text, bodyKey: nil
        )
    }

    /// The OpenAI body of a typed generate, for `model` (nil: as the client named it).
    public static func body(for request: Wire.GenerateRequest, model: String? = nil) throws(GatewayError) -> ByteBuffer {
        _ = try route(for: request)
        var json = JSONWriter()
        json.beginObject()
        if let model = model ?? (request.model.isEmpty ? nil : request.model) { json.field("model", model) }
        switch request.input {
        case .text(let text):
            json.field("prompt", text)
        case .tokenIDs(let ids):
            json.key("prompt")
            json.beginArray()
            for id in ids { json.int(id) }
            json.endArray()
        case .chat(let messages):
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
            break
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
        return ByteBuffer(bytes: json.bytes)
    }

    /// The usage an OpenAI answer (or stream event) reports.
    public static func usage(_ value: JSONValue?) -> Wire.Usage? {
        guard let value, value != .null, let prompt = value["prompt_tokens"]?.intValue else { return nil }
        let completion = value["completion_tokens"]?.intValue ?? 0
        return Wire.Usage(
            promptTokens: UInt32(clamping: prompt), completionTokens: UInt32(clamping: completion),
            totalTokens: UInt32(clamping: value["total_tokens"]?.intValue ?? prompt + completion)
        )
    }

    /// A whole OpenAI completion or chat completion as a result; nil when the body is not one.
    public static func result(fromAnswer body: ByteBuffer) -> Wire.GenerateResult? {
        guard let answer = try? JSONParser.parse(body.readableBytesView), let choice = answer["choices"]?[0] else { return nil }
        return Wire.GenerateResult(
            text: choice["text"]?.stringValue ?? choice["message"]?["content"]?.stringValue ?? "",
            finishReason: choice["finish_reason"]?.stringValue ?? "", usage: usage(answer["usage"]),
            model: answer["model"]?.stringValue ?? ""
        )
    }

    /// An error an OpenAI-shaped (or the worker API's) error body carries, with `status`.
    public static func error(status: Int, body: ByteBuffer) -> GatewayError {
        let json = try? JSONParser.parse(body.readableBytesView)
        let error = json?["error"]
        let message = error?["message"]?.stringValue ?? error?.stringValue ?? String(String(buffer: body).prefix(500))
        let code = error?["code"]?.stringValue ?? json?["code"]?.stringValue ?? (status >= 500 ? "upstream_error" : "upstream_rejected")
        return GatewayError(status: status, code: code, message: message.isEmpty ? "HTTP \(status)" : message)
    }

    /// Reads the events of a streamed completion or chat completion: the new text of
    /// each, and what the stream tells of itself (finish reason, usage, model).
    public struct StreamReader: Sendable {
        public private(set) var finishReason = ""
        public private(set) var usage: Wire.Usage?
        public private(set) var model = ""

        public init() {}

        /// The new text of `event` (empty for events without text); throws the error an
        /// error event carries.
        public mutating func text(of event: ServerSentEvent) throws(GatewayError) -> String {
            guard !event.isDone, let object = try? JSONParser.parse(event.data.readableBytesView) else { return "" }
            if let error = object["error"], error != .null {
                throw GatewayError(
                    status: Int(error["status"]?.intValue ?? 502), code: error["code"]?.stringValue ?? "upstream_error",
                    message: error["message"]?.stringValue ?? "the worker failed mid-stream"
                )
            }
            if let name = object["model"]?.stringValue { model = name }
            if let reported = OpenAIGenerate.usage(object["usage"]) { usage = reported }
            guard let choice = object["choices"]?[0] else { return "" }
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
            return choice["text"]?.stringValue ?? choice["delta"]?["content"]?.stringValue ?? ""
        }
    }
}
