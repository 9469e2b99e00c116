/// Why a string is not a usable worker URL.
public struct WorkerURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public let input: String
    public let reason: String

    public var description: String { "invalid worker url \"\(input)\": \(reason)" }
}

/// A validated, normalised worker base URL.
///
/// Validation happens at the door, so a bad string never becomes a worker:
/// the scheme must be http or https and a host must be present; `host:port`
/// alone means `http://host:port`. Normalisation makes equivalent spellings one
/// key: scheme and host are lowercased, a default port (80 for http, 443 for
/// https) is dropped, trailing slashes are removed. User info, queries and
/// fragments are refused (credentials belong in `api_key`).
public struct WorkerURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case http, https

        var defaultPort: Int { self == .http ? 80 : 443 }
    }

    public let scheme: Scheme
    /// Lowercased host; IPv6 literals keep their brackets.
    public let host: String
    /// Nil when the scheme's default port applies.
    public let port: Int?
    /// Empty, or a path starting with "/" and not ending with one.
    public let path: String

    /// The normalised URL, e.g. `http://10.0.0.5:8000`.
    public let description: String

    /// The port to connect to.
    public var effectivePort: Int { port ?? scheme.defaultPort }

    /// Parses and normalises `raw`.
    public init(_ raw: String) throws(WorkerURLError) {
        func fail(_ reason: String) -> WorkerURLError { WorkerURLError(input: raw, reason: reason) }

        let trimmed = raw.trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { throw fail("the url is empty") }
        guard trimmed.utf8.count <= 2048 else { throw fail("the url is longer than 2048 bytes") }
        for scalar in trimmed.unicodeScalars {
            if scalar.value <= 0x20 || scalar.value == 0x7F { throw fail("the url contains whitespace or control characters") }
            if scalar.value > 0x7E { throw fail("the url contains non-ASCII characters (percent-encode them)") }
        }
        if trimmed.contains("?") || trimmed.contains("#") {
            throw fail("a worker url cannot have a query or fragment")
        }

        var rest = Substring(trimmed)
        let scheme: Scheme
        if let range = rest.firstRange(of: "://") {
            let schemeText = rest[..<range.lowerBound].lowercased()
            guard let s = Scheme(rawValue: schemeText) else {
                throw fail(schemeText.isEmpty ? "the scheme is missing before \"://\"" : "unsupported scheme \"\(schemeText)\" (use http or https)")
            }
            scheme = s
            rest = rest[range.upperBound...]
        } else {
            // Only `host:port[/path]` may omit the scheme; it means plain http.
            let authority = rest.prefix { $0 != "/" }
            guard let colon = authority.lastIndex(of: ":"),
                !authority[authority.index(after: colon)...].isEmpty,
                authority[authority.index(after: colon)...].allSatisfy(\.isASCIIDigit),
                authority.first != "[" || authority[..<colon].last == "]"
            else {
                throw fail("missing scheme: use http://host:port, https://host:port or host:port")
            }
            scheme = .http
        }

        let authority = rest.prefix { $0 != "/" }
        var path = String(rest[authority.endIndex...])
        guard !authority.isEmpty else { throw fail("the url has no host") }
        if authority.contains("@") { throw fail("user info is not allowed in a worker url (use api_key)") }

        // Host and optional port.
        var hostPart: Substring
        var portPart: Substring? = nil
        if authority.first == "[" {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            hostPart = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw fail("unexpected characters after the IPv6 address") }
                portPart = after.dropFirst()
            }
            let inner = hostPart.dropFirst().dropLast()
            guard !inner.isEmpty, inner.contains(":"),
                inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else { throw fail("invalid IPv6 address \"\(hostPart)\"") }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostPart = authority[..<colon]
                portPart = authority[authority.index(after: colon)...]
            } else {
                hostPart = authority
            }
            guard !hostPart.isEmpty else { throw fail("the url has no host") }
            guard hostPart.utf8.count <= 253 else { throw fail("the host name is too long") }
            for label in hostPart.split(separator: ".", omittingEmptySubsequences: false) {
                guard !label.isEmpty else { throw fail("invalid host \"\(hostPart)\" (empty label)") }
                guard label.allSatisfy({ $0.isASCIILetterOrDigit || $0 == "-" || $0 == "_" }) else {
                    throw fail("invalid host \"\(hostPart)\"")
                }
                guard label.first != "-", label.last != "-" else { throw fail("invalid host \"\(hostPart)\"") }
            }
        }

        var port: Int? = nil
        if let portPart {
            guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy(\.isASCIIDigit),
                let value = Int(portPart), (1...65535).contains(value)
            else { throw fail("invalid port \"\(portPart)\" (must be 1-65535)") }
            port = value == scheme.defaultPort ? nil : value
        }

        // Path: keep it (a worker may live under a prefix) but drop trailing slashes.
        let allowedPathPunctuation = Set("-._~!$&'()*+,;=:@/%")
        guard path.allSatisfy({ $0.isASCIILetterOrDigit || allowedPathPunctuation.contains($0) }) else {
            throw fail("the path contains characters that must be percent-encoded")
        }
        while path.hasSuffix("/") { path.removeLast() }

        self.scheme = scheme
        self.host = hostPart.lowercased()
        self.port = port
        self.path = path
        self.description = "\(scheme.rawValue)://\(self.host)\(port.map { ":\($0)" } ?? "")\(path)"
    }

    /// The URL of `endpoint` ("/health", "v1/models" …) on this worker.
    public func appending(_ endpoint: String) -> String {
        endpoint.hasPrefix("/") ? description + endpoint : description + "/" + endpoint
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetterOrDigit: Bool { isASCII && (isLetter || isNumber) }
}

extension String {
    /// Drops leading and trailing spaces, tabs, CRs and LFs (by scalar: "\r\n" is one Character).
    func trimmingASCIIWhitespace() -> String {
        let scalars = unicodeScalars
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(scalars[first...last])
    }
}
