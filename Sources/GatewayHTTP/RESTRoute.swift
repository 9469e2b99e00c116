import GatewayCore
import GatewayOpenAI
import NIOHTTP1

/// The REST door's routes, told apart once per request from its path.
enum RESTRoute: Sendable, Equatable, CaseIterable {
    case workers
    case worker
    case health, liveness, readiness, metrics
    case inference(InferenceRoute)
    case models, loads, serverInfo, modelInfo, healthGenerate, flushCache

    static var allCases: [RESTRoute] {
        [.workers, .worker, .health, .liveness, .readiness, .metrics, .models, .loads, .serverInfo, .modelInfo, .healthGenerate, .flushCache]
            + InferenceRoute.allCases.map { .inference($0) }
    }

    /// The route a path names, with the worker id captured from `/workers/{worker_id}`
    /// (percent-decoded); nil when none does.
    ///
    /// - Throws: 400 for a path whose percent-encoding is invalid (never silently changed).
    static func match(_ path: Substring) throws(GatewayError) -> (route: RESTRoute, workerID: String?)? {
        switch path {
        case "/workers", "/workers/": return (.workers, nil)
        case "/health": return (.health, nil)
        case "/liveness": return (.liveness, nil)
        case "/readiness": return (.readiness, nil)
        case "/metrics": return (.metrics, nil)
        case "/v1/models": return (.models, nil)
        case "/get_loads": return (.loads, nil)
        case "/get_server_info": return (.serverInfo, nil)
        case "/get_model_info": return (.modelInfo, nil)
        case "/health_generate": return (.healthGenerate, nil)
        case "/flush_cache": return (.flushCache, nil)
        default: break
        }
        if let route = InferenceRoute(rawValue: String(path)) { return (.inference(route), nil) }
        let prefix = "/workers/"
        if path.hasPrefix(prefix) {
            let segment = path.dropFirst(prefix.count)
            guard !segment.isEmpty, !segment.contains("/") else { return nil }
            return (.worker, try percentDecoded(segment))
        }
        return nil
    }

    /// The route's pattern: a bounded metric and log label.
    var pattern: String {
        switch self {
        case .workers: "/workers"
        case .worker: "/workers/{worker_id}"
        case .health: "/health"
        case .liveness: "/liveness"
        case .readiness: "/readiness"
        case .metrics: "/metrics"
        case .inference(let route): route.rawValue
        case .models: "/v1/models"
        case .loads: "/get_loads"
        case .serverInfo: "/get_server_info"
        case .modelInfo: "/get_model_info"
        case .healthGenerate: "/health_generate"
        case .flushCache: "/flush_cache"
        }
    }

    /// How its errors are spelled.
    var style: ErrorStyle {
        switch self {
        case .workers, .worker, .health, .liveness, .readiness, .metrics: .control
        case .inference, .models, .loads, .serverInfo, .modelInfo, .healthGenerate, .flushCache: .openAI
        }
    }

    var access: Access {
        switch self {
        case .workers, .worker, .flushCache: .admin
        case .health, .liveness, .readiness, .metrics: .open
        case .inference, .models, .loads, .serverInfo, .modelInfo, .healthGenerate: .inference
        }
    }

    /// The methods it answers (HEAD wherever GET).
    var methods: [HTTPMethod] {
        switch self {
        case .workers: [.GET, .POST]
        case .worker: [.GET, .PUT, .PATCH, .DELETE]
        case .inference, .flushCache: [.POST]
        case .health, .liveness, .readiness, .metrics, .models, .loads, .serverInfo, .modelInfo, .healthGenerate: [.GET]
        }
    }

    /// `Allow`'s value.
    var allowed: [String] {
        var names = methods.map(\.rawValue)
        if methods.contains(.GET) { names.append("HEAD") }
        return names.sorted()
    }

    func answers(_ method: HTTPMethod) -> Bool {
        methods.contains(method) || (method == .HEAD && methods.contains(.GET))
    }

    /// `%XX` escapes decoded; 400 for a `%` not followed by two hex digits.
    static func percentDecoded(_ part: Substring) throws(GatewayError) -> String {
        guard part.contains("%") else { return String(part) }
        var bytes: [UInt8] = []
        let utf8 = Array(part.utf8)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                index += 1
                continue
            }
            guard let high = hexValue(utf8[safe: index + 1]), let low = hexValue(utf8[safe: index + 2]) else {
                throw GatewayError.badRequest("the path holds an invalid percent-encoding near '\(String(decoding: utf8[index..<min(index + 3, utf8.count)], as: UTF8.self))'")
            }
            bytes.append(high << 4 | low)
            index += 3
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8?) -> UInt8? {
        guard let byte else { return nil }
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? {
        indices.contains(index) ? self[index] : nil
    }
}

/// A request's query string, decoded (`+` as a space, `%XX` escapes).
struct QueryParameters: Sendable {
    private var pairs: [(String, String)] = []

    init(_ query: Substring?) throws(GatewayError) {
        guard let query, !query.isEmpty else { return }
        for part in query.split(separator: "&") {
            let (name, value) = part.firstIndex(of: "=").map { (part[..<$0], part[part.index(after: $0)...]) } ?? (part, "")
            pairs.append((
                try RESTRoute.percentDecoded(Substring(name.replacingPlus())),
                try RESTRoute.percentDecoded(Substring(value.replacingPlus()))
            ))
        }
    }

    subscript(_ name: String) -> String? {
        pairs.first { $0.0 == name }?.1
    }
}

extension Substring {
    fileprivate func replacingPlus() -> String {
        String(map { $0 == "+" ? " " : $0 })
    }
}
