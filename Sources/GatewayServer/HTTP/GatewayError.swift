import GatewayJSON
import HTTPTypes
import Hummingbird
import NIOCore

/// A failure answered to a client: an HTTP status, a machine code and a message.
///
/// The same value serves both front doors: REST renders it as JSON, the binary
/// protocol as an `Error` message carrying the same code and the status the REST
/// twin would have answered.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// How the REST API renders the error.
    public enum Style: Sendable, Equatable {
        /// `{"error": "...", "code": "..."}` (worker management, as the reference).
        case control
        /// `{"error": {"message", "type", "code"}}` (inference routes, as OpenAI).
        case openAI
    }

    public var status: Int
    public var code: String
    public var message: String
    public var style: Style
    /// Extra response headers (`Allow` on 405).
    public var headers: [(String, String)]

    public init(status: Int, code: String, message: String, style: Style = .control, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.style = style
        self.headers = headers
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func == (lhs: GatewayError, rhs: GatewayError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.message == rhs.message && lhs.style == rhs.style
    }

    public func styled(_ style: Style) -> GatewayError {
        var copy = self
        copy.style = style
        return copy
    }

    /// The OpenAI error `type` for this status.
    var openAIType: String {
        switch status {
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 429: "rate_limit_error"
        case 400..<500: "invalid_request_error"
        case 503: "service_unavailable"
        default: "server_error"
        }
    }

    /// The JSON body of this error.
    public var jsonBody: [UInt8] {
        var json = JSONWriter(capacity: 96 + message.utf8.count)
        json.beginObject()
        switch style {
        case .control:
            json.field("error", message)
            json.field("code", code)
        case .openAI:
            json.key("error")
            json.beginObject()
            json.field("message", message)
            json.field("type", openAIType)
            json.field("code", code)
            json.endObject()
        }
        json.endObject()
        return json.bytes
    }
}

extension GatewayError {
    /// The REST response for this error.
    public func makeResponse() -> Response {
        var response = JSONResponse.make(status: HTTPResponse.Status(code: status), bytes: jsonBody)
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}

// MARK: - The errors the API answers

extension GatewayError {
    static func invalidJSON(_ detail: String) -> GatewayError {
        GatewayError(status: 400, code: "INVALID_JSON", message: "request body is not valid JSON: \(detail)")
    }

    static func invalidField(_ name: String, _ problem: String) -> GatewayError {
        GatewayError(status: 400, code: "INVALID_FIELD", message: "field '\(name)' \(problem)")
    }

    static func missingField(_ name: String) -> GatewayError {
        GatewayError(status: 400, code: "MISSING_FIELD", message: "field '\(name)' is required")
    }

    static func invalidURL(_ detail: String) -> GatewayError {
        GatewayError(status: 400, code: "INVALID_URL", message: detail)
    }

    static func malformedWorkerID(_ raw: String) -> GatewayError {
        GatewayError(status: 400, code: "BAD_REQUEST", message: "invalid worker_id '\(raw)' (expected a UUID such as 3f2c6a1e-8d4b-4c1a-9e2f-0a1b2c3d4e5f)")
    }

    static func workerNotFound(_ id: String) -> GatewayError {
        GatewayError(status: 404, code: "WORKER_NOT_FOUND", message: "worker \(id) not found")
    }

    static func payloadTooLarge(limit: Int, style: Style = .control) -> GatewayError {
        GatewayError(status: 413, code: style == .control ? "PAYLOAD_TOO_LARGE" : "payload_too_large", message: "request body exceeds the limit of \(limit) bytes", style: style)
    }

    static func routeNotFound(method: String, path: String, style: Style) -> GatewayError {
        GatewayError(status: 404, code: style == .control ? "NOT_FOUND" : "not_found", message: "no route for \(method) \(path)", style: style)
    }

    static func methodNotAllowed(method: String, path: String, allowed: [String], style: Style) -> GatewayError {
        GatewayError(
            status: 405, code: style == .control ? "METHOD_NOT_ALLOWED" : "method_not_allowed",
            message: "method \(method) is not allowed on \(path) (allowed: \(allowed.joined(separator: ", ")))",
            style: style, headers: [("Allow", allowed.joined(separator: ", "))]
        )
    }

    static func internalError(_ detail: String, style: Style = .control) -> GatewayError {
        GatewayError(status: 500, code: style == .control ? "INTERNAL_SERVER_ERROR" : "internal_error", message: detail, style: style)
    }
}

/// Building JSON responses.
enum JSONResponse {
    static func make(status: HTTPResponse.Status = .ok, bytes: [UInt8], headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(bytes.count)
        return Response.inMemory(status: status, headers: fields, body: ByteBuffer(bytes: bytes))
    }

    /// - Parameter capacity: bytes to reserve up front (a large document then grows
    ///   without repeated reallocation and copying).
    static func make(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], capacity: Int = 256, _ build: (inout JSONWriter) -> Void) -> Response {
        var json = JSONWriter(capacity: capacity)
        build(&json)
        return make(status: status, bytes: json.bytes, headers: headers)
    }
}
