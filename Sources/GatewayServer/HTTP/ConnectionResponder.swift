import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Hummingbird's HTTP/1.1 channel (codec, idle timeout, graceful shutdown, the
/// connection's lifetime) with every request answered by a ``ConnectionResponder``
/// placed in front of Hummingbird's own request loop, which then sees no requests.
struct GatewayHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let shared: ConnectionResponder.Shared

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            // After the connection-state handler, which counts requests and responses for
            // the idle timeout and graceful shutdown: it sees ours as it would see Hummingbird's.
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(ConnectionResponder(shared: shared, eventLoop: channel.eventLoop), position: .after(state))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        // Hummingbird's loop keeps the connection until its input ends, and answers what
        // ConnectionResponder passes on while idle (a malformed request: 400, then close).
        await base.handle(value: value, logger: logger)
    }
}

/// Answers the requests of one HTTP/1.1 connection, one at a time and in order.
///
/// A request is read whole (its body up to the route's limit) on the event loop, then
/// answered by ``GatewayResponder`` in a task. Inference and probe routes run that
/// task on the connection's event loop: reading the request, the call to the worker
/// (whose connection lives on the same loop) and the answer never change threads, and
/// a small answer leaves in one write. Each thread hand-off costs a wake-up: against
/// Hummingbird's own loop (four hand-offs per proxied request) this about halved the
/// median latency the gateway adds at 2,000 and 5,000 requests/s (see the README's
/// performance section).
/// Other routes (the worker list takes milliseconds at 10,000 workers) run on the shared
/// concurrency pool, so they do not hold up the other connections of their loop.
///
/// Parts of pipelined requests that arrive meanwhile wait, and so do errors and events
/// (a client's half-close: it may still want its answer); past `maxHeldBytes` reading
/// stops until the answer is out. When the connection closes (a reset, a failed write),
/// the request's task is cancelled, and with it the call to the worker.
final class ConnectionResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's responder shares.
    struct Shared: Sendable {
        let responder: GatewayResponder
        let serverName: String
        let logger: Logger
        /// The body limit of inference routes (larger bodies get 413 from the route).
        let inferenceBodyLimit: Int
        /// The body limit of every other route.
        let controlBodyLimit: Int
    }

    /// Pipelined input held back while a request is answered.
    private enum Held {
        case part(HTTPRequestPart)
        case error(any Error)
        case event(Any)
    }

    private enum Phase {
        case idle
        case reading
        case responding
    }

    /// Pipelined input held while answering before reading stops.
    static let maxHeldBytes = 64 * 1024
    /// What a held head, error or event counts against `maxHeldBytes`.
    private static let heldItemBytes = 64

    private let shared: Shared
    private let executor: EventLoopTaskExecutor
    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    private var head: HTTPRequest?
    private var body: ByteBuffer?
    private var bodyLimit = 0
    /// Whether the request being read is answered on the event loop.
    private var answerOnLoop = false
    private var held = CircularBuffer<Held>(initialCapacity: 4)
    private var heldBytes = 0
    private var readHeld = false
    private var task: Task<Void, Never>?
    private var closeWhenAnswered = false
    /// Bytes of a known-length answer body still to write (the end follows the last
    /// byte in the same flush).
    private var bodyRemaining: Int?

    init(shared: Shared, eventLoop: any EventLoop) {
        self.shared = shared
        self.executor = EventLoopTaskExecutor(eventLoop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        task?.cancel()
    }

    // MARK: Input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard phase != .responding && held.isEmpty else {
            hold(.part(part))
            return
        }
        receive(part, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch phase {
        case .responding:
            hold(.error(error))
        case .reading:
            // A request cut short (a malformed part): Hummingbird's loop answers a parse
            // error with 400, and any error ends it, closing the connection.
            reset()
            context.fireErrorCaught(error)
        case .idle:
            context.fireErrorCaught(error)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A half-close ends Hummingbird's loop, which closes the connection: not before the answer.
        if phase == .responding || !held.isEmpty {
            hold(.event(event))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        held.removeAll()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if phase == .responding && heldBytes >= Self.maxHeldBytes {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func hold(_ item: Held) {
        if case .part(.body(let buffer)) = item { heldBytes += buffer.readableBytes } else { heldBytes += Self.heldItemBytes }
        held.append(item)
    }

    private func receive(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            self.head = head
            body = nil
            phase = .reading
            // Where and with what limit it is answered, decided once from its path.
            let path = head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? ""
            bodyLimit = InferenceRoute(rawValue: path) != nil ? shared.inferenceBodyLimit : shared.controlBodyLimit
            answerOnLoop = shared.responder.answersOnEventLoop(path: path)
        case .body(let buffer):
            guard phase == .reading else { return }
            // One byte past the limit is kept, so the route's own limit check refuses the
            // body (413); the rest is read and dropped, leaving the connection usable.
            let room = bodyLimit + 1 - (body?.readableBytes ?? 0)
            guard room > 0 else { return }
            let kept = buffer.readableBytes <= room ? buffer : buffer.getSlice(at: buffer.readerIndex, length: room)!
            if body == nil {
                body = kept
            } else {
                body!.writeImmutableBuffer(kept)
            }
        case .end:
            guard phase == .reading, let head else { return }
            self.head = nil
            respond(to: head, body: body ?? ByteBuffer(), context: context)
            body = nil
        }
    }

    private func reset() {
        phase = .idle
        head = nil
        body = nil
    }

    // MARK: Answer

    private func respond(to head: HTTPRequest, body: ByteBuffer, context: ChannelHandlerContext) {
        phase = .responding
        if let connection = head.headerFields[.connection], connection.lowercased().contains("close") { closeWhenAnswered = true }
        let request = Request(head: head, body: RequestBody(buffer: body))
        let shared = shared
        let channel = context.channel
        let connection = NIOLoopBound(self, eventLoop: context.eventLoop)
        let work: @Sendable () async -> Void = {
            var response: Response
            do {
                let requestContext = GatewayRequestContext(source: .init(channel: channel, logger: shared.logger))
                response = try await shared.responder.respond(to: request, context: requestContext)
            } catch {
                response = Response(status: .internalServerError)
            }
            response.headers[.date] = HTTPDate.now()
            response.headers[.server] = shared.serverName
            let writer = ConnectionBodyWriter(connection: connection, channel: channel, head: response.head)
            var completed = true
            do {
                try await response.body.write(writer)
            } catch {
                completed = false
            }
            connection.eventLoop.execute { [completed] in connection.value.answered(completed: completed) }
        }
        if answerOnLoop {
            task = Task(executorPreference: executor, operation: work)
        } else {
            task = Task(operation: work)
        }
    }

    /// Writes the head (once, before the first body part) and `buffer`; a future to wait
    /// for when the client is not keeping up (nil otherwise).
    fileprivate func writeBody(_ buffer: ByteBuffer, head: HTTPResponse?) -> EventLoopFuture<Void>? {
        guard let context else { return executor.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if let head { startAnswer(head, context: context) }
        if let remaining = bodyRemaining {
            let left = remaining - buffer.readableBytes
            bodyRemaining = left
            // The last byte of a known-length body: the end follows at once, in the same flush.
            if left == 0 {
                context.write(wrapOutboundOut(.body(buffer)), promise: nil)
                return nil
            }
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.body(buffer)), promise: promise)
        return context.channel.isWritable ? nil : promise.futureResult
    }

    /// Writes the head if not yet written, and the end; a failed future when the
    /// connection is gone (nil otherwise: the answer is complete, nothing to wait for).
    fileprivate func finishAnswer(head: HTTPResponse?, trailers: HTTPFields?) -> EventLoopFuture<Void>? {
        guard let context else { return executor.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        if let head { startAnswer(head, context: context) }
        context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        return nil
    }

    private func startAnswer(_ head: HTTPResponse, context: ChannelHandlerContext) {
        bodyRemaining = head.headerFields[.contentLength].flatMap(Int.init)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// The answer is out (or failed): the next pipelined request, or the close.
    private func answered(completed: Bool) {
        task = nil
        phase = .idle
        bodyRemaining = nil
        guard let context else { return }
        guard completed, !closeWhenAnswered else {
            context.close(promise: nil)
            return
        }
        while phase != .responding, let item = held.popFirst() {
            switch item {
            case .part(let part):
                if case .body(let buffer) = part { heldBytes -= buffer.readableBytes } else { heldBytes -= Self.heldItemBytes }
                receive(part, context: context)
            case .error(let error):
                heldBytes -= Self.heldItemBytes
                errorCaught(context: context, error: error)
            case .event(let event):
                heldBytes -= Self.heldItemBytes
                context.fireUserInboundEventTriggered(event)
            }
        }
        if readHeld && heldBytes < Self.maxHeldBytes {
            readHeld = false
            context.read()
        }
    }
}

/// Writes a response body through its connection's ``ConnectionResponder``, on the
/// connection's event loop: directly when already there; from elsewhere handed over
/// without waiting while the connection takes more (in order: the loop runs what it is
/// given first to last), and waited for when it does not.
struct ConnectionBodyWriter: ResponseBodyWriter {
    let connection: NIOLoopBound<ConnectionResponder>
    let channel: any Channel
    /// Sent before the first body part or the end.
    var head: HTTPResponse?

    mutating func write(_ buffer: ByteBuffer) async throws {
        let head = self.head
        self.head = nil
        let wait: EventLoopFuture<Void>?
        if connection.eventLoop.inEventLoop {
            wait = connection.value.writeBody(buffer, head: head)
        } else if channel.isWritable {
            connection.eventLoop.execute { [connection] in _ = connection.value.writeBody(buffer, head: head) }
            return
        } else {
            wait = try await connection.eventLoop.submit { [connection] in
                connection.value.writeBody(buffer, head: head)
            }.get()
        }
        try await wait?.get()
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let head = self.head
        if connection.eventLoop.inEventLoop {
            try await connection.value.finishAnswer(head: head, trailers: trailingHeaders)?.get()
        } else {
            connection.eventLoop.execute { [connection] in _ = connection.value.finishAnswer(head: head, trailers: trailingHeaders) }
        }
    }
}

/// Runs tasks on one event loop: a task preferring it resumes on the loop that
/// delivered its I/O, without a thread switch.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The `Date` header's value (RFC 9110 IMF-fixdate), formatted once per second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int64, value: String)>((-1, ""))
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        let second = Int64(Date().timeIntervalSince1970.rounded(.down))
        if let cached = cache.withLock({ $0.second == second ? $0.value : nil }) { return cached }
        let value = format(unixSeconds: second)
        cache.withLock { $0 = (second, value) }
        return value
    }

    /// `seconds` since 1970 in UTC, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    static func format(unixSeconds seconds: Int64) -> String {
        let (day, secondOfDay) = seconds.quotientAndRemainder(dividingBy: 86_400)
        let days = secondOfDay < 0 ? day - 1 : day
        let second = secondOfDay < 0 ? secondOfDay + 86_400 : secondOfDay
        // The civil date of a day count (Howard Hinnant's days_from_civil, inverted).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let dayOfMonth = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 7) % 7
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(Self.days[Int(weekday)]), \(two(dayOfMonth)) \(months[Int(month - 1)]) \(year) "
            + "\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60)) GMT"
    }
}
