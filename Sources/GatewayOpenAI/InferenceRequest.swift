import GatewayCore
import GatewayJSON
import NIOCore

/// What routing needs from a request body, read without parsing the rest.
public struct InferenceRequest: Sendable {
    public let route: InferenceRoute
    /// The body as received; forwarded unchanged (except when translated).
    public let body: ByteBuffer
    public let model: String?
    public let stream: Bool
    /// The prompt's first bytes, for cache-aware routing (nil when the policy does not need it).
    public let routingText: [UInt8]?
    /// The body's `user` or session id (a consistent-hash key when no header gives one).
    public let bodyKey: String?

    public init(route: InferenceRoute, body: ByteBuffer, model: String?, stream: Bool, routingText: [UInt8]?, bodyKey: String?) {
        self.route = route
        self.body = body
        self.model = model
        self.stream = stream
        self.routingText = routingText
        self.bodyKey = bodyKey
    }

    private static let scannedKeys: Set<String> = [
        "model", "stream", "user", "session_id", "session_params", "text", "input_ids", "input_embeds",
        "prompt", "messages", "input", "query", "documents",
    ]

    /// Reads the routing fields of `body`; 400 for bodies that are not JSON objects
    /// or lack the route's required field.
    public static func parse(_ body: ByteBuffer, route: InferenceRoute, wantText: Bool, maxTextBytes: Int) throws(GatewayError) -> InferenceRequest {
        let result: Result<InferenceRequest, GatewayError> = body.withUnsafeReadableBytes { bytes in
            Result { () throws(GatewayError) in
                let found: [String: Range<Int>]
                do throws(JSONParseError) {
                    found = try JSONFieldScanner.scan(bytes, keys: scannedKeys)
                } catch {
                    throw GatewayError.openAI(400, "invalid_json", "request body is not valid JSON: \(error.description)")
                }
                func value(_ key: String) -> JSONValue? {
                    guard let range = found[key] else { return nil }
                    return try? JSONFieldScanner.value(in: bytes, at: range)
                }
                guard route.requiredFields.contains(where: { found[$0] != nil && value($0) != .null }) else {
                    let names = route.requiredFields.map { "'\($0)'" }.joined(separator: " or ")
                    throw GatewayError.openAI(400, "missing_required_field", "\(route.rawValue) needs \(names)")
                }
                if route == .rerank, found["documents"] == nil {
                    throw GatewayError.openAI(400, "missing_required_field", "\(route.rawValue) needs 'documents'")
                }
                var model: String?
                if let raw = value("model"), raw != .null {
                    guard let string = raw.stringValue else {
                        throw GatewayError.openAI(400, "invalid_field", "'model' must be a string, got \(raw.typeDescription)")
                    }
                    model = string.isEmpty ? nil : string
                }
                var stream = false
                if let raw = value("stream"), raw != .null {
                    guard let flag = raw.boolValue else {
                        throw GatewayError.openAI(400, "invalid_field", "'stream' must be true or false, got \(raw.typeDescription)")
                    }
                    stream = flag
                }
                let key = value("user")?.stringValue ?? value("session_id")?.stringValue ?? value("session_params")?["id"]?.stringValue
                var text: [UInt8]?
                if wantText {
                    text = routingText(route: route, value: value).map { Array($0.utf8.prefix(maxTextBytes)) }
                }
                return InferenceRequest(route: route, body: body, model: model, stream: stream, routingText: text, bodyKey: key)
            }
        }
        return try result.get()
    }

    /// The text cache-aware routing matches on: the prompt as the worker will see it.
    private static func routingText(route: InferenceRoute, value: (String) -> JSONValue?) -> String? {
        switch route {
        case .generate:
            if let text = value("text") { return joinedText(text) }
            if let ids = value("input_ids")?.arrayValue { return ids.compactMap { $0.intValue.map(String.init) }.joined(separator: " ") }
            return nil
        case .completions:
            return value("prompt").flatMap(joinedText)
        case .chatCompletions:
            guard let messages = value("messages")?.arrayValue else { return nil }
            var text = ""
            for message in messages {
                if let role = message["role"]?.stringValue { text += role + ": " }
                if let content = message["content"] { text += contentText(content) }
                text += "\n"
            }
            return text
        case .embeddings:
            return value("input").flatMap(joinedText)
        case .rerank:
            return value("query").flatMap(joinedText)
        }
    }

    private static func joinedText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .array(let items): return items.compactMap(\.stringValue).joined(separator: "\n")
        default: return nil
        }
    }

    /// Chat content: a string, or an array of parts of which the text parts count.
    private static func contentText(_ content: JSONValue) -> String {
        switch content {
        case .string(let s): return s
        case .array(let parts): return parts.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
        default: return ""
        }
    }
}
