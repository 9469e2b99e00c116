import GatewayCore
import GatewayJSON
import NIOCore
import NIOHTTP1

/// An answer of the REST door's own routes (worker management, probes, info).
public struct RESTResponse: Sendable {
    public enum Body: Sendable {
        /// All in memory: written at once, with its `Content-Length`.
        case whole(ByteBuffer)
        /// Written in pieces as `produce` hands them over (`Transfer-Encoding: chunked`).
        case stream(@Sendable (any ChunkWriter) async throws -> Void)
    }

    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Body

    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: Body) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer built by `build`.
    /// - Parameter capacity: bytes to reserve up front (a large document then grows
    ///   without repeated reallocation and copying).
    public static func json(
        status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], capacity: Int = 256, _ build: (inout JSONWriter) -> Void
    ) -> RESTResponse {
        var writer = JSONWriter(capacity: capacity)
        build(&writer)
        return json(status: status, headers: headers, bytes: writer.bytes)
    }

    public static func json(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], bytes: some Sequence<UInt8>) -> RESTResponse {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        return RESTResponse(status: status, headers: headers, body: .whole(buffer))
    }

    /// The JSON answer of `error`, in `style`, with the error's headers.
    public static func error(_ error: GatewayError, style: ErrorStyle) -> RESTResponse {
        var headers = HTTPHeaders()
        for (name, value) in error.headers { headers.add(name: name, value: value) }
        return json(status: HTTPResponseStatus(statusCode: error.status), headers: headers, bytes: error.jsonBody(style: style))
    }
}

/// Hands the pieces of a streamed answer to the connection, waiting while the client
/// is not keeping up.
public protocol ChunkWriter: Sendable {
    func write(_ buffer: ByteBuffer) async throws
}

extension GatewayError {
    /// The JSON body of this error: `{"error": "...", "code": "..."}` in the worker API's
    /// style, `{"error": {"message", "type", "code"}}` in OpenAI's.
    public func jsonBody(style: ErrorStyle) -> [UInt8] {
        var json = JSONWriter(capacity: 96 + message.utf8.count)
        json.beginObject()
        switch style {
        case .control:
            json.field("error", message)
            json.field("code", code.control)
        case .openAI:
            json.key("error")
            json.beginObject()
            json.field("message", message)
            json.field("type", openAIType)
            json.field("code", code.openAI)
            json.endObject()
        }
        json.endObject()
        return json.bytes
    }
}
