/// Why a call to a worker failed on the transport: the one failure taxonomy of every
/// call the gateway makes to a worker (inference, probes, info).
public enum WorkerFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing listens at the address: the worker is down.
    case refused(String)
    /// Connecting or answering took longer than allowed.
    case timedOut(String)
    /// Anything else: reset, closed mid-answer, a malformed answer, DNS, TLS …
    case broken(String)

    public var message: String {
        switch self {
        case .refused(let m), .timedOut(let m), .broken(let m): m
        }
    }

    public var description: String { message }

    public var isRefused: Bool {
        if case .refused = self { return true }
        return false
    }
}

/// Where retry is decided: one inference request's attempts on workers.
///
/// The machine owns every rule of the retry policy; the request path executes its
/// actions (choose a worker, send, wait, relay) and feeds it what happened:
///
/// - a worker is chosen among those not tried yet; when every available worker was
///   tried, a retry may go to any of them again (one worker answering 503, say);
/// - connection errors and answers with a retryable status (408, 429, 5xx) are retried
///   after a backoff, as long as attempts are left and the backoff ends before the
///   deadline; the last attempt relays whatever the worker answers;
/// - a failing answer that is retried is kept: should no later attempt do better, the
///   client gets the last worker's own answer, as it gave it;
/// - an answer of known length up to `wholeAnswerLimit` that is not an event stream is
///   read whole before anything reaches the client, so one that breaks off mid-body is
///   still an attempt that can be retried; anything else is relayed as it arrives, and
///   from the first relayed byte on nothing is retried (a failure cuts the stream);
/// - the breaker counts transport failures and 5xx as failures and every other answer
///   (4xx included: the client's fault, and proof the worker answers) as a success;
/// - a refused connection also marks the worker unhealthy at once (passive health).
///
/// Time and randomness come in from outside (`now`, a seeded generator), so the whole
/// policy is tested without sockets or sleeps.
public struct AttemptStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Attempts in all (as the reference counts them); 1 means no retry.
        public var maxAttempts: Int
        public var backoff: Backoff
        public var retryableStatuses: Set<Int>
        /// Answers of known length up to this many bytes (not event streams) are read whole
        /// before they are delivered.
        public var wholeAnswerLimit: Int

        public static let defaultRetryableStatuses: Set<Int> = [408, 429, 500, 502, 503, 504]

        public init(
            maxAttempts: Int = 5,
            backoff: Backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(30), multiplier: 1.5, jitter: 0.2),
            retryableStatuses: Set<Int> = Self.defaultRetryableStatuses,
            wholeAnswerLimit: Int = 256 * 1024
        ) {
            self.maxAttempts = max(maxAttempts, 1)
            self.backoff = backoff
            self.retryableStatuses = retryableStatuses
            self.wholeAnswerLimit = wholeAnswerLimit
        }
    }

    /// What an answer's head says about its body.
    public struct AnswerHead: Sendable, Equatable {
        public var status: Int
        public var isEventStream: Bool
        /// The announced length (nil: none).
        public var contentLength: Int?

        public init(status: Int, isEventStream: Bool = false, contentLength: Int? = nil) {
            self.status = status
            self.isEventStream = isEventStream
            self.contentLength = contentLength
        }
    }

    /// What the current worker's breaker records.
    public enum BreakerVerdict: Sendable, Equatable {
        case success, failure
    }

    /// How the request ends when it does not end with a delivered answer.
    public enum Outcome: Sendable, Equatable {
        /// No worker could be chosen (and none was tried).
        case noWorker(SelectionFailure)
        /// The last attempt failed on the transport.
        case workerFailed(WorkerFailure, worker: WorkerID)
        /// The answer kept from the last attempt (a retryable status) is the client's.
        case keptAnswer(worker: WorkerID)
        /// The client went away.
        case cancelled
    }

    /// The next step of the request path.
    public enum Next: Sendable, Equatable {
        /// Choose a worker, excluding these (then `chose` or `foundNoWorker`).
        case choose(excluding: Set<WorkerID>)
        /// Send the request to the chosen worker (`attempt` counts from 0).
        case send(attempt: Int, isLastAttempt: Bool)
        /// Read this failing answer's body and keep it (then `keptAnswer`).
        case keepAnswer
        /// Wait before the next attempt (then `waited`).
        case wait(Duration)
        /// Read the whole answer before anything reaches the client (then `gathered`).
        case gatherWhole
        /// Relay the answer to the client as it arrives (then `relayEnded`).
        case relay
        /// The answer read whole is the client's.
        case deliver
        /// End the relayed answer with this failure: the client already has part of it.
        case cutStream(Outcome)
        /// Give up with this outcome.
        case fail(Outcome)
        /// Nothing more to do.
        case stop
    }

    /// One step: the breaker verdict and passive-health mark for the current worker
    /// (recorded first), then what to do next.
    public struct Action: Sendable, Equatable {
        public var breaker: BreakerVerdict?
        /// The worker refused the connection: unhealthy at once.
        public var markUnhealthy: Bool
        public var next: Next

        public init(breaker: BreakerVerdict? = nil, markUnhealthy: Bool = false, next: Next) {
            self.breaker = breaker
            self.markUnhealthy = markUnhealthy
            self.next = next
        }
    }

    private enum State: Sendable, Equatable {
        case idle
        /// Waiting for a choice; `fallback`: the choice may repeat a tried worker.
        case choosing(attempt: Int, fallback: Bool)
        case sending(attempt: Int, worker: WorkerID)
        /// Reading the body of a failing answer that will be retried.
        case keeping(attempt: Int, worker: WorkerID)
        /// The backoff before attempt `attempt`.
        case waiting(attempt: Int)
        case gathering(attempt: Int, worker: WorkerID)
        case relaying(worker: WorkerID)
        case finished
    }

    public let configuration: Configuration
    private let deadline: ContinuousClock.Instant
    private var state = State.idle
    private var generator: RoutingRandom
    /// Workers this request was sent to.
    public private(set) var tried: Set<WorkerID> = []
    /// Attempts made after the first (for metrics and the log line).
    public private(set) var retries = 0
    /// What the client gets if no later attempt does better.
    private var lastFailure: Outcome?

    /// - Parameters:
    ///   - deadline: no attempt starts (and no backoff ends) after this.
    ///   - seed: the backoff jitter's random source (fixed in tests).
    public init(configuration: Configuration, deadline: ContinuousClock.Instant, seed: UInt64? = nil) {
        self.configuration = configuration
        self.deadline = deadline
        self.generator = seed.map(RoutingRandom.init(seed:)) ?? RoutingRandom()
    }

    /// The worker of the attempt under way, if any.
    public var currentWorker: WorkerID? {
        switch state {
        case .sending(_, let worker), .keeping(_, let worker), .gathering(_, let worker), .relaying(let worker): worker
        case .idle, .choosing, .waiting, .finished: nil
        }
    }

    /// Whether part of the answer may already have reached the client.
    public var isRelaying: Bool {
        if case .relaying = state { return true }
        return false
    }

    // MARK: Events

    public mutating func start() -> Action {
        guard case .idle = state else { return Action(next: .stop) }
        state = .choosing(attempt: 0, fallback: false)
        return Action(next: .choose(excluding: []))
    }

    public mutating func chose(_ worker: WorkerID) -> Action {
        guard case .choosing(let attempt, _) = state else { return Action(next: .stop) }
        tried.insert(worker)
        if attempt > 0 { retries += 1 }
        state = .sending(attempt: attempt, worker: worker)
        return Action(next: .send(attempt: attempt, isLastAttempt: attempt == configuration.maxAttempts - 1))
    }

    public mutating func foundNoWorker(_ failure: SelectionFailure) -> Action {
        guard case .choosing(let attempt, let fallback) = state else { return Action(next: .stop) }
        guard let lastFailure else {
            state = .finished
            return Action(next: .fail(.noWorker(failure)))
        }
        if case .noAvailableWorkers = failure, !fallback, !tried.isEmpty {
            // Every available worker was tried: retry among all of them.
            state = .choosing(attempt: attempt, fallback: true)
            return Action(next: .choose(excluding: []))
        }
        state = .finished
        return Action(next: .fail(lastFailure))
    }

    public mutating func answered(_ head: AnswerHead, now: ContinuousClock.Instant) -> Action {
        guard case .sending(let attempt, let worker) = state else { return Action(next: .stop) }
        let verdict: BreakerVerdict = head.status >= 500 ? .failure : .success
        if configuration.retryableStatuses.contains(head.status) && attempt < configuration.maxAttempts - 1 {
            lastFailure = .keptAnswer(worker: worker)
            state = .keeping(attempt: attempt, worker: worker)
            return Action(breaker: verdict, next: .keepAnswer)
        }
        if !head.isEventStream, let length = head.contentLength, length <= configuration.wholeAnswerLimit {
            state = .gathering(attempt: attempt, worker: worker)
            return Action(breaker: verdict, next: .gatherWhole)
        }
        state = .relaying(worker: worker)
        return Action(breaker: verdict, next: .relay)
    }

    /// The failing answer's body is read (and kept by the caller).
    public mutating func keptAnswer(now: ContinuousClock.Instant) -> Action {
        guard case .keeping(let attempt, _) = state else { return Action(next: .stop) }
        return Action(next: backoff(after: attempt, now: now))
    }

    public mutating func gathered() -> Action {
        guard case .gathering = state else { return Action(next: .stop) }
        state = .finished
        return Action(next: .deliver)
    }

    public mutating func relayEnded() -> Action {
        state = .finished
        return Action(next: .stop)
    }

    /// The attempt failed on the transport (connecting, sending, or reading the answer).
    public mutating func failed(_ failure: WorkerFailure, now: ContinuousClock.Instant) -> Action {
        switch state {
        case .sending(let attempt, let worker):
            lastFailure = .workerFailed(failure, worker: worker)
            return Action(breaker: .failure, markUnhealthy: failure.isRefused, next: backoff(after: attempt, now: now))
        case .gathering(let attempt, let worker):
            // Nothing reached the client yet: another worker may still answer.
            lastFailure = .workerFailed(failure, worker: worker)
            return Action(breaker: .failure, next: backoff(after: attempt, now: now))
        case .keeping(let attempt, let worker):
            // The failing answer broke off: its status was already counted.
            lastFailure = .workerFailed(failure, worker: worker)
            return Action(next: backoff(after: attempt, now: now))
        case .relaying(let worker):
            state = .finished
            return Action(breaker: .failure, next: .cutStream(.workerFailed(failure, worker: worker)))
        case .idle, .choosing, .waiting, .finished:
            return Action(next: .stop)
        }
    }

    /// The backoff is over: the next attempt.
    public mutating func waited() -> Action {
        guard case .waiting(let attempt) = state else { return Action(next: .stop) }
        state = .choosing(attempt: attempt, fallback: false)
        return Action(next: .choose(excluding: tried))
    }

    /// The client went away: nothing is recorded against the worker.
    public mutating func cancelled() -> Action {
        guard state != .finished else { return Action(next: .stop) }
        state = .finished
        return Action(next: .fail(.cancelled))
    }

    // MARK: Rules

    /// After a failed attempt number `attempt`: wait and try again, or give up with the
    /// last failure when no attempt is left or the backoff would end past the deadline.
    private mutating func backoff(after attempt: Int, now: ContinuousClock.Instant) -> Next {
        guard attempt < configuration.maxAttempts - 1, let lastFailure else {
            state = .finished
            return .fail(lastFailure ?? .cancelled)
        }
        let delay = configuration.backoff.delay(attempt: attempt, using: &generator)
        guard now + delay < deadline else {
            state = .finished
            return .fail(lastFailure)
        }
        state = .waiting(attempt: attempt + 1)
        return .wait(delay)
    }
}
