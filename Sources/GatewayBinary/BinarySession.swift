import GatewayCore

/// One binary-protocol connection's rules, as decisions (docs/binary-protocol.md):
/// the handshake, which calls may start, when a stream id is free again, `GoAway`,
/// the idle timeout. A value with no I/O; ``BinaryConnectionHandler`` executes it.
///
/// - `Hello` first (else `HELLO_REQUIRED` on stream 0, then close);
/// - a call needs a stream id ≥ 1 not used by a running call; a call on a stream id that
///   is in use is refused with `STREAM_ID_IN_USE` **on stream 0** (naming the id), so the
///   running call on that stream still ends with exactly one terminal message of its own;
/// - a stream id is free again as soon as its terminal message has been written;
/// - after `GoAway` no call starts (`GOING_AWAY`); the connection closes once the running
///   calls have ended. `GoAway.last_stream_id` is the highest stream id of a call the server
///   accepted: calls on ids above it were never started and may be sent again elsewhere;
/// - a client that half-closes its side gets the answers of its running calls, then the close.
struct BinarySession: Sendable {
    enum Phase: Sendable, Equatable {
        case awaitingHello
        case open
        /// `GoAway` sent: running calls finish, no new ones.
        case goingAway
        case closed
    }

    /// How a call request is answered.
    enum Admission: Sendable, Equatable {
        case start
        /// Refused: the error goes on `stream`.
        case refuse(GatewayError, stream: UInt64)
    }

    let maxConcurrentStreams: Int
    private(set) var phase = Phase.awaitingHello
    private(set) var running: Set<UInt64> = []
    /// The highest stream id of an accepted call.
    private(set) var highestStreamID: UInt64 = 0
    private var inputClosed = false

    init(maxConcurrentStreams: Int) {
        self.maxConcurrentStreams = max(maxConcurrentStreams, 1)
    }

    var activeCalls: Int { running.count }

    /// The handshake succeeded.
    mutating func helloAccepted() {
        if phase == .awaitingHello { phase = .open }
    }

    /// A call request on `stream`.
    mutating func request(on stream: UInt64, refusal: GatewayError? = nil) -> Admission {
        if stream == 0 {
            return .refuse(.protocolError("INVALID_STREAM_ID", 400, "calls need a stream id of 1 or more"), stream: 0)
        }
        if phase != .open {
            return .refuse(.protocolError("GOING_AWAY", 503, "the server is shutting down this connection"), stream: stream)
        }
        if running.contains(stream) {
            return .refuse(.protocolError("STREAM_ID_IN_USE", 400, "stream \(stream) already has a call running"), stream: 0)
        }
        if let refusal { return .refuse(refusal, stream: stream) }
        if running.count >= maxConcurrentStreams {
            return .refuse(
                .protocolError("TOO_MANY_STREAMS", 429, "at most \(maxConcurrentStreams) calls may run at once on a connection"), stream: stream
            )
        }
        running.insert(stream)
        highestStreamID = max(highestStreamID, stream)
        return .start
    }

    /// The terminal message of `stream` was written: the id is free. True when the
    /// connection should close now (going away or half-closed, and nothing runs).
    mutating func terminalWritten(on stream: UInt64) -> Bool {
        running.remove(stream)
        return shouldClose
    }

    /// Announces the end (shutdown, idle timeout). Nil when already announced; else the
    /// `last_stream_id` to send, and whether to close now (nothing runs).
    mutating func goAway() -> (lastStreamID: UInt64, closeNow: Bool)? {
        guard phase == .open || phase == .awaitingHello else { return nil }
        phase = .goingAway
        return (highestStreamID, running.isEmpty)
    }

    /// The client half-closed: close now if nothing runs, else once the calls ended.
    mutating func inputEnded() -> Bool {
        inputClosed = true
        return shouldClose
    }

    /// Whether the idle timeout may close the connection now (no call runs).
    var isIdle: Bool { running.isEmpty }

    mutating func closed() {
        phase = .closed
        running.removeAll()
    }

    private var shouldClose: Bool {
        running.isEmpty && (phase == .goingAway || inputClosed) && phase != .closed
    }
}
