import AsyncHTTPClient
import GatewayJSON
import GatewayServer
import GatewayWire
import NIOCore
import NIOHTTP1

/// A REST error answer: its machine code, message and HTTP status.
enum RESTError: Error, CustomStringConvertible {
    case server(code: String, message: String, httpStatus: Int)

    var description: String {
        switch self {
        case .server(let code, let message, let status): "\(code) (\(status)): \(message)"
        }
    }

    /// Reads both error shapes of the gateway: `{"error": "...", "code": "..."}` (worker
    /// API) and `{"error": {"message", "type", "code"}}` (OpenAI routes).
    init(status: Int, body: ByteBuffer) {
        let json = try? JSONParser.parse(body.readableBytesView)
        let error = json?["error"]
        let message = error?["message"]?.stringValue ?? error?.stringValue ?? String(buffer: body)
        let code = error?["code"]?.stringValue ?? json?["code"]?.stringValue ?? "HTTP_\(status)"
        self = .server(code: code, message: message.isEmpty ? "HTTP \(status)" : message, httpStatus: status)
    }
}

/// The REST API, through AsyncHTTPClient. Worker and model answers are printed as the
/// gateway wrote them; generation answers (OpenAI shapes) become a `Wire.GenerateResult`
/// so both front doors print the same result.
struct RESTBackend: GatewayBackend {
    private let client = HTTPClient(eventLoopGroupProvider: .singleton)
    private let base: String
    private let apiKey: String?

    init(host: String, port: Int, apiKey: String?) {
        self.base = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        self.apiKey = apiKey
    }

    func shutdown() async { try? await client.shutdown() }

    // MARK: Workers and models

    func listWorkers() async throws -> JSONValue { try await call(.GET, "/workers").json }
    func getWorker(id: String) async throws -> JSONValue { try await call(.GET, "/workers/\(Self.pathSegment(id))").json }
    func removeWorker(id: String) async throws -> JSONValue { try await call(.DELETE, "/workers/\(Self.pathSegment(id))").json }
    func listModels() async throws -> JSONValue { try await call(.GET, "/v1/models").json }

    func addWorker(_ request: Wire.AddWorkerRequest) async throws -> JSONValue {
        var body = JSONObject()
        body["url"] = .string(request.url)
        if !request.modelID.isEmpty { body["model_id"] = .string(request.modelID) }
        if let priority = request.priority { body["priority"] = .int(Int64(priority)) }
        if let cost = request.cost { body["cost"] = .double(cost) }
        if !request.labels.isEmpty { body["labels"] = WireJSON.map(request.labels) }
        if request.workerType != .unspecified { body["worker_type"] = .string(WireJSON.name(request.workerType)) }
        if request.runtimeType != .unspecified { body["runtime"] = .string(WireJSON.name(request.runtimeType)) }
        if let port = request.bootstrapPort { body["bootstrap_port"] = .int(Int64(port)) }
        if !request.apiKey.isEmpty { body["api_key"] = .string(request.apiKey) }
        if request.disableHealthCheck { body["disable_health_check"] = .bool(true) }
        if let maxLoad = request.maxLoad { body["max_load"] = .int(Int64(maxLoad)) }
        return try await call(.POST, "/workers", body: ByteBuffer(bytes: JSONValue.object(body).jsonBytes)).json
    }

    func updateWorker(_ request: Wire.UpdateWorkerRequest) async throws -> JSONValue {
        var body = JSONObject()
        if let priority = request.priority { body["priority"] = .int(Int64(priority)) }
        if let cost = request.cost { body["cost"] = .double(cost) }
        if let labels = request.labels {
            // Binary: an empty value removes the label; REST: null does.
            var changes = JSONObject()
            for key in labels.keys.sorted() { changes[key] = labels[key]!.isEmpty ? .null : .string(labels[key]!) }
            body["labels"] = .object(changes)
        }
        if let apiKey = request.apiKey { body["api_key"] = apiKey.isEmpty ? .null : .string(apiKey) }
        // Binary: 0 removes the limit; REST: null does.
        if let maxLoad = request.maxLoad { body["max_load"] = maxLoad == 0 ? .null : .int(Int64(maxLoad)) }
        return try await call(.PUT, "/workers/\(Self.pathSegment(request.workerID))", body: ByteBuffer(bytes: JSONValue.object(body).jsonBytes)).json
    }

    // MARK: Generation

    func generate(_ request: Wire.GenerateRequest) async throws -> Wire.GenerateResult {
        let (path, body) = try Self.openAIRequest(request, stream: false)
        let answer = try await call(.POST, path, body: body, timeout: .hours(1))
        let choice = answer.json["choices"]?[0]
        return Wire.GenerateResult(
            text: choice?["text"]?.stringValue ?? choice?["message"]?["content"]?.stringValue ?? "",
            finishReason: choice?["finish_reason"]?.stringValue ?? "",
            usage: OpenAIGenerate.usage(answer.json["usage"]),
            model: answer.json["model"]?.stringValue ?? "",
            workerID: answer.headers.first(name: "X-Gateway-Worker-Id") ?? "",
            requestID: answer.headers.first(name: "X-Request-Id") ?? ""
        )
    }

    func generateStream(_ request: Wire.GenerateRequest, onText: (String) -> Void) async throws -> Wire.GenerateResult {
        let (path, body) = try Self.openAIRequest(request, stream: true)
        let response = try await client.execute(makeRequest(.POST, path, body: body), timeout: .hours(1))
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            throw RESTError(status: status, body: try await response.body.collect(upTo: 1 << 20))
        }
        var result = Wire.GenerateResult(
            workerID: response.headers.first(name: "X-Gateway-Worker-Id") ?? "",
            requestID: response.headers.first(name: "X-Request-Id") ?? ""
        )
        var events = ServerSentEventParser()
        for try await buffer in response.body {
            for data in events.feed(buffer) where data != "[DONE]" {
                guard let event = try? JSONParser.parse(data) else { continue }
                if let error = event["error"], error != .null {
                    throw RESTError.server(
                        code: error["code"]?.stringValue ?? "upstream_error",
                        message: error["message"]?.stringValue ?? "the worker failed mid-stream", httpStatus: 502
                    )
                }
                if let model = event["model"]?.stringValue { result.model = model }
                if let usage = OpenAIGenerate.usage(event["usage"]) { result.usage = usage }
                guard let choice = event["choices"]?[0] else { continue }
                let text = choice["text"]?.stringValue ?? choice["delta"]?["content"]?.stringValue ?? ""
                if !text.isEmpty { onText(text) }
                if let reason = choice["finish_reason"]?.stringValue { result.finishReason = reason }
            }
        }
        return result
    }

    /// The OpenAI request the binary protocol would make of `request` (the server's own
    /// builder), with `stream` as asked.
    static func openAIRequest(_ request: Wire.GenerateRequest, stream: Bool) throws -> (path: String, body: ByteBuffer) {
        var request = request
        request.stream = stream
        do {
            return try OpenAIGenerate.httpRequest(for: request)
        } catch {
            throw RESTError.server(code: error.code, message: error.message, httpStatus: error.status)
        }
    }

    // MARK: HTTP

    private func makeRequest(_ method: HTTPMethod, _ path: String, body: ByteBuffer?) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        return request
    }

    /// One request; a non-2xx answer is thrown as `RESTError`.
    private func call(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, timeout: TimeAmount = .seconds(60)) async throws -> (json: JSONValue, headers: HTTPHeaders) {
        let response = try await client.execute(makeRequest(method, path, body: body), timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else { throw RESTError(status: status, body: bytes) }
        return (try JSONParser.parse(bytes.readableBytesView), response.headers)
    }

    /// `segment` percent-encoded for a URL path (ids are UUIDs, but a typo should not
    /// turn into another route).
    static func pathSegment(_ segment: String) -> String {
        var out = ""
        for byte in segment.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }
}
