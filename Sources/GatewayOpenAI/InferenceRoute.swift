/// The inference routes the gateway forwards (the path a worker is called on).
public enum InferenceRoute: String, Sendable, CaseIterable {
    case generate = "/generate"
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    case embeddings = "/v1/embeddings"
    case rerank = "/v1/rerank"

    /// The member a valid request must have (one of them).
    public var requiredFields: [String] {
        switch self {
        case .generate: ["text", "input_ids", "input_embeds"]
        case .chatCompletions: ["messages"]
        case .completions: ["prompt"]
        case .embeddings: ["input"]
        case .rerank: ["query"]
        }
    }
}

