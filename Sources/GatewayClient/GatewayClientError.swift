import GatewayWire

/// Why a call (or the connection) failed.
public enum GatewayClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server answered the call with an `Error`: the REST twin's machine code, its
    /// message and the HTTP status the REST twin would have answered.
    case server(code: String, message: String, httpStatus: Int)
    /// The TCP connection could not be opened.
    case connectionFailed(String)
    /// The connection ended (closed by the server, by `close()`, or broken) before the
    /// call finished.
    case connectionClosed(String)
    /// The server sent `GoAway`: calls already running finish, new ones are refused here.
    case goingAway(reason: String)
    /// The request cannot be sent: it does not encode (e.g. a string holding a NUL byte)
    /// or its frame would exceed the server's `max_frame_bytes`.
    case invalidRequest(String)
    /// The server broke the protocol (an unexpected reply kind, an undecodable payload,
    /// a stream that ended without its result, a bad `HelloReply`).
    case protocolViolation(String)
    /// The server did not answer `Hello` in time.
    case timedOut(String)

    init(_ error: Wire.CallError) {
        self = .server(code: error.code, message: error.message, httpStatus: Int(error.httpStatus))
    }

    /// The server's machine code (`WORKER_NOT_FOUND`, `CANCELLED` …), nil for local failures.
    public var code: String? {
        if case .server(let code, _, _) = self { return code }
        return nil
    }

    /// The HTTP status the REST twin of the call would have answered, nil for local failures.
    public var httpStatus: Int? {
        if case .server(_, _, let status) = self { return status }
        return nil
    }

    public var description: String {
        switch self {
        case .server(let code, let message, let status): "\(code) (\(status)): \(message)"
        case .connectionFailed(let reason): "cannot connect: \(reason)"
        case .connectionClosed(let reason): "connection closed: \(reason)"
        case .goingAway(let reason): "the server is going away" + (reason.isEmpty ? "" : ": \(reason)")
        case .invalidRequest(let reason): "invalid request: \(reason)"
        case .protocolViolation(let reason): "protocol violation: \(reason)"
        case .timedOut(let reason): "timed out: \(reason)"
        }
    }
}
