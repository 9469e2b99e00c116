import GatewayCore
import GatewayJSON
import GatewayOpenAI
import GatewayUpstream
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

/// The REST API, through the gateway's own worker transport (the gateway is called as
/// the gateway calls a worker). Worker and model answers are printed as the gateway
/// wrote them; generation answers (OpenAI shapes) become a `Wire.GenerateResult`, read
/// with the server's own event decoder, so both front doors print the same result.
struct RESTBackend: GatewayBackend {
    private let transport: WorkerTransport
    private let base: WorkerURL
    private let apiKey: String?

    init(host: String, port: Int, apiKey: String?) throws {
        do {
            self.base = try WorkerURL("http://\(host.contains(":") ? "[\(host)]" : host):\(port)")
        } catch {
            throw RESTError.server(code: "INVALID_URL", message: "--host \(host): \(error)", httpStatus: 400)
        }
        self.transport = try WorkerTransport()
        self.apiKey = apiKey
    }

    func shutdown() async { transport.shutdown() }

    // MARK: Workers and models

    func listWorkers(_ filter: Wire.ListWorkersRequest) async throws -> JSONValue {
        var query: [String] = []
        if !filter.model.isEmpty { query.append("model=" + Self.pathSegment(filter.model)) }
        if filter.status != .unspecified { query.append("status=" + WireJSON.name(filter.status)) }
        if filter.workerType != .unspecified { query.append("worker_type=" + WireJSON.name(filter.workerType)) }
        return try await call(.GET, "/workers" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))).json
    }
    func getWorker(id: String) async throws -> JSONValue { try await call(.GET, "/workers/\(Self.pathSegment(id))").json }
    func removeWorker(id: String, force: Bool) async throws -> JSONValue {
        try await call(.DELETE, "/workers/\(Self.pathSegment(id))" + (force ? "?force=true" : "")).json
    }
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
        var request = request
        request.stream = false
        let answer = try await call(.POST, try Self.path(for: request), body: try Self.body(for: request), timeout: .seconds(3600))
        guard var result = OpenAIGenerate.result(fromAnswer: answer.body) else {
            throw RESTError.server(code: "upstream_error", message: "the answer is not an OpenAI completion", httpStatus: 502)
        }
        result.workerID = answer.headers.first(name: "X-Gateway-Worker-Id") ?? ""
        result.requestID = answer.headers.first(name: "X-Request-Id") ?? ""
        return result
    }

    func generateStream(_ request: Wire.GenerateRequest, onText: (String) -> Void) async throws -> Wire.GenerateResult {
        var request = request
        request.stream = true
        let (head, parts) = try await sendStreaming(.POST, try Self.path(for: request), body: try Self.body(for: request))
        guard (200..<300).contains(head.status) else {
            var body = ByteBuffer()
            for try await part in parts {
                switch part {
                case .bytes(let bytes): body.writeImmutableBuffer(bytes)
                case .event(let event): event.write(into: &body)
                }
            }
            throw RESTError(status: head.status, body: body)
        }
        var reader = OpenAIGenerate.StreamReader()
        for try await part in parts {
            guard case .event(let event) = part else { continue }
            do throws(GatewayError) {
                let text = try reader.text(of: event)
                if !text.isEmpty { onText(text) }
            } catch {
                throw RESTError.server(code: error.code.openAI, message: error.message, httpStatus: error.status)
            }
        }
        return Wire.GenerateResult(
            finishReason: reader.finishReason, usage: reader.usage, model: reader.model,
            workerID: head.headers.first(name: "X-Gateway-Worker-Id") ?? "", requestID: head.headers.first(name: "X-Request-Id") ?? ""
        )
    }

    /// The route and OpenAI body the binary protocol would make of `request` (the server's own builder).
    static func path(for request: Wire.GenerateRequest) throws -> String {
        do {
            return try OpenAIGenerate.route(for: request).rawValue
        } catch {
            throw RESTError.server(code: error.code.openAI, message: error.message, httpStatus: error.status)
        }
    }

    static func body(for request: Wire.GenerateRequest) throws -> ByteBuffer {
        do {
            return try OpenAIGenerate.body(for: request)
        } catch {
            throw RESTError.server(code: error.code.openAI, message: error.message, httpStatus: error.status)
        }
    }

    // MARK: HTTP

    private func makeRequest(_ method: HTTPMethod, _ path: String, body: ByteBuffer?) -> WorkerRequest {
        var headers = HTTPHeaders()
        if body != nil { headers.add(name: "Content-Type", value: "application/json") }
        return WorkerRequest(method: method, url: base, path: path, headers: headers, body: body, apiKey: apiKey)
    }

    /// One request; a non-2xx answer is thrown as `RESTError`.
    private func call(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, timeout: Duration = .seconds(60)) async throws -> (json: JSONValue, body: ByteBuffer, headers: HTTPHeaders) {
        let answer: WorkerAnswer
        do throws(WorkerFailure) {
            answer = try await transport.send(makeRequest(method, path, body: body), timeout: timeout, bodyLimit: 64 << 20)
        } catch {
            throw RESTError.server(code: "UNREACHABLE", message: "cannot reach the gateway at \(base): \(error.message)", httpStatus: 0)
        }
        guard (200..<300).contains(answer.status) else { throw RESTError(status: answer.status, body: answer.body) }
        return ((try? JSONParser.parse(answer.body.readableBytesView)) ?? .null, answer.body, answer.headers)
    }

    private func sendStreaming(_ method: HTTPMethod, _ path: String, body: ByteBuffer?) async throws -> (WorkerAnswerHead, WorkerTransport.AnswerParts) {
        do throws(WorkerFailure) {
            return try await transport.stream(makeRequest(method, path, body: body), timeout: .seconds(3600))
        } catch {
            throw RESTError.server(code: "UNREACHABLE", message: "cannot reach the gateway at \(base): \(error.message)", httpStatus: 0)
        }
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
