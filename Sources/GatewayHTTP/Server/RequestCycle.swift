/// One HTTP/1.1 connection's request cycle, as decisions: which timer runs, when the
/// connection closes, when the next (pipelined) request may be read.
///
/// `idle → readingHead → readingBody → answering → idle …`, each phase with its clock:
/// - idle (between requests): `--idle-timeout-secs`;
/// - the head, from the read that brought its first byte: `--header-read-timeout-secs`
///   (a client sending a byte a second cannot hold a connection);
/// - the body, from the read that brought the head: `--body-read-timeout-secs`;
/// - while answering, a client that accepts no byte for `--send-timeout-secs` (the
///   connection is not writable all that time) is cut off, and its request with it.
/// A timer is armed only when a read ends with the head or body incomplete, so a request
/// that arrives whole in one read arms none.
///
/// The connection closes after an answer when the client asked (`Connection: close`,
/// HTTP/1.0 without keep-alive), when it half-closed its side (it still gets its
/// answer), when the gateway is shutting down, or when the answer had no length to
/// delimit it. A value with no I/O; ``HTTPConnectionHandler`` executes its actions.
struct RequestCycle: Sendable, Equatable {
    enum Phase: Sendable, Equatable {
        case idle
        case readingHead
        case readingBody
        case answering
        case closed
    }

    enum Timer: Sendable, Equatable {
        case idle, head, body, send
    }

    /// What the handler does.
    struct Action: Sendable, Equatable {
        /// Arm this timer (replacing any), or cancel the armed one (`.some(nil)`), or leave it (nil).
        var timer: Timer??
        var close = false

        static let none = Action()
        static let close = Action(timer: .some(nil), close: true)

        static func arm(_ timer: Timer) -> Action { Action(timer: .some(timer)) }
        static let cancelTimer = Action(timer: .some(nil))
    }

    private(set) var phase = Phase.idle
    private(set) var armed: Timer?
    /// Close once the answer is out.
    private(set) var closeAfterAnswer = false
    private var inputClosed = false
    private var quiescing = false

    var isIdle: Bool { phase == .idle }

    // MARK: Events

    /// The connection opened: the idle clock runs until the first byte.
    mutating func opened() -> Action {
        set(.idle)
    }

    /// A read brought bytes (seen before the HTTP decoder).
    mutating func bytesArrived() -> Action {
        guard phase == .idle else { return .none }
        phase = .readingHead
        return set(nil)
    }

    /// A read is over: an incomplete head or body gets its clock (once per phase).
    mutating func readComplete() -> Action {
        switch phase {
        case .readingHead where armed != .head: return set(.head)
        case .readingBody where armed != .body: return set(.body)
        default: return .none
        }
    }

    /// A request's head arrived; `keepAlive`: whether the client keeps the connection.
    mutating func receivedHead(keepAlive: Bool) -> Action {
        guard phase == .idle || phase == .readingHead else { return .none }
        phase = .readingBody
        if !keepAlive { closeAfterAnswer = true }
        return set(nil)
    }

    /// The request is complete: it is answered now.
    mutating func receivedEnd() -> Action {
        guard phase == .readingBody else { return .none }
        phase = .answering
        return set(nil)
    }

    /// The answer will not be delimited by a length (HTTP/1.0 stream): close at its end.
    mutating func answerNeedsClose() {
        closeAfterAnswer = true
    }

    /// Whether the answer being written must say `Connection: close`.
    var answerCloses: Bool { closeAfterAnswer || quiescing || inputClosed }

    /// The answer's last byte is written: the next request, or the close.
    mutating func answerEnded() -> Action {
        guard phase == .answering else { return .none }
        if answerCloses {
            phase = .closed
            return .close
        }
        phase = .idle
        return set(.idle)
    }

    /// The connection's writability changed while answering.
    mutating func writabilityChanged(isWritable: Bool) -> Action {
        guard phase == .answering else { return .none }
        if isWritable { return armed == .send ? set(nil) : .none }
        return armed == .send ? .none : set(.send)
    }

    /// The client half-closed its side: no more requests, but an answer under way (or a
    /// request being read) still completes.
    mutating func inputEnded() -> Action {
        inputClosed = true
        switch phase {
        case .idle, .readingHead:
            phase = .closed
            return .close
        case .readingBody:
            // The request can never complete.
            phase = .closed
            return .close
        case .answering, .closed:
            return .none
        }
    }

    /// The gateway is shutting down: an idle connection closes now, a busy one after its answer.
    mutating func quiesce() -> Action {
        quiescing = true
        switch phase {
        case .idle:
            phase = .closed
            return .close
        case .readingHead, .readingBody, .answering, .closed:
            return .none
        }
    }

    /// `timer` fired: the connection is cut off (if it was still the armed one).
    mutating func timerFired(_ timer: Timer) -> Action {
        guard armed == timer, phase != .closed else { return .none }
        armed = nil
        phase = .closed
        return Action(timer: nil, close: true)
    }

    /// A request that cannot be answered on this connection any more (malformed): close.
    mutating func failed() -> Action {
        phase = .closed
        return .close
    }

    private mutating func set(_ timer: Timer?) -> Action {
        if armed == timer { return .none }
        armed = timer
        return Action(timer: .some(timer))
    }
}
