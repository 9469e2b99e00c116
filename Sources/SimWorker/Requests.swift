import GatewayJSON
import NIOCore
import NIOHTTP1

/// The routes a sim worker knows.
enum Route {
    case health
    /// SGLang's health check that runs a one-token generation; answered like `/health`.
    case healthGenerate
    case serverInfo
    case modelInfo
    case models
    case generate
    case completions
    case chatCompletions
    case embeddings
    case rerank
    case getLoad
    case loads
    case metrics
    case flushCache

    init?(path: Substring) {
        switch path {
        case "/health": self = .health
        case "/health_generate": self = .healthGenerate
        case "/server_info", "/get_server_info": self = .serverInfo
        case "/model_info", "/get_model_info": self = .modelInfo
        case "/v1/models": self = .models
        case "/generate": self = .generate
        case "/v1/completions": self = .completions
        case "/v1/chat/completions": self = .chatCompletions
        case "/v1/embeddings": self = .embeddings
        case "/v1/rerank": self = .rerank
        case "/get_load": self = .getLoad
        case "/v1/loads": self = .loads
        case "/metrics": self = .metrics
        case "/flush_cache": self = .flushCache
        default: return nil
        }
    }

    /// Routes an OpenAI-compatible server (llama.cpp, vLLM) does not have.
    var sglangOnly: Bool {
        switch self {
        case .serverInfo, .modelInfo, .generate, .getLoad, .loads, .flushCache, .healthGenerate: true
        case .health, .models, .completions, .chatCompletions, .embeddings, .rerank, .metrics: false
        }
    }

    func allows(_ method: HTTPMethod) -> Bool {
        switch self {
        case .health, .healthGenerate: method == .GET || method == .HEAD
        case .serverInfo, .modelInfo, .models, .getLoad, .loads, .metrics: method == .GET
        case .generate: method == .POST || method == .PUT
        case .completions, .chatCompletions, .embeddings, .rerank: method == .POST
        case .flushCache: method == .POST || method == .GET
        }
    }

    var allowHeader: String {
        switch self {
        case .health, .healthGenerate: "GET, HEAD"
        case .serverInfo, .modelInfo, .models, .getLoad, .loads, .metrics: "GET"
        case .generate: "POST, PUT"
        case .completions, .chatCompletions, .embeddings, .rerank: "POST"
        case .flushCache: "GET, POST"
        }
    }
}

/// A request the client got wrong; answered 400 with an OpenAI-shaped error.
struct BadRequest: Error {
    var message: String
}

/// What a text-generating request asks for.
struct InferenceRequest {
    enum Kind {
        case generate
        case completion
        case chat
    }

    var kind: Kind
    var promptTokens: Int
    var maxTokens: Int
    var stream: Bool
    var includeUsage: Bool
    /// The `model` echoed in OpenAI replies.
    var model: String
    /// SGLang request id (`rid`).
    var rid: String?
    /// A text prompt whose first word starts with `@` (`@s42 ...`) gets that word
    /// appended to every generated token (`tok0@s42 tok1@s42`), so a test running many
    /// requests at once can tell which request each streamed chunk belongs to.
    var tag: String = ""
    /// The prompt's token ids (`SimTokenizer`), filled only when the parse was asked to
    /// tokenise (the realistic engine).
    var promptIDs: [Int] = []
    /// Disaggregation fields of the body, if any.
    var pd: PDFields?

    static func parse(kind: Kind, body: ByteBuffer?, defaultModel: String, tokenize: Bool = false) throws(BadRequest) -> InferenceRequest {
        let object = try parseObject(body)
        var request = InferenceRequest(
            kind: kind,
            promptTokens: 0,
            maxTokens: SimWorker.defaultTokens,
            stream: try optionalBool(object, "stream") ?? false,
            includeUsage: false,
            model: defaultModel,
            rid: nil
        )
        switch kind {
        case .generate:
            if let text = object["text"], text != .null {
                request.promptTokens = try countTextInput(text, field: "text")
                request.tag = text.stringValue.map(SimWorker.tag(ofPrompt:)) ?? ""
                if tokenize { request.promptIDs = tokenizeText(text) }
            } else if let ids = object["input_ids"], ids != .null {
                request.promptTokens = try countTokenIDs(ids, field: "input_ids")
                if tokenize { request.promptIDs = flattenIDs(ids) }
            } else {
                throw BadRequest(message: "Either text or input_ids should be provided.")
            }
            if let params = object["sampling_params"], params != .null {
                guard let params = params.objectValue else {
                    throw BadRequest(message: "sampling_params must be an object")
                }
                if let n = try optionalTokenCount(params, "max_new_tokens") { request.maxTokens = n }
            }
            if let rid = object["rid"], rid != .null {
                guard let rid = rid.stringValue else { throw BadRequest(message: "rid must be a string") }
                request.rid = rid
            }
        case .completion:
            guard let prompt = object["prompt"], prompt != .null else {
                throw BadRequest(message: "prompt is required")
            }
            request.promptTokens = try countPrompt(prompt)
            request.tag = prompt.stringValue.map(SimWorker.tag(ofPrompt:)) ?? ""
            if tokenize {
                if let items = prompt.arrayValue, items.first?.stringValue == nil {
                    request.promptIDs = flattenIDs(prompt)
                } else {
                    request.promptIDs = tokenizeText(prompt)
                }
            }
            if let n = try optionalTokenCount(object, "max_tokens") { request.maxTokens = n }
        case .chat:
            guard let messages = object["messages"]?.arrayValue, !messages.isEmpty else {
                throw BadRequest(message: "messages must be a non-empty array")
            }
            request.promptTokens = try countMessages(messages)
            if tokenize {
                request.promptIDs = SimTokenizer.tokenize(chat: chatMessages(messages))
                request.promptTokens = request.promptIDs.count
            }
            if let n = try optionalTokenCount(object, "max_completion_tokens") {
                request.maxTokens = n
            } else if let n = try optionalTokenCount(object, "max_tokens") {
                request.maxTokens = n
            }
        }
        if kind != .generate {
            if let model = object["model"], model != .null {
                guard let model = model.stringValue else { throw BadRequest(message: "model must be a string") }
                if !model.isEmpty { request.model = model }
            }
            if request.stream, let options = object["stream_options"]?.objectValue {
                request.includeUsage = try optionalBool(options, "include_usage") ?? false
            }
        }
        request.pd = try PDFields.parse(object)
        return request
    }
}

/// The disaggregation fields a gateway adds to a request (SGLang's bootstrap triple, or
/// vLLM's `kv_transfer_params`).
enum PDFields: Equatable {
    /// SGLang: one `(host, port, room)` per item of a batched input (one for a single input).
    case sglang([BootstrapTarget])
    /// vLLM prefill leg: `kv_transfer_params.do_remote_decode` is true.
    case vllmPrefill
    /// vLLM decode leg: `kv_transfer_params.do_remote_prefill` with where to pull the KV from.
    case vllmDecode(host: String, port: Int, requestID: String)

    /// Where one room's KV is.
    struct BootstrapTarget: Equatable {
        var host: String
        var port: Int
        var room: String
    }

    /// SGLang's default bootstrap port (a `null` port means it).
    static let defaultBootstrapPort = 8998

    static func parse(_ object: JSONObject) throws(BadRequest) -> PDFields? {
        if let params = object["kv_transfer_params"], params != .null {
            guard let params = params.objectValue else { throw BadRequest(message: "kv_transfer_params must be an object") }
            if params["do_remote_decode"]?.boolValue == true { return .vllmPrefill }
            if params["do_remote_prefill"]?.boolValue == true {
                guard let host = params["remote_host"]?.stringValue, !host.isEmpty else {
                    throw BadRequest(message: "kv_transfer_params.remote_host must be a non-empty string")
                }
                guard let port = params["remote_port"]?.intValue, (1...65535).contains(port) else {
                    throw BadRequest(message: "kv_transfer_params.remote_port must be a port number")
                }
                guard let id = params["remote_request_id"]?.stringValue, !id.isEmpty else {
                    throw BadRequest(message: "kv_transfer_params.remote_request_id must be a non-empty string")
                }
                return .vllmDecode(host: host, port: Int(port), requestID: id)
            }
            return nil
        }
        guard let room = object["bootstrap_room"], room != .null else { return nil }
        let host = object["bootstrap_host"] ?? .null
        let port = object["bootstrap_port"] ?? .null
        func one(_ room: JSONValue, _ host: JSONValue, _ port: JSONValue) throws(BadRequest) -> BootstrapTarget {
            let key: String
            if let n = room.intValue, n >= 0 {
                key = String(n)
            } else if let d = room.doubleValue, d >= 0, d < 1.9e19, d == d.rounded() {
                key = String(UInt64(d))
            } else {
                throw BadRequest(message: "bootstrap_room must be a non-negative integer")
            }
            guard let h = host.stringValue, !h.isEmpty else { throw BadRequest(message: "bootstrap_host must be a non-empty string") }
            var p = PDFields.defaultBootstrapPort
            if port != .null {
                guard let n = port.intValue, (1...65535).contains(n) else {
                    throw BadRequest(message: "bootstrap_port must be a port number or null")
                }
                p = Int(n)
            }
            return BootstrapTarget(host: h, port: p, room: key)
        }
        if let rooms = room.arrayValue {
            guard !rooms.isEmpty else { throw BadRequest(message: "bootstrap_room must not be an empty array") }
            var targets: [BootstrapTarget] = []
            for (i, item) in rooms.enumerated() {
                let h = host.arrayValue.map { $0.count > i ? $0[i] : .null } ?? host
                let p = port.arrayValue.map { $0.count > i ? $0[i] : .null } ?? port
                targets.append(try one(item, h, p))
            }
            return .sglang(targets)
        }
        return .sglang([try one(room, host, port)])
    }
}

private func tokenizeText(_ value: JSONValue) -> [Int] {
    switch value {
    case .string(let s):
        return SimTokenizer.tokenize(s)
    case .array(let items):
        var ids: [Int] = []
        for item in items { if let s = item.stringValue { SimTokenizer.tokenize(s, into: &ids) } }
        return ids
    default:
        return []
    }
}

private func flattenIDs(_ value: JSONValue) -> [Int] {
    var ids: [Int] = []
    for item in value.arrayValue ?? [] {
        if let n = item.intValue {
            ids.append(Int(truncatingIfNeeded: n))
        } else if let inner = item.arrayValue {
            for v in inner { ids.append(Int(truncatingIfNeeded: v.intValue ?? 0)) }
        }
    }
    return ids
}

private func chatMessages(_ messages: [JSONValue]) -> [SimTokenizer.ChatMessage] {
    messages.map { message in
        let role = message["role"]?.stringValue ?? "user"
        let content: String
        switch message["content"] {
        case .string(let s)?:
            content = s
        case .array(let parts)?:
            content = parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
        default:
            content = ""
        }
        return SimTokenizer.ChatMessage(role: role, content: content)
    }
}

/// `/v1/embeddings` input.
struct EmbeddingRequest {
    /// One entry per input: the text to hash and its token count.
    var inputs: [(key: String, tokens: Int)]
    var model: String

    static func parse(body: ByteBuffer?, defaultModel: String) throws(BadRequest) -> EmbeddingRequest {
        let object = try parseObject(body)
        guard let input = object["input"], input != .null else { throw BadRequest(message: "input is required") }
        var inputs: [(key: String, tokens: Int)] = []
        switch input {
        case .string(let s):
            inputs.append((s, SimWorker.wordCount(s)))
        case .array(let items) where items.isEmpty:
            throw BadRequest(message: "input must not be empty")
        case .array(let items):
            if items.allSatisfy({ $0.intValue != nil }) {
                // One input given as token ids.
                inputs.append((items.map { String($0.intValue!) }.joined(separator: " "), items.count))
            } else {
                for item in items {
                    switch item {
                    case .string(let s):
                        inputs.append((s, SimWorker.wordCount(s)))
                    case .array(let ids):
                        let n = try countTokenIDs(.array(ids), field: "input")
                        inputs.append((ids.map { String($0.intValue ?? 0) }.joined(separator: " "), n))
                    default:
                        throw BadRequest(message: "input must be a string, an array of strings, or token ids")
                    }
                }
            }
        default:
            throw BadRequest(message: "input must be a string, an array of strings, or token ids")
        }
        var model = defaultModel
        if let m = object["model"]?.stringValue, !m.isEmpty { model = m }
        return EmbeddingRequest(inputs: inputs, model: model)
    }
}

/// `/v1/rerank` input.
struct RerankRequest {
    var query: String
    var documents: [String]
    var topN: Int?
    var returnDocuments: Bool
    var model: String

    static func parse(body: ByteBuffer?, defaultModel: String) throws(BadRequest) -> RerankRequest {
        let object = try parseObject(body)
        guard let query = object["query"]?.stringValue else { throw BadRequest(message: "query must be a string") }
        guard let docs = object["documents"]?.arrayValue else {
            throw BadRequest(message: "documents must be an array of strings")
        }
        var documents: [String] = []
        documents.reserveCapacity(docs.count)
        for doc in docs {
            if let s = doc.stringValue {
                documents.append(s)
            } else if let s = doc["text"]?.stringValue {
                documents.append(s)
            } else {
                throw BadRequest(message: "documents must be an array of strings")
            }
        }
        var topN: Int?
        if let n = object["top_n"], n != .null {
            guard let v = n.intValue, v >= 0 else { throw BadRequest(message: "top_n must be a non-negative integer") }
            topN = Int(clamping: v)
        }
        var model = defaultModel
        if let m = object["model"]?.stringValue, !m.isEmpty { model = m }
        return RerankRequest(
            query: query,
            documents: documents,
            topN: topN,
            returnDocuments: try optionalBool(object, "return_documents") ?? true,
            model: model
        )
    }
}

// MARK: Field helpers

private func parseObject(_ body: ByteBuffer?) throws(BadRequest) -> JSONObject {
    guard let body, body.readableBytes > 0 else {
        throw BadRequest(message: "request body must be a JSON object")
    }
    let value: JSONValue
    do {
        value = try JSONParser.parse(body.readableBytesView)
    } catch {
        throw BadRequest(message: "invalid JSON body: \(error.description)")
    }
    guard let object = value.objectValue else {
        throw BadRequest(message: "request body must be a JSON object, not \(value.typeDescription)")
    }
    return object
}

private func optionalBool(_ object: JSONObject, _ key: String) throws(BadRequest) -> Bool? {
    guard let value = object[key], value != .null else { return nil }
    guard let b = value.boolValue else { throw BadRequest(message: "\(key) must be a boolean") }
    return b
}

/// A token budget field: nil if absent, 400 if not a non-negative integer, capped at `maxTokens`.
private func optionalTokenCount(_ object: JSONObject, _ key: String) throws(BadRequest) -> Int? {
    guard let value = object[key], value != .null else { return nil }
    guard let n = value.intValue, n >= 0 else { throw BadRequest(message: "\(key) must be a non-negative integer") }
    return Int(min(max(n, 1), Int64(SimWorker.maxTokens)))
}

private func countTextInput(_ value: JSONValue, field: String) throws(BadRequest) -> Int {
    switch value {
    case .string(let s):
        return SimWorker.wordCount(s)
    case .array(let items):
        var total = 0
        for item in items {
            guard let s = item.stringValue else { throw BadRequest(message: "\(field) must be a string or an array of strings") }
            total += SimWorker.wordCount(s)
        }
        return total
    default:
        throw BadRequest(message: "\(field) must be a string or an array of strings")
    }
}

private func countTokenIDs(_ value: JSONValue, field: String) throws(BadRequest) -> Int {
    guard let items = value.arrayValue else { throw BadRequest(message: "\(field) must be an array of token ids") }
    var total = 0
    for item in items {
        if item.intValue != nil {
            total += 1
        } else if let inner = item.arrayValue, inner.allSatisfy({ $0.intValue != nil }) {
            total += inner.count
        } else {
            throw BadRequest(message: "\(field) must be an array of token ids")
        }
    }
    return total
}

private func countPrompt(_ value: JSONValue) throws(BadRequest) -> Int {
    switch value {
    case .string(let s):
        return SimWorker.wordCount(s)
    case .array(let items):
        if items.allSatisfy({ $0.stringValue != nil }) { return try countTextInput(value, field: "prompt") }
        return try countTokenIDs(value, field: "prompt")
    default:
        throw BadRequest(message: "prompt must be a string, an array of strings, or token ids")
    }
}

private func countMessages(_ messages: [JSONValue]) throws(BadRequest) -> Int {
    var total = 0
    for message in messages {
        guard let object = message.objectValue else { throw BadRequest(message: "each message must be an object") }
        guard object["role"]?.stringValue != nil else { throw BadRequest(message: "each message needs a string role") }
        switch object["content"] {
        case .string(let s)?:
            total += SimWorker.wordCount(s)
        case .array(let parts)?:
            for part in parts {
                if let text = part["text"]?.stringValue { total += SimWorker.wordCount(text) }
            }
        case .null?, nil:
            break
        default:
            throw BadRequest(message: "message content must be a string, an array of parts, or null")
        }
    }
    return total
}
