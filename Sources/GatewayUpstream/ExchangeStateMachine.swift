import GatewayCore

/// One request to a worker and its answer, as decisions: which connection, what to
/// hand the receiver, whether the connection can be reused.
///
/// `idle → waitingForConnection → sending → awaitingHead → gathering | streaming → done | failed`.
/// A connection taken from the idle pool may have been closed by the worker while it
/// sat there (workers close idle keep-alive connections after a few seconds): when it
/// fails before any byte of the answer arrives, the request goes once more on a new
/// connection. Any other failure ends the exchange.
///
/// A value with no I/O: ``Exchange`` executes its actions on the connection's event loop.
struct ExchangeStateMachine: Sendable {
    /// What the answer's head says, as the machine needs it.
    struct Head: Sendable, Equatable {
        var status: Int
        var contentLength: Int?
        var isEventStream: Bool
        var keepAlive: Bool
    }

    enum Action: Sendable, Equatable {
        /// Find a connection: an idle one, a new one, or wait for one (the cap).
        case acquireConnection
        /// Write the request on the connection just acquired.
        case writeRequest
        /// Collect the body: the answer is handed over whole at its end.
        case startGathering
        /// Hand the head to the receiver; the body follows in parts.
        case deliverHead
        /// Hand this body part to the receiver.
        case deliverPart
        /// Keep the part (gathering).
        case keepPart
        /// The answer is complete: hand over the gathered answer (`whole`) or the end;
        /// the connection is released (reused when `reuse`).
        case finish(whole: Bool, reuse: Bool)
        /// Drop this connection and send the request again on a new one.
        case retryOnNewConnection
        /// End with `failure` (after the head when `afterHead`); the connection, if any, is closed.
        case fail(WorkerFailure, afterHead: Bool)
        /// End without telling the receiver (it cancelled); the connection, if any, is closed.
        case abandon
        case none
    }

    private enum State: Sendable, Equatable {
        case idle
        case waitingForConnection
        /// The request is going out on a connection (`reused`: from the idle pool).
        case awaitingHead(reused: Bool, retried: Bool)
        case gathering(Head)
        case streaming(Head)
        case done
    }

    /// Answers of known length up to this many bytes, not event streams, are gathered whole (0: never).
    let wholeAnswerLimit: Int
    private var state = State.idle

    init(wholeAnswerLimit: Int) {
        self.wholeAnswerLimit = wholeAnswerLimit
    }

    var isDone: Bool { state == .done }

    /// Whether a byte of the answer arrived (after which nothing is sent again).
    var hasAnswer: Bool {
        switch state {
        case .gathering, .streaming: true
        case .idle, .waitingForConnection, .awaitingHead, .done: false
        }
    }

    mutating func start() -> Action {
        guard state == .idle else { return .none }
        state = .waitingForConnection
        return .acquireConnection
    }

    mutating func connectionAcquired(reused: Bool) -> Action {
        switch state {
        case .waitingForConnection:
            state = .awaitingHead(reused: reused, retried: false)
            return .writeRequest
        case .awaitingHead(_, let retried) where retried:
            // The second connection after a stale one.
            state = .awaitingHead(reused: reused, retried: true)
            return .writeRequest
        default:
            return .none
        }
    }

    mutating func connectFailed(_ failure: WorkerFailure) -> Action {
        switch state {
        case .waitingForConnection, .awaitingHead:
            state = .done
            return .fail(failure, afterHead: false)
        default:
            return .none
        }
    }

    mutating func receivedHead(_ head: Head) -> Action {
        guard case .awaitingHead = state else { return .none }
        if wholeAnswerLimit > 0, !head.isEventStream, let length = head.contentLength, length <= wholeAnswerLimit {
            state = .gathering(head)
            return .startGathering
        }
        state = .streaming(head)
        return .deliverHead
    }

    mutating func receivedPart() -> Action {
        switch state {
        case .gathering: return .keepPart
        case .streaming: return .deliverPart
        default: return .none
        }
    }

    mutating func receivedEnd() -> Action {
        switch state {
        case .gathering(let head):
            state = .done
            return .finish(whole: true, reuse: head.keepAlive)
        case .streaming(let head):
            state = .done
            return .finish(whole: false, reuse: head.keepAlive)
        default:
            return .none
        }
    }

    /// The connection failed or closed before the answer ended. `mayBeStale`: the
    /// failure is the socket's (a reset, an end of input), not a malformed answer.
    mutating func connectionFailed(_ failure: WorkerFailure, mayBeStale: Bool = true) -> Action {
        switch state {
        case .awaitingHead(let reused, let retried):
            if reused && !retried && mayBeStale {
                // A stale keep-alive connection: nothing of the answer came, so the worker
                // never took the request. Once more, on a new connection.
                state = .awaitingHead(reused: false, retried: true)
                return .retryOnNewConnection
            }
            state = .done
            return .fail(failure, afterHead: false)
        case .gathering:
            // Nothing was handed over yet: for the caller this is a failure before the head.
            state = .done
            return .fail(failure, afterHead: false)
        case .streaming:
            state = .done
            return .fail(failure, afterHead: true)
        case .idle, .waitingForConnection, .done:
            return .none
        }
    }

    /// The request's deadline passed.
    mutating func deadlinePassed() -> Action {
        guard state != .done, state != .idle else { return .none }
        let afterHead: Bool
        if case .streaming = state { afterHead = true } else { afterHead = false }
        state = .done
        return .fail(.timedOut("timed out waiting for the answer"), afterHead: afterHead)
    }

    /// The caller gave up.
    mutating func cancel() -> Action {
        guard state != .done else { return .none }
        state = .done
        return .abandon
    }
}
