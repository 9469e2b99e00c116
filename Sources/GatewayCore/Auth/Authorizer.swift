/// Who may call a route or a binary call.
public enum Access: Sendable {
    /// Probes and metrics: anyone.
    case open
    /// Inference and model information: the API key, when one is set.
    case inference
    /// Worker management: the admin key, or (without one) clients on loopback only.
    case admin
}

/// Checks keys (in constant time) and, for worker management without an admin key,
/// that the client is on this machine. Both doors ask it.
public struct Authorizer: Sendable {
    public let apiKey: String?
    public let adminAPIKey: String?

    public init(apiKey: String?, adminAPIKey: String?) {
        self.apiKey = apiKey
        self.adminAPIKey = adminAPIKey
    }

    /// Whether the gateway checks any key of its own.
    public var checksKeys: Bool { apiKey != nil || adminAPIKey != nil }

    /// The key in an `Authorization: Bearer …` header value.
    public static func bearer(_ authorization: String?) -> String? {
        guard let value = authorization else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        var key = parts[1]
        while key.first == " " { key = key.dropFirst() }
        while key.last == " " { key = key.dropLast() }
        return String(key)
    }

    /// - Parameters:
    ///   - key: the key the client presented.
    ///   - peerIP: the client's address, for the loopback rule.
    public func check(_ access: Access, key: String?, peerIP: String?) throws(GatewayError) {
        switch access {
        case .open:
            return
        case .inference:
            guard let apiKey else { return }
            if let key, ConstantTime.equals(key, apiKey) || adminAPIKey.map({ ConstantTime.equals(key, $0) }) == true { return }
            throw Self.unauthorized("a valid API key is required (Authorization: Bearer <key>)")
        case .admin:
            if let adminAPIKey {
                if let key, ConstantTime.equals(key, adminAPIKey) { return }
                throw Self.unauthorized("worker management needs the admin API key (Authorization: Bearer <admin key>)")
            }
            guard Self.isLoopback(peerIP) else {
                throw GatewayError(
                    status: 403, code: .forbidden, message: "worker management is only allowed from loopback unless the gateway has --admin-api-key"
                )
            }
        }
    }

    public static func unauthorized(_ message: String) -> GatewayError {
        GatewayError(status: 401, code: .unauthorized, message: message, headers: [("WWW-Authenticate", "Bearer")])
    }

    public static func isLoopback(_ ip: String?) -> Bool {
        guard let ip else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}

/// Comparison whose time does not depend on where two strings first differ.
public enum ConstantTime {
    public static func equals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for index in 0..<max(x.count, y.count) {
            let p = index < x.count ? x[index] : 0
            let q = index < y.count ? y[index] : 0
            difference |= p ^ q
        }
        return difference == 0 && x.count == y.count
    }
}
