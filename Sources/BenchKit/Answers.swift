import GatewayJSON

/// What a streamed answer said, read from its server-sent events.
public struct StreamedAnswer: Sendable, Equatable {
    /// The generated text (deltas joined; SGLang's cumulative text as last sent).
    public var text = ""
    /// Completion tokens from the usage (OpenAI) or `meta_info` (SGLang); else chunks counted.
    public var outputTokens = 0
    public var promptTokens: Int?
    /// `usage.prompt_tokens_details.cached_tokens` or `meta_info.cached_tokens`.
    public var cachedTokens: Int?
    /// An error event's message.
    public var error: String?
    /// `data: [DONE]` was seen.
    public var complete = false

    public init() {}

    /// Reads every `data:` event of `body` as `route` shapes them.
    public init(route: ReplayRoute, body: String) {
        var chunks = 0
        for event in body.split(separator: "\n\n", omittingEmptySubsequences: true) {
            for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                let payload = line.dropFirst(5).drop { $0 == " " }
                if payload == "[DONE]" {
                    complete = true
                    continue
                }
                guard let value = try? JSONParser.parse(String(payload)) else { continue }
                if let error = value["error"], error != .null {
                    self.error = error["message"]?.stringValue ?? error.stringValue ?? "error event"
                    continue
                }
                switch route {
                case .generate:
                    if let text = value["text"]?.stringValue { self.text = text }
                    if let meta = value["meta_info"] {
                        if let n = meta["completion_tokens"]?.intValue { outputTokens = Int(n) }
                        if let n = meta["prompt_tokens"]?.intValue { promptTokens = Int(n) }
                        if let n = meta["cached_tokens"]?.intValue { cachedTokens = Int(n) }
                    }
                case .chat, .completions:
                    if let choice = value["choices"]?[0] {
                        let piece = route == .chat ? choice["delta"]?["content"]?.stringValue : choice["text"]?.stringValue
                        if let piece, !piece.isEmpty {
                            text += piece
                            chunks += 1
                        }
                    }
                    if let usage = value["usage"], usage != .null {
                        if let n = usage["completion_tokens"]?.intValue { outputTokens = Int(n) }
                        if let n = usage["prompt_tokens"]?.intValue { promptTokens = Int(n) }
                        if let n = usage["prompt_tokens_details"]?["cached_tokens"]?.intValue { cachedTokens = Int(n) }
                    }
                }
            }
        }
        if outputTokens == 0 { outputTokens = chunks }
    }
}
