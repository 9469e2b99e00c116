import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// A REST route: a path pattern and a handler per method.
struct Route: Sendable {
    typealias Handler = @Sendable (Request, RouteParameters) async throws -> Response

    enum Segment: Sendable, Equatable {
        case literal(String)
        /// Captures one segment under this name.
        case parameter(String)
    }

    let segments: [Segment]
    let handlers: [HTTPRequest.Method: Handler]
    /// The error shape for this route (control plane or OpenAI).
    let style: GatewayError.Style
    /// Who may call it.
    let access: Access
    /// The pattern, as a bounded metric and log label.
    let pattern: String

    /// `pattern` like "/workers/{worker_id}".
    init(_ pattern: String, style: GatewayError.Style, access: Access, _ handlers: [HTTPRequest.Method: Handler]) {
        self.pattern = pattern
        self.access = access
        self.segments = pattern.split(separator: "/").map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(String(part))
        }
        self.handlers = handlers
        self.style = style
    }

    /// The methods allowed here, for `Allow` (HEAD wherever GET is).
    var allowedMethods: [String] {
        var names = handlers.keys.map(\.rawValue)
        if handlers[.get] != nil { names.append("HEAD") }
        return names.sorted()
    }

    func match(_ parts: [Substring]) -> RouteParameters? {
        guard parts.count == segments.count else { return nil }
        var parameters = RouteParameters()
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .parameter(let name):
                parameters.values[name] = Self.percentDecoded(part)
            }
        }
        return parameters
    }

    static func percentDecoded(_ part: Substring) -> String {
        guard part.contains("%") else { return String(part) }
        var bytes: [UInt8] = []
        var utf8 = part.utf8.makeIterator()
        while let byte = utf8.next() {
            if byte == UInt8(ascii: "%"), let high = utf8.next(), let low = utf8.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Values captured from the path.
struct RouteParameters: Sendable {
    var values: [String: String] = [:]

    subscript(name: String) -> String { values[name] ?? "" }
}

/// Dispatches requests over a fixed route table.
///
/// Unknown paths get a JSON 404 and known paths with the wrong method a JSON 405
/// with `Allow`; any error a handler throws becomes a JSON error in the route's
/// style. Nothing leaves as plain text.
struct GatewayResponder: HTTPResponder {
    typealias Context = GatewayRequestContext

    let routes: [Route]
    let authorizer: Authorizer
    let metrics: GatewayMetrics
    let logger: Logger
    /// The series of each route (same order as `routes`), and of unmatched paths.
    private let routeMetrics: [RouteMetrics]
    private let unmatchedMetrics: RouteMetrics

    init(routes: [Route], authorizer: Authorizer, metrics: GatewayMetrics, logger: Logger) {
        self.routes = routes
        self.authorizer = authorizer
        self.metrics = metrics
        self.logger = logger
        self.routeMetrics = routes.map { metrics.route($0.pattern) }
        self.unmatchedMetrics = metrics.route(GatewayMetrics.unmatchedRoute)
    }

    /// Answers the request and records it (request counter, duration and
    /// time-to-first-byte histograms, one log line) when its last byte is out.
    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let parts = request.uri.path.split(separator: "/")
        var matched: (index: Int, parameters: RouteParameters)?
        for (index, route) in routes.enumerated() {
            if let parameters = route.match(parts) {
                matched = (index, parameters)
                break
            }
        }
        let observation = RequestObservation()
        let recorder = RequestRecorder(
            metrics: metrics, route: matched.map { routeMetrics[$0.index] } ?? unmatchedMetrics, observation: observation, logger: logger, started: started
        )
        let response = await RequestObservation.$current.withValue(observation) {
            await dispatch(request, context: context, parts: parts, matched: matched)
        }
        return RequestRecorder.observing(response, with: recorder)
    }

    /// Whether a request on `path` is answered on its connection's event loop (see
    /// ``ConnectionResponder``): the inference routes, whose work is a call to a worker,
    /// and the probes. Everything else may compute for longer and runs on the shared pool.
    func answersOnEventLoop(path: String) -> Bool {
        InferenceRoute(rawValue: path) != nil || Self.probePaths.contains(path)
    }

    private static let probePaths: Set<String> = ["/health", "/liveness", "/readiness"]

    private func dispatch(_ request: Request, context: Context, parts: [Substring], matched: (index: Int, parameters: RouteParameters)?) async -> Response {
        let path = request.uri.path
        var style: GatewayError.Style = parts.first == "v1" ? .openAI : .control
        do {
            if let matched {
                let route = routes[matched.index]
                let parameters = matched.parameters
                style = route.style
                try authorizer.check(route.access, key: Authorizer.bearer(request.headers), peer: context.remoteAddress, style: style)
                let isHead = request.method == .head
                guard let handler = route.handlers[isHead ? .get : request.method] else {
                    throw GatewayError.methodNotAllowed(method: request.method.rawValue, path: path, allowed: route.allowedMethods, style: style)
                }
                let response = try await handler(request, parameters)
                return isHead ? Response(status: response.status, headers: response.headers) : response
            }
            throw GatewayError.routeNotFound(method: request.method.rawValue, path: path, style: style)
        } catch let error as GatewayError {
            return error.styled(style).makeResponse()
        } catch is NIOTooManyBytesError {
            return GatewayError.payloadTooLarge(limit: 0, style: style).makeResponse()
        } catch {
            return GatewayError.internalError("internal error: \(error)", style: style).makeResponse()
        }
    }
}

/// The request context: Hummingbird's, plus the client's address (for the loopback rule).
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

extension Request {
    /// The whole body, refusing more than `limit` bytes with 413.
    func collectBody(limit: Int, style: GatewayError.Style = .control) async throws(GatewayError) -> ByteBuffer {
        do {
            return try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw .payloadTooLarge(limit: limit, style: style)
        } catch {
            throw GatewayError(status: 400, code: style == .control ? "BAD_REQUEST" : "invalid_request", message: "could not read the request body: \(error)", style: style)
        }
    }
}
