import GatewayCore
import GatewayOpenAI
import GatewayUpstream
import GatewayWire
import NIOCore
import NIOHTTP1

/// One inference request, as either door hands it to the core.
public struct InferenceCall: Sendable {
    public enum Input: Sendable {
        /// A body as the client sent it to `route`: scanned for the few fields routing
        /// needs and forwarded unchanged (translated for `/generate` on OpenAI-only workers).
        case body(ByteBuffer, route: InferenceRoute)
        /// A typed generate (the binary protocol): the worker's body is built from it.
        case generate(Wire.GenerateRequest)
    }

    public var input: Input
    /// Echoed to the client and sent to the worker (`X-Request-Id`).
    public var requestID: String
    /// Pins the request for consistent-hash routing (`X-SMG-Routing-Key`, the binary `routing_key`).
    public var routingKey: String?
    /// Who asks: the rate limiter's key.
    public var principal: String
    /// Client headers passed on to the worker (`traceparent`, `tracestate`, `Accept`,
    /// `Content-Type`, and `Authorization` when the gateway checks no key of its own).
    public var forwardedHeaders: HTTPHeaders

    /// The rate limiter's key: the API key the door authenticated (when the gateway
    /// requires one; `presentedKey` has passed `authorizer` by then), else the client's address. Without `--api-key` a bearer string proves
    /// nothing, and keying by it would give a client a fresh bucket per string.
    public static func principal(presentedKey: String?, authorizer: Authorizer, peerAddress: String?) -> String {
        if authorizer.apiKey != nil, let presentedKey { return "key:" + presentedKey }
        return "ip:" + (peerAddress ?? "unknown")
    }

    public init(input: Input, requestID: String, routingKey: String? = nil, principal: String = "anonymous", forwardedHeaders: HTTPHeaders = [:]) {
        self.input = input
        self.requestID = requestID
        self.routingKey = routingKey
        self.principal = principal
        self.forwardedHeaders = forwardedHeaders
    }
}

/// How the core answers a call: whole, as the head of a stream of events, or with the
/// gateway's own error before any worker answered.
public enum InferenceAnswer: Sendable {
    /// A complete answer: the worker's status, headers and body (or, for `/generate`
    /// on an OpenAI-only worker, its answer translated).
    case whole(status: Int, headers: HTTPHeaders, body: ByteBuffer, worker: WorkerID)
    /// An answer whose body follows as ``InferenceEvent``s.
    case stream(status: Int, headers: HTTPHeaders, isEventStream: Bool, worker: WorkerID)
    /// No worker answered: why.
    case failed(GatewayError)
}

/// A piece of a streamed answer.
public enum InferenceEvent: Sendable {
    /// One event of an event stream (decoded once, in the transport).
    case event(ServerSentEvent)
    /// Body bytes of an answer that is not an event stream.
    case bytes(ByteBuffer)
    /// The worker failed mid-answer: the stream ends here (the door says so its own way).
    case workerFailed(GatewayError)
    /// The answer is complete.
    case done
}

/// Receives a call's answer on the call's event loop: one `inferenceAnswered`, then,
/// for a `.stream` answer, events ending with `.done` or `.workerFailed`. Nothing
/// arrives after the call was cancelled.
public protocol InferenceReceiver: AnyObject {
    func inferenceAnswered(_ answer: InferenceAnswer)
    func inferenceEvent(_ event: InferenceEvent)
}
