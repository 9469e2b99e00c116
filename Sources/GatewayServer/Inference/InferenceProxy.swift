import AsyncHTTPClient
import GatewayCore
import GatewayJSON
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Forwards inference requests to workers in HTTP connection mode.
///
/// Per request: read the body once (up to the payload limit), scan the few fields
/// routing needs, choose a worker, forward the body as received, relay the answer
/// as it arrives. Failures before the first byte reaches the client — connection
/// errors and 408/429/5xx answers — are retried on another worker with backoff;
/// the circuit breaker counts only connection errors and 5xx; a refused connection
/// also marks the worker unhealthy at once (passive health). A worker's load counts
/// the request until the last byte is relayed.
final class InferenceProxy: Sendable {
    let selector: WorkerSelector
    let registry: WorkerRegistry
    /// Plain-HTTP workers: the gateway's own HTTP/1.1 client.
    let upstream: UpstreamHTTPClient
    /// HTTPS workers.
    let client: HTTPClient
    let configuration: GatewayConfiguration
    let logger: Logger
    let admission: AdmissionController?
    let rateLimiter: RateLimiter?
    let metrics: GatewayMetrics
    /// Whether the gateway checks keys of its own (then the client's `Authorization`
    /// carries that key and is not forwarded).
    private let gatewayHasKey: Bool

    static let retryableStatuses: Set<UInt> = [408, 429, 500, 502, 503, 504]
    /// Non-streamed answers up to this size are read whole before they are relayed.
    static let wholeBodyLimit = 256 * 1024
    static let routingKeyHeader = HTTPField.Name("X-SMG-Routing-Key")!
    static let requestIDHeader = HTTPField.Name("X-Request-Id")!
    static let correlationIDHeader = HTTPField.Name("X-Correlation-Id")!
    static let workerIDHeader = HTTPField.Name("X-Gateway-Worker-Id")!

    init(
        selector: WorkerSelector, registry: WorkerRegistry, upstream: UpstreamHTTPClient, client: HTTPClient, configuration: GatewayConfiguration,
        logger: Logger, metrics: GatewayMetrics
    ) {
        self.upstream = upstream
        self.metrics = metrics
        self.selector = selector
        self.registry = registry
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.admission = configuration.admission.maxConcurrentRequests.map { limit in
            AdmissionController(
                configuration: .init(maxConcurrent: limit, queueSize: configuration.admission.queueSize, queueTimeout: configuration.admission.queueTimeout)
            )
        }
        self.rateLimiter = configuration.admission.rateLimitPerSecond.map { RateLimiter(rate: $0) }
        self.gatewayHasKey = configuration.auth.apiKey != nil || configuration.auth.adminAPIKey != nil
    }

    /// Admission control: the per-key rate, then a slot (waiting in the bounded queue).
    /// The permit must be held until the response's last byte.
    func admit(key: String?) async throws(GatewayError) -> AdmissionPermit? {
        if let rateLimiter, let wait = rateLimiter.take(key ?? "anonymous") {
            var error = GatewayError.openAI(429, "rate_limited", "too many requests for this API key; retry in \(Int(wait.seconds.rounded(.up)))s")
            error.headers.append(("Retry-After", String(Int(wait.seconds.rounded(.up)))))
            throw error
        }
        guard let admission else { return nil }
        do {
            return try await admission.acquire()
        } catch {
            var refusal: GatewayError
            switch error {
            case .queueFull:
                refusal = .openAI(429, "queue_full", "the gateway is at capacity and its queue is full; retry later")
            case .timedOut:
                refusal = .openAI(408, "queue_timeout", "no capacity became free within \(configuration.admission.queueTimeout)")
            }
            refusal.headers.append(("Retry-After", "1"))
            throw refusal
        }
    }

    /// `response` with `permit` released after its last byte (or when it is dropped unsent).
    ///
    /// An answer built whole in memory (``Response/inMemory(status:headers:body:)``) has no
    /// work left behind it: the permit is released now and the body stays one buffer, which
    /// the server writes at once (a wrapped body goes out as head, body and end one by one).
    static func releasing(_ permit: AdmissionPermit?, after response: Response) -> Response {
        guard let permit else { return response }
        if let length = RequestObservation.current?.inMemoryBodyLength, response.body.contentLength == length {
            permit.release()
            return response
        }
        var response = response
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            defer { permit.release() }
            try await body.write(writer)
        }
        return response
    }

    /// How one attempt ended when it did not produce the client's response.
    private enum AttemptFailure: Sendable {
        case transport(UpstreamFailure, worker: WorkerID)
        case status(HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, worker: WorkerID)
    }

    private enum AttemptOutcome: Sendable {
        case response(Response)
        case failed(AttemptFailure)
        case cancelled
    }

    // MARK: Entry point

    func handle(_ request: Request, route: InferenceRoute) async throws(GatewayError) -> Response {
        let requestID = Self.requestID(from: request.headers)
        Self.observeInference(requestID: requestID)
        do {
            let permit = try await admit(key: Authorizer.bearer(request.headers))
            let body = try await request.collectBody(limit: configuration.routing.maxPayloadBytes, style: .openAI)
            var response = Self.releasing(permit, after: try await forward(body: body, headers: request.headers, route: route, requestID: requestID))
            response.headers[Self.requestIDHeader] = requestID
            return response
        } catch {
            var response = error.makeResponse()
            response.headers[Self.requestIDHeader] = requestID
            return response
        }
    }

    /// Routes and forwards one inference request; the answer streams from the worker.
    /// Both front doors come here: REST with the client's body and headers, the binary
    /// protocol with a body it built.
    func forward(body: ByteBuffer, headers: HTTPFields, route: InferenceRoute, requestID: String) async throws(GatewayError) -> Response {
        let routing = configuration.routing
        // The caller (REST `handle`, binary `generate`) marked the observation as inference.
        let observation = RequestObservation.current
        let parsed = try InferenceRequest.parse(
            body, route: route, wantText: routing.policy == .cacheAware, maxTextBytes: routing.maxRoutingTextBytes
        )
        // The model label until a worker is chosen: bounded to the models served.
        if let observation { observation.update { [label = metrics.modelLabel(parsed.model)] in $0.model = label } }
        let headerKey = headers[Self.routingKeyHeader].flatMap { $0.isEmpty ? nil : $0 }
        let routingRequest = RoutingRequest(text: parsed.routingText, key: headerKey ?? parsed.bodyKey)
        let deadline = NIODeadline.now() + TimeAmount(routing.requestTimeout)
        let attempts = configuration.retry.isEnabled ? configuration.retry.maxAttempts : 1

        var tried = Set<WorkerID>()
        var lastFailure: AttemptFailure?
        for attempt in 0..<attempts {
            if attempt > 0 {
                let delay = configuration.retry.backoff.delay(attempt: attempt - 1)
                guard NIODeadline.now() + TimeAmount(delay) < deadline else { break }
                do { try await Task.sleep(for: delay) } catch { throw GatewayError.openAI(499, "client_closed", "the request was cancelled") }
            }
            guard let candidate = try choose(parsed, routingRequest, tried: tried, hadFailure: lastFailure != nil) else { break }
            tried.insert(candidate.id)
            if attempt > 0 { metrics.retries.labels(route.rawValue).increment() }
            observation?.update {
                if attempt > 0 { $0.retries += 1 }
                $0.model = candidate.modelID
                $0.workerID = candidate.id.description
            }
            let outcome = await attemptOnce(
                candidate, parsed, headers: headers, requestID: requestID, deadline: deadline, isLastAttempt: attempt == attempts - 1
            )
            switch outcome {
            case .response(let response):
                return response
            case .cancelled:
                throw GatewayError.openAI(499, "client_closed", "the request was cancelled")
            case .failed(let failure):
                lastFailure = failure
                logger.debug("attempt failed; retrying", metadata: ["request_id": "\(requestID)", "attempt": "\(attempt + 1)", "failure": "\(failure)"])
            }
        }
        guard let lastFailure else {
            throw GatewayError.openAI(503, "no_available_workers", "no worker is available for this request")
        }
        return try Self.finalResponse(for: lastFailure)
    }

    /// The next worker to try: an untried one if possible, else (for a retry) any available.
    private func choose(_ parsed: InferenceRequest, _ routing: RoutingRequest, tried: Set<WorkerID>, hadFailure: Bool) throws(GatewayError) -> RouteCandidate? {
        switch selector.select(model: parsed.model, request: routing, excluding: tried) {
        case .success(let candidate):
            return candidate
        case .failure(.noAvailableWorkers) where hadFailure:
            // Every available worker was tried; retry among them (one worker answering 503, say).
            if case .success(let candidate) = selector.select(model: parsed.model, request: routing) { return candidate }
            return nil
        case .failure(let failure):
            throw Self.error(for: failure)
        }
    }

    static func error(for failure: SelectionFailure) -> GatewayError {
        switch failure {
        case .modelNotFound(let model, let served):
            return .openAI(404, "model_not_found", "The model '\(model)' does not exist (served: \(served.isEmpty ? "none" : served.joined(separator: ", ")))")
        case .modelRequired(let served):
            return .openAI(400, "model_required", "several models are served (\(served.joined(separator: ", "))): name one in 'model'")
        case .noAvailableWorkers(let model):
            var error = GatewayError.openAI(
                503, "no_available_workers",
                model.map { "no healthy worker is available for model '\($0)'" } ?? "no healthy worker is registered"
            )
            error.headers.append(("Retry-After", "1"))
            return error
        }
    }

    private static func finalResponse(for failure: AttemptFailure) throws(GatewayError) -> Response {
        switch failure {
        case .transport(let upstream, let worker):
            switch upstream {
            case .timeout(let message):
                throw GatewayError.openAI(504, "upstream_timeout", "worker \(worker) did not answer in time: \(message)")
            case .connectionRefused(let message), .transport(let message):
                throw GatewayError.openAI(502, "upstream_error", "worker \(worker) failed: \(message)")
            }
        case .status(let status, let headers, let body, let worker):
            // The last worker's own answer, as it gave it.
            var fields = relayedHeaders(headers)
            fields[workerIDHeader] = worker.description
            return Response.inMemory(status: .init(code: Int(status.code)), headers: fields, body: body)
        }
    }

    // MARK: One attempt

    private func attemptOnce(
        _ candidate: RouteCandidate,
        _ parsed: InferenceRequest,
        headers incoming: HTTPFields,
        requestID: String,
        deadline: NIODeadline,
        isLastAttempt: Bool
    ) async -> AttemptOutcome {
        let translate = parsed.route == .generate && candidate.runtime == .openai
        let path = translate ? InferenceRoute.completions.rawValue : parsed.route.rawValue
        let body: ByteBuffer
        if translate {
            do {
                body = try GenerateTranslation.completionsBody(fromGenerate: parsed.body, model: candidate.modelID)
            } catch {
                return .response(error.makeResponse())
            }
        } else {
            body = parsed.body
        }

        let forwarded = Self.forwardedHeaders(
            incoming, candidate: candidate, requestID: requestID, bodyLength: body.readableBytes,
            gatewayHasKey: gatewayHasKey
        )

        let workerID = candidate.id.description
        let load = LoadToken(candidate.handle, upstreamDuration: metrics.upstreamDuration.labels(workerID))
        let started = ContinuousClock.now
        let response: UpstreamResponse
        do {
            // Small answers of known length come whole (they are read whole below anyway).
            response = try await upstream.post(
                candidate.url, path: path, headers: forwarded, body: body, deadline: deadline, wholeAnswerLimit: Self.wholeBodyLimit, fallback: client
            )
        } catch {
            return transportFailure(error, candidate, load: load)
        }

        let status = response.status
        if status.code >= 500 {
            noteBreaker(candidate, candidate.handle.recordFailure(at: .now))
        } else {
            noteBreaker(candidate, candidate.handle.recordSuccess())
        }
        if Self.retryableStatuses.contains(status.code) && !isLastAttempt {
            let errorBody = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            load.release()
            return .failed(.status(status, headers: response.headers, body: errorBody, worker: candidate.id))
        }

        var headers = Self.relayedHeaders(response.headers)
        headers[Self.workerIDHeader] = workerID
        let isEventStream = response.isEventStream

        if translate && (200..<300).contains(status.code) {
            headers[.contentLength] = nil
            if isEventStream {
                return .response(Response(status: .init(code: Int(status.code)), headers: headers, body: translatedStream(response, load: load, candidate: candidate, requestID: requestID)))
            }
            let whole: ByteBuffer
            do {
                whole = try await response.body.collect(upTo: configuration.routing.maxPayloadBytes)
            } catch {
                load.release()
                return .response(GatewayError.openAI(502, "upstream_error", "worker \(candidate.id) failed mid-answer: \(UpstreamFailure(error).message)").makeResponse())
            }
            load.release()
            guard let translated = GenerateTranslation.generateBody(fromCompletions: whole, requestID: requestID, latency: (ContinuousClock.now - started).seconds) else {
                return .response(GatewayError.openAI(502, "upstream_error", "worker \(candidate.id) answered /v1/completions with an unexpected body").makeResponse())
            }
            headers[.contentType] = "application/json"
            return .response(Response.inMemory(status: .ok, headers: headers, body: translated))
        }

        let contentLength = response.contentLength
        headers[.contentLength] = nil
        // A small answer of known length is read whole before the client's head goes out,
        // so a worker failing mid-body is still an attempt that can be retried elsewhere
        // (nothing reached the client yet).
        if !isEventStream, let contentLength, contentLength <= Self.wholeBodyLimit {
            let whole: ByteBuffer
            do {
                whole = try await response.body.collect(upTo: contentLength)
            } catch {
                return transportFailure(error, candidate, load: load)
            }
            load.release()
            return .response(Response.inMemory(status: .init(code: Int(status.code)), headers: headers, body: whole))
        }
        return .response(
            Response(
                status: .init(code: Int(status.code)),
                headers: headers,
                body: relayedBody(response, contentLength: contentLength, isEventStream: isEventStream, load: load, candidate: candidate)
            )
        )
    }

    /// The worker's body, chunk by chunk as it arrives. If the worker fails
    /// mid-stream an event stream ends with an SSE error event; any other body
    /// aborts the connection (the client sees a truncated answer, not a hang).
    private func relayedBody(_ response: UpstreamResponse, contentLength: Int?, isEventStream: Bool, load: LoadToken, candidate: RouteCandidate) -> ResponseBody {
        ResponseBody(contentLength: contentLength) { [self] writer in
            defer { load.release() }
            var iterator = response.body.makeAsyncIterator()
            var lastTwo: (UInt8, UInt8) = (UInt8(ascii: "\n"), UInt8(ascii: "\n"))
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await iterator.next()
                } catch {
                    if Task.isCancelled || error is CancellationError { throw error }
                    let failure = midStreamFailure(candidate, error)
                    guard isEventStream else { throw error }
                    if lastTwo != (UInt8(ascii: "\n"), UInt8(ascii: "\n")) { try await writer.write(ByteBuffer(string: "\n\n")) }
                    try await writer.write(Self.errorEvent(failure, worker: candidate.id))
                    try await writer.write(ServerSentEvent.done)
                    break
                }
                guard let chunk else { break }
                if chunk.readableBytes >= 2 {
                    lastTwo = (chunk.getInteger(at: chunk.writerIndex - 2)!, chunk.getInteger(at: chunk.writerIndex - 1)!)
                } else if chunk.readableBytes == 1 {
                    lastTwo = (lastTwo.1, chunk.getInteger(at: chunk.readerIndex)!)
                }
                try await writer.write(chunk)
            }
            try await writer.finish(nil)
        }
    }

    /// An OpenAI event stream turned into SGLang `/generate` events as it arrives.
    private func translatedStream(_ response: UpstreamResponse, load: LoadToken, candidate: RouteCandidate, requestID: String) -> ResponseBody {
        ResponseBody { [self] writer in
            defer { load.release() }
            var translator = GenerateTranslation.StreamTranslator(requestID: requestID)
            var iterator = response.body.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await iterator.next()
                } catch {
                    if Task.isCancelled || error is CancellationError { throw error }
                    let failure = midStreamFailure(candidate, error)
                    try await writer.write(Self.errorEvent(failure, worker: candidate.id))
                    try await writer.write(ServerSentEvent.done)
                    break
                }
                guard let chunk else {
                    let tail = translator.finishStream()
                    if tail.readableBytes > 0 { try await writer.write(tail) }
                    break
                }
                let out = translator.feed(chunk)
                if out.readableBytes > 0 { try await writer.write(out) }
            }
            try await writer.finish(nil)
        }
    }

    private func midStreamFailure(_ candidate: RouteCandidate, _ error: any Error) -> UpstreamFailure {
        let failure = UpstreamFailure(error)
        noteBreaker(candidate, candidate.handle.recordFailure(at: .now))
        logger.warning("worker failed mid-answer", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)", "error": "\(failure.message)"])
        return failure
    }

    static func errorEvent(_ failure: UpstreamFailure, worker: WorkerID) -> ByteBuffer {
        let error = GatewayError.openAI(502, "upstream_error", "worker \(worker) failed mid-stream: \(failure.message)")
        return ServerSentEvent.data(error.jsonBody)
    }

    /// An attempt that failed on the transport (before any byte reached the client):
    /// the load is given back, and the failure counts against the worker unless the
    /// client itself went away.
    private func transportFailure(_ error: any Error, _ candidate: RouteCandidate, load: LoadToken) -> AttemptOutcome {
        load.release()
        if Task.isCancelled || error is CancellationError { return .cancelled }
        let failure = UpstreamFailure(error)
        noteFailure(candidate, failure)
        return .failed(.transport(failure, worker: candidate.id))
    }

    // MARK: Bookkeeping

    private func noteFailure(_ candidate: RouteCandidate, _ failure: UpstreamFailure) {
        noteBreaker(candidate, candidate.handle.recordFailure(at: .now))
        if failure.isConnectionRefused, registry.recordConnectionRefused(candidate.id) == .becameUnhealthy {
            logger.warning("worker refused a connection; marked unhealthy", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)"])
        }
    }

    private func noteBreaker(_ candidate: RouteCandidate, _ transition: CircuitBreaker.Transition?) {
        guard let transition else { return }
        logger.notice("circuit breaker \(transition)", metadata: ["worker_id": "\(candidate.id)", "url": "\(candidate.url)"])
    }

    // MARK: Headers

    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "content-length", "host",
    ]

    /// - Parameter gatewayHasKey: when the gateway checks its own API key, the client's
    ///   `Authorization` carries that key and must not reach workers.
    static func forwardedHeaders(_ incoming: HTTPFields, candidate: RouteCandidate, requestID: String, bodyLength: Int, gatewayHasKey: Bool = false) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: incoming[.contentType] ?? "application/json")
        headers.add(name: "Content-Length", value: String(bodyLength))
        if let accept = incoming[.accept] { headers.add(name: "Accept", value: accept) }
        if let key = candidate.apiKey {
            headers.add(name: "Authorization", value: "Bearer \(key)")
        } else if !gatewayHasKey, let authorization = incoming[.authorization] {
            headers.add(name: "Authorization", value: authorization)
        }
        headers.add(name: "X-Request-Id", value: requestID)
        for name in ["traceparent", "tracestate", "X-SMG-Routing-Key"] {
            if let field = HTTPField.Name(name), let value = incoming[field] { headers.add(name: name, value: value) }
        }
        return headers
    }

    static func relayedHeaders(_ upstream: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in upstream where !hopByHop.contains(name.lowercased()) {
            if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
        }
        return fields
    }

    /// Marks the current request's observation (metrics, log line) as inference.
    static func observeInference(requestID: String) {
        RequestObservation.current?.update {
            $0.isInference = true
            $0.requestID = requestID
        }
    }

    /// The client's `X-Request-Id` (or `X-Correlation-Id`), else a new one.
    static func requestID(from headers: HTTPFields) -> String {
        if let id = headers[requestIDHeader] ?? headers[correlationIDHeader], !id.isEmpty, id.utf8.count <= 256 { return id }
        return RequestIDs.next()
    }
}

/// Holds one unit of a worker's load until released (once), or until dropped:
/// a response body the server never sends still gives its load back.
///
/// Its lifetime is the attempt's: release records the upstream duration.
final class LoadToken: Sendable {
    private let handle: WorkerHandle
    private let released = Atomic<Bool>(false)
    private let upstreamDuration: Histogram?
    private let started = ContinuousClock.now

    init(_ handle: WorkerHandle, upstreamDuration: Histogram? = nil) {
        self.handle = handle
        self.upstreamDuration = upstreamDuration
        handle.beginRequest()
    }

    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) {
            handle.endRequest()
            upstreamDuration?.observe(ContinuousClock.now - started)
        }
    }

    deinit { release() }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// New request ids: `gw-` and 24 hex digits, a random prefix drawn once per process
/// followed by a counter. Unique within a process and across restarts (the prefix),
/// without a system call per request (ids need to be unique, not unpredictable).
enum RequestIDs {
    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return "gw-" + String(generator.next() as UInt64 >> 16, radix: 16).leftPadded(12)
    }()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue & 0xFFFF_FFFF_FFFF
        return prefix + String(n, radix: 16).leftPadded(12)
    }
}
