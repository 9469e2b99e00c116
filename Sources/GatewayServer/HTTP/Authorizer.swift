import HTTPTypes
import NIOCore

/// Who may call a route.
enum Access: Sendable {
    /// Probes and metrics: anyone.
    case open
    /// Inference and model information: the API key, when one is set.
    case inference
    /// Worker management: the admin key, or (without one) clients on loopback only.
    case admin
}

/// Checks keys (in constant time) and, for worker management without an admin
/// key, that the client is on this machine.
struct Authorizer: Sendable {
    let apiKey: String?
    let adminAPIKey: String?

    /// The key a request presents (`Authorization: Bearer …`).
    static func bearer(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: " ")
    }

    func check(_ access: Access, key: String?, peer: SocketAddress?, style: GatewayError.Style) throws(GatewayError) {
        switch access {
        case .open:
            return
        case .inference:
            guard let apiKey else { return }
            if let key, ConstantTime.equals(key, apiKey) || adminAPIKey.map({ ConstantTime.equals(key, $0) }) == true { return }
            throw Self.unauthorized(style, "a valid API key is required (Authorization: Bearer <key>)")
        case .admin:
            if let adminAPIKey {
                if let key, ConstantTime.equals(key, adminAPIKey) { return }
                throw Self.unauthorized(style, "worker management needs the admin API key (Authorization: Bearer <admin key>)")
            }
            guard Self.isLoopback(peer) else {
                throw GatewayError(
                    status: 403, code: style == .control ? "FORBIDDEN" : "forbidden",
                    message: "worker management is only allowed from loopback unless the gateway has --admin-api-key", style: style
                )
            }
        }
    }

    static func unauthorized(_ style: GatewayError.Style, _ message: String) -> GatewayError {
        GatewayError(
            status: 401, code: style == .control ? "UNAUTHORIZED" : "invalid_api_key", message: message, style: style,
            headers: [("WWW-Authenticate", "Bearer")]
        )
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let address, let ip = address.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var s = Substring(self)
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}
