/// How an error's machine code is spelled: the worker API's upper-case codes, or
/// OpenAI's lower-case ones on the inference routes (each door picks the spelling of
/// the route or call that failed; a binary call uses its REST twin's).
public enum ErrorStyle: Sendable, Equatable {
    /// `{"error": "...", "code": "UPPER_CASE"}` (worker management, as the reference).
    case control
    /// `{"error": {"message", "type", "code": "lower_case"}}` (inference routes, as OpenAI).
    case openAI
}

/// A machine code with its spelling in each style. Most codes exist in one world
/// only and are spelled the same in both.
public struct ErrorCode: Sendable, Hashable, CustomStringConvertible {
    public let control: String
    public let openAI: String

    public init(control: String, openAI: String) {
        self.control = control
        self.openAI = openAI
    }

    /// A code spelled the same in both styles.
    public init(_ code: String) {
        self.init(control: code, openAI: code)
    }

    public func spelled(_ style: ErrorStyle) -> String {
        style == .control ? control : openAI
    }

    public var description: String { control == openAI ? control : "\(control)/\(openAI)" }

    public static let invalidJSON = ErrorCode(control: "INVALID_JSON", openAI: "invalid_json")
    public static let missingField = ErrorCode(control: "MISSING_FIELD", openAI: "missing_required_field")
    public static let invalidField = ErrorCode(control: "INVALID_FIELD", openAI: "invalid_field")
    public static let badRequest = ErrorCode(control: "BAD_REQUEST", openAI: "invalid_request")
    public static let payloadTooLarge = ErrorCode(control: "PAYLOAD_TOO_LARGE", openAI: "payload_too_large")
    public static let notFound = ErrorCode(control: "NOT_FOUND", openAI: "not_found")
    public static let methodNotAllowed = ErrorCode(control: "METHOD_NOT_ALLOWED", openAI: "method_not_allowed")
    public static let unauthorized = ErrorCode(control: "UNAUTHORIZED", openAI: "invalid_api_key")
    public static let forbidden = ErrorCode(control: "FORBIDDEN", openAI: "forbidden")
    public static let internalError = ErrorCode(control: "INTERNAL_SERVER_ERROR", openAI: "internal_error")
    public static let requestTimeout = ErrorCode(control: "REQUEST_TIMEOUT", openAI: "request_timeout")
    public static let invalidURL = ErrorCode("INVALID_URL")
    public static let workerNotFound = ErrorCode("WORKER_NOT_FOUND")
    public static let storageError = ErrorCode("STORAGE_ERROR")
    public static let modelNotFound = ErrorCode("model_not_found")
    public static let modelRequired = ErrorCode("model_required")
    public static let noAvailableWorkers = ErrorCode("no_available_workers")
    public static let upstreamError = ErrorCode("upstream_error")
    public static let upstreamTimeout = ErrorCode("upstream_timeout")
    public static let clientClosed = ErrorCode("client_closed")
    public static let queueFull = ErrorCode("queue_full")
    public static let queueTimeout = ErrorCode("queue_timeout")
    public static let rateLimited = ErrorCode("rate_limited")
    public static let unsupportedInput = ErrorCode("unsupported_input")
}

/// A failure answered to a client: an HTTP status, a machine code and a message,
/// plus the headers that go with it (`Retry-After`, `Allow`, `WWW-Authenticate`).
///
/// The same value serves both doors: REST renders it as JSON in the route's style,
/// the binary protocol as an `Error` message carrying the code of its REST twin and
/// the status that twin would have answered.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: ErrorCode
    public var message: String
    /// Extra response headers.
    public var headers: [(String, String)]

    public init(status: Int, code: ErrorCode, message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// A code spelled the same in both styles.
    public init(status: Int, code: String, message: String, headers: [(String, String)] = []) {
        self.init(status: status, code: ErrorCode(code), message: message, headers: headers)
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func == (lhs: GatewayError, rhs: GatewayError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.message == rhs.message
    }

    /// The OpenAI error `type` for this status.
    public var openAIType: String {
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

    /// The value of `Retry-After`, when the error has one.
    public var retryAfter: String? { headers.first { $0.0 == "Retry-After" }?.1 }

    /// This error with `Retry-After: seconds`.
    public func retrying(after seconds: Int) -> GatewayError {
        var copy = self
        copy.headers.removeAll { $0.0 == "Retry-After" }
        copy.headers.append(("Retry-After", String(max(seconds, 0))))
        return copy
    }
}

// MARK: - The errors the gateway answers

extension GatewayError {
    /// An error of the inference routes (codes in OpenAI's spelling).
    public static func openAI(_ status: Int, _ code: String, _ message: String) -> GatewayError {
        GatewayError(status: status, code: ErrorCode(code), message: message)
    }

    public static func invalidJSON(_ detail: String) -> GatewayError {
        GatewayError(status: 400, code: .invalidJSON, message: "request body is not valid JSON: \(detail)")
    }

    public static func invalidField(_ name: String, _ problem: String) -> GatewayError {
        GatewayError(status: 400, code: .invalidField, message: "field '\(name)' \(problem)")
    }

    public static func missingField(_ name: String) -> GatewayError {
        GatewayError(status: 400, code: .missingField, message: "field '\(name)' is required")
    }

    public static func invalidURL(_ detail: String) -> GatewayError {
        GatewayError(status: 400, code: .invalidURL, message: detail)
    }

    public static func badRequest(_ message: String) -> GatewayError {
        GatewayError(status: 400, code: .badRequest, message: message)
    }

    public static func malformedWorkerID(_ raw: String) -> GatewayError {
        .badRequest("invalid worker_id '\(raw)' (expected a UUID such as 3f2c6a1e-8d4b-4c1a-9e2f-0a1b2c3d4e5f)")
    }

    public static func workerNotFound(_ id: String) -> GatewayError {
        GatewayError(status: 404, code: .workerNotFound, message: "worker \(id) not found")
    }

    public static func payloadTooLarge(limit: Int) -> GatewayError {
        GatewayError(status: 413, code: .payloadTooLarge, message: "request body exceeds the limit of \(limit) bytes")
    }

    public static func routeNotFound(method: String, path: String) -> GatewayError {
        GatewayError(status: 404, code: .notFound, message: "no route for \(method) \(path)")
    }

    public static func methodNotAllowed(method: String, path: String, allowed: [String]) -> GatewayError {
        GatewayError(
            status: 405, code: .methodNotAllowed,
            message: "method \(method) is not allowed on \(path) (allowed: \(allowed.joined(separator: ", ")))",
            headers: [("Allow", allowed.joined(separator: ", "))]
        )
    }

    public static func internalError(_ detail: String) -> GatewayError {
        GatewayError(status: 500, code: .internalError, message: detail)
    }

    public static func storageError(_ detail: String) -> GatewayError {
        GatewayError(status: 500, code: .storageError, message: "the change could not be stored: \(detail)")
    }

    /// The client went away or cancelled the call.
    public static let clientClosed = GatewayError(status: 499, code: .clientClosed, message: "the request was cancelled")

    /// A protocol-level error of the binary door (its own codes, no REST twin).
    public static func protocolError(_ code: String, _ status: Int, _ message: String) -> GatewayError {
        GatewayError(status: status, code: ErrorCode(code), message: message)
    }

    /// Why routing found no worker, as the client is told.
    public init(_ failure: SelectionFailure) {
        switch failure {
        case .modelNotFound(let model, let served):
            self = .openAI(404, "model_not_found", "The model '\(model)' does not exist (served: \(served.isEmpty ? "none" : served.joined(separator: ", ")))")
        case .modelRequired(let served):
            self = .openAI(400, "model_required", "several models are served (\(served.joined(separator: ", "))): name one in 'model'")
        case .noAvailableWorkers(let model):
            self = GatewayError.openAI(
                503, "no_available_workers", model.map { "no healthy worker is available for model '\($0)'" } ?? "no healthy worker is registered"
            ).retrying(after: 1)
        case .overloaded(let model):
            self = GatewayError.openAI(
                503, "workers_overloaded", "every worker for model '\(model)' is at its load limit; retry later"
            ).retrying(after: 1)
        }
    }
}
