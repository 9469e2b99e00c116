import GatewayCore
import GatewayOpenAI
import NIOCore
import NIOHTTP1

/// One request to a worker and its answer, on one event loop: executes the
/// ``ExchangeStateMachine``'s actions, decodes an event stream once, and hands the
/// answer to its receiver.
///
/// Loop-confined: created, driven and cancelled on its pool's event loop only.
public final class Exchange {
    let request: WorkerRequest
    let key: ConnectionPool.Key
    private let pool: ConnectionPool
    private var receiver: (any WorkerAnswerReceiver)?
    private var machine: ExchangeStateMachine
    private var connection: UpstreamConnection?
    private var deadlineTask: Scheduled<Void>?
    private var head: WorkerAnswerHead?
    private var gathered = ByteBuffer()
    private var decoder: EventStreamDecoder?
    /// The receiver asked for no more parts for now (backpressure).
    private(set) var isPaused = false

    init(request: WorkerRequest, pool: ConnectionPool, receiver: any WorkerAnswerReceiver) {
        self.request = request
        self.key = ConnectionPool.Key(request.url)
        self.pool = pool
        self.receiver = receiver
        self.machine = ExchangeStateMachine(wholeAnswerLimit: request.wholeAnswerLimit)
    }

    var isDone: Bool { machine.isDone }

    func start(deadline: NIODeadline) {
        deadlineTask = pool.loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            perform(machine.deadlinePassed())
        }
        perform(machine.start())
    }

    // MARK: The caller's controls

    /// Abandons the exchange: its connection (mid-answer) is closed, the receiver hears nothing more.
    public func cancel() {
        perform(machine.cancel())
    }

    /// Stops reading the answer until `resume()` (the receiver's client is not keeping up).
    public func pause() {
        isPaused = true
    }

    public func resume() {
        guard isPaused else { return }
        isPaused = false
        connection?.resumeReading()
    }

    // MARK: Events from the pool and the connection

    func connectionAcquired(_ connection: UpstreamConnection, reused: Bool) {
        self.connection = connection
        perform(machine.connectionAcquired(reused: reused))
    }

    func connectFailed(_ error: any Error) {
        perform(machine.connectFailed(WorkerFailure(error)))
    }

    func receivedHead(_ response: HTTPResponseHead) {
        let head = WorkerAnswerHead(status: Int(response.status.code), headers: response.headers)
        self.head = head
        let action = machine.receivedHead(
            .init(status: head.status, contentLength: head.contentLength, isEventStream: head.isEventStream, keepAlive: response.isKeepAlive)
        )
        if head.isEventStream && request.decodesEventStream { decoder = EventStreamDecoder() }
        perform(action)
    }

    func receivedBody(_ buffer: ByteBuffer) {
        switch machine.receivedPart() {
        case .keepPart:
            gathered.writeImmutableBuffer(buffer)
        case .deliverPart:
            deliver(buffer)
        default:
            break
        }
    }

    func receivedEnd() {
        perform(machine.receivedEnd())
    }

    func connectionFailed(_ error: any Error, mayBeStale: Bool) {
        perform(machine.connectionFailed(WorkerFailure(error), mayBeStale: mayBeStale))
    }

    // MARK: Actions

    private func perform(_ action: ExchangeStateMachine.Action) {
        switch action {
        case .acquireConnection:
            pool.acquire(for: self)
        case .writeRequest:
            connection?.send(self)
        case .startGathering:
            if let length = head?.contentLength { gathered.reserveCapacity(length) }
        case .deliverHead:
            receiver?.workerAnswered(head!, whole: nil)
        case .deliverPart, .keepPart, .none:
            break
        case .finish(let whole, let reuse):
            deadlineTask?.cancel()
            let connection = self.connection
            self.connection = nil
            if let connection { pool.release(connection, reuse: reuse) }
            let receiver = self.receiver
            self.receiver = nil
            if whole {
                receiver?.workerAnswered(head!, whole: gathered)
            } else {
                if var decoder, let last = decoder.finish() {
                    self.decoder = nil
                    receiver?.workerSent(.event(last))
                }
                receiver?.workerFinished()
            }
        case .retryOnNewConnection:
            let stale = connection
            connection = nil
            stale?.abort(self)
            pool.connectNew(for: self)
        case .fail(let failure, let afterHead):
            end()
            let receiver = self.receiver
            self.receiver = nil
            receiver?.workerFailed(failure, afterHead: afterHead)
        case .abandon:
            end()
            receiver = nil
        }
    }

    /// Cleans up after a failure or cancel: timer, the connection (closed: it is mid-answer), a place in the queue.
    private func end() {
        deadlineTask?.cancel()
        deadlineTask = nil
        if let connection {
            self.connection = nil
            connection.abort(self)
        } else {
            pool.cancelWaiting(self)
        }
    }

    /// Hands a body part over: bytes, or the events it completes.
    private func deliver(_ buffer: ByteBuffer) {
        guard decoder != nil else {
            receiver?.workerSent(.bytes(buffer))
            return
        }
        // A receiver that cancels while events are handed over hears no more (it is dropped).
        decoder!.feed(buffer) { event in receiver?.workerSent(.event(event)) }
    }
}
