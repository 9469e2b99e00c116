import GatewayWire
import NIOCore

/// Everything one connection tracks, as a value type: each event is a `mutating`
/// function returning the effects to run once the lock is released (resuming a
/// continuation or finishing a stream can run foreign code, which must never happen
/// under the lock).
struct ConnectionState {
    /// Who waits for a call's messages.
    enum Waiter {
        case unary(CheckedContinuation<Wire.Envelope.Body, any Error>)
        case stream(AsyncThrowingStream<GenerateEvent, any Error>.Continuation)
    }

    /// One call the server may still be running.
    struct Call {
        /// Nil once the caller has gone (cancelled): the entry stays until the server's
        /// terminal message so the slot is not reused while the server still counts it.
        var waiter: Waiter?
        /// The request has been handed to the channel.
        var sent = false
        /// Cancelled before the request was handed over: send `Cancel` right after it.
        var cancelRequested = false
    }

    enum Effect {
        case resumeCall(CheckedContinuation<Wire.Envelope.Body, any Error>, Result<Wire.Envelope.Body, any Error>)
        case yield(AsyncThrowingStream<GenerateEvent, any Error>.Continuation, GenerateEvent)
        case finish(AsyncThrowingStream<GenerateEvent, any Error>.Continuation, (any Error)?)
        case grantSlot(CheckedContinuation<UInt64, any Error>, Result<UInt64, any Error>)
        case resumePing(CheckedContinuation<Void, any Error>, Result<Void, any Error>)
        case resumeHello(CheckedContinuation<Wire.HelloReply, any Error>, Result<Wire.HelloReply, any Error>)
        case send(Wire.Envelope)
    }

    var channel: (any Channel)?
    private(set) var calls: [UInt64: Call] = [:]
    /// Callers waiting for a free slot (when `maxConcurrentStreams` calls are running), in order.
    private var slotWaiters: [(token: UInt64, continuation: CheckedContinuation<UInt64, any Error>)] = []
    private var pings: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    private var hello: CheckedContinuation<Wire.HelloReply, any Error>?
    /// Odd ids from 1, never reused on a connection.
    private var nextStreamID: UInt64 = 1
    private var nextToken: UInt64 = 1
    /// From `HelloReply`; 0: no limit.
    var maxConcurrentStreams = 0
    private(set) var goAway: Wire.GoAway?
    /// Set once: every later call fails with it.
    private(set) var closedError: GatewayClientError?
    /// An `Error` the server sent on stream 0 (it closes the connection after one).
    private(set) var connectionError: Wire.CallError?
    /// A local failure (decoder, socket) that closed the connection.
    var transportError: String?

    var activeCalls: Int { calls.count }

    mutating func makeToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    /// Why new calls are refused now, if they are.
    private var refusal: GatewayClientError? {
        if let closedError { return closedError }
        if let goAway { return .goingAway(reason: goAway.reason) }
        return nil
    }

    private var hasFreeSlot: Bool {
        maxConcurrentStreams <= 0 || calls.count < maxConcurrentStreams
    }

    private mutating func allocateStream() -> UInt64 {
        let id = nextStreamID
        nextStreamID += 2
        calls[id] = Call()
        return id
    }

    // MARK: Slots

    /// A stream id with its slot, now or (at the limit) when a call ends.
    mutating func reserveSlot(token: UInt64, continuation: CheckedContinuation<UInt64, any Error>, isCancelled: Bool) -> [Effect] {
        if let refusal { return [.grantSlot(continuation, .failure(refusal))] }
        if isCancelled { return [.grantSlot(continuation, .failure(CancellationError()))] }
        if hasFreeSlot && slotWaiters.isEmpty {
            return [.grantSlot(continuation, .success(allocateStream()))]
        }
        slotWaiters.append((token, continuation))
        return []
    }

    mutating func cancelSlotWait(token: UInt64) -> [Effect] {
        guard let index = slotWaiters.firstIndex(where: { $0.token == token }) else { return [] }
        return [.grantSlot(slotWaiters.remove(at: index).continuation, .failure(CancellationError()))]
    }

    /// Hands freed slots to waiting callers.
    private mutating func grantFreedSlots() -> [Effect] {
        var effects: [Effect] = []
        while hasFreeSlot, !slotWaiters.isEmpty {
            let waiter = slotWaiters.removeFirst()
            effects.append(.grantSlot(waiter.continuation, .success(allocateStream())))
        }
        return effects
    }

    // MARK: Calls

    /// Attaches the caller to its reserved stream. Returns whether the request should be sent.
    mutating func install(_ streamID: UInt64, _ waiter: Waiter, isCancelled: Bool) -> (send: Bool, effects: [Effect]) {
        guard calls[streamID] != nil else {
            // The connection closed between reserving the slot and now.
            return (false, Self.fail(waiter, closedError ?? .connectionClosed("the connection is closed")))
        }
        if isCancelled {
            calls[streamID] = nil
            return (false, Self.fail(waiter, CancellationError()) + grantFreedSlots())
        }
        calls[streamID]!.waiter = waiter
        return (true, [])
    }

    /// The request is in the channel. Returns whether `Cancel` must follow it now.
    mutating func markSent(_ streamID: UInt64) -> Bool {
        guard calls[streamID] != nil else { return false }
        calls[streamID]!.sent = true
        return calls[streamID]!.cancelRequested
    }

    /// The caller gave up: a unary call throws `CancellationError` at once; the server is
    /// told with `Cancel` and the slot stays taken until its terminal message arrives.
    mutating func abandon(_ streamID: UInt64) -> [Effect] {
        guard var call = calls[streamID], let waiter = call.waiter else { return [] }
        call.waiter = nil
        var effects: [Effect] = []
        if call.sent {
            effects.append(.send(Wire.Envelope(streamID: streamID, body: .cancel)))
        } else {
            call.cancelRequested = true
        }
        calls[streamID] = call
        if case .unary(let continuation) = waiter {
            effects.append(.resumeCall(continuation, .failure(CancellationError())))
        }
        return effects
    }

    /// The request could not be written: the call ends here.
    mutating func failCall(_ streamID: UInt64, _ error: GatewayClientError) -> [Effect] {
        guard let call = calls.removeValue(forKey: streamID) else { return [] }
        var effects = grantFreedSlots()
        if let waiter = call.waiter { effects += Self.fail(waiter, error) }
        return effects
    }

    private static func fail(_ waiter: Waiter, _ error: any Error) -> [Effect] {
        switch waiter {
        case .unary(let continuation): [.resumeCall(continuation, .failure(error))]
        case .stream(let continuation): [.finish(continuation, error)]
        }
    }

    // MARK: Connection-level

    mutating func startHello(_ continuation: CheckedContinuation<Wire.HelloReply, any Error>) -> [Effect] {
        if let closedError { return [.resumeHello(continuation, .failure(closedError))] }
        hello = continuation
        return []
    }

    mutating func failHello(_ error: GatewayClientError) -> [Effect] {
        guard let hello else { return [] }
        self.hello = nil
        return [.resumeHello(hello, .failure(error))]
    }

    mutating func startPing(nonce: UInt64, _ continuation: CheckedContinuation<Void, any Error>, isCancelled: Bool) -> [Effect] {
        if let closedError { return [.resumePing(continuation, .failure(closedError))] }
        if isCancelled { return [.resumePing(continuation, .failure(CancellationError()))] }
        pings[nonce] = continuation
        return [.send(Wire.Envelope(streamID: 0, body: .ping(nonce: nonce)))]
    }

    mutating func cancelPing(nonce: UInt64) -> [Effect] {
        guard let continuation = pings.removeValue(forKey: nonce) else { return [] }
        return [.resumePing(continuation, .failure(CancellationError()))]
    }

    // MARK: Inbound

    mutating func receive(_ envelope: Wire.Envelope) -> [Effect] {
        guard envelope.streamID != 0 else { return receiveConnectionMessage(envelope.body) }
        guard let body = envelope.body, var call = calls[envelope.streamID] else {
            // A kind this build does not know, or a stream with no call: nothing waits for it.
            return []
        }
        if case .generateChunk(let chunk) = body {
            if case .stream(let continuation) = call.waiter { return [.yield(continuation, .chunk(chunk))] }
            return []
        }
        // Anything else ends the call.
        calls[envelope.streamID] = nil
        var effects = grantFreedSlots()
        switch call.waiter {
        case nil:
            break
        case .unary(let continuation):
            if case .error(let error) = body {
                effects.append(.resumeCall(continuation, .failure(GatewayClientError(error))))
            } else {
                effects.append(.resumeCall(continuation, .success(body)))
            }
        case .stream(let continuation):
            switch body {
            case .generateResult(let result):
                effects += [.yield(continuation, .result(result)), .finish(continuation, nil)]
            case .error(let error):
                effects.append(.finish(continuation, GatewayClientError(error)))
            default:
                effects.append(.finish(continuation, GatewayClientError.protocolViolation("a generate stream ended with \(body.kindName)")))
            }
        }
        call.waiter = nil
        return effects
    }

    /// A payload that does not decode: fail the call it names, if any.
    mutating func receiveUndecodable(streamID: UInt64?, _ detail: String) -> [Effect] {
        guard let streamID, streamID != 0 else { return [] }
        return failCall(streamID, .protocolViolation("undecodable message from the server: \(detail)"))
    }

    private mutating func receiveConnectionMessage(_ body: Wire.Envelope.Body?) -> [Effect] {
        switch body {
        case .helloReply(let reply):
            guard let hello else { return [] }
            self.hello = nil
            return [.resumeHello(hello, .success(reply))]
        case .error(let error):
            if let hello {
                self.hello = nil
                return [.resumeHello(hello, .failure(GatewayClientError(error)))]
            }
            connectionError = error
            return []
        case .pong(let nonce):
            guard let continuation = pings.removeValue(forKey: nonce) else { return [] }
            return [.resumePing(continuation, .success(()))]
        case .ping(let nonce):
            return [.send(Wire.Envelope(streamID: 0, body: .pong(nonce: nonce)))]
        case .goAway(let goAway):
            self.goAway = goAway
            let waiters = slotWaiters
            slotWaiters = []
            return waiters.map { .grantSlot($0.continuation, .failure(GatewayClientError.goingAway(reason: goAway.reason))) }
        default:
            return []
        }
    }

    // MARK: Close

    /// Fails everything still waiting; later calls fail with `error` too.
    mutating func close(_ error: GatewayClientError) -> [Effect] {
        if closedError == nil { closedError = error }
        let error = closedError!
        var effects: [Effect] = []
        if let hello {
            self.hello = nil
            effects.append(.resumeHello(hello, .failure(error)))
        }
        for call in calls.values {
            if let waiter = call.waiter { effects += Self.fail(waiter, error) }
        }
        calls = [:]
        for waiter in slotWaiters { effects.append(.grantSlot(waiter.continuation, .failure(error))) }
        slotWaiters = []
        for continuation in pings.values { effects.append(.resumePing(continuation, .failure(error))) }
        pings = [:]
        return effects
    }

    /// Why the connection ended, from what was seen before the socket closed.
    var closeReason: String {
        if let connectionError { return "server error \(connectionError.code) (\(connectionError.httpStatus)): \(connectionError.message)" }
        if let transportError { return transportError }
        if let goAway { return "the server went away" + (goAway.reason.isEmpty ? "" : ": \(goAway.reason)") }
        return "the server closed the connection"
    }
}

extension Wire.Envelope.Body {
    /// The proto message name, for error messages.
    var kindName: String {
        switch self {
        case .hello: "Hello"
        case .helloReply: "HelloReply"
        case .ping: "Ping"
        case .pong: "Pong"
        case .cancel: "Cancel"
        case .goAway: "GoAway"
        case .error: "Error"
        case .addWorker: "AddWorkerRequest"
        case .addWorkerReply: "AddWorkerReply"
        case .listWorkers: "ListWorkersRequest"
        case .listWorkersReply: "ListWorkersReply"
        case .getWorker: "GetWorkerRequest"
        case .getWorkerReply: "GetWorkerReply"
        case .updateWorker: "UpdateWorkerRequest"
        case .updateWorkerReply: "UpdateWorkerReply"
        case .removeWorker: "RemoveWorkerRequest"
        case .removeWorkerReply: "RemoveWorkerReply"
        case .listModels: "ListModelsRequest"
        case .listModelsReply: "ListModelsReply"
        case .health: "HealthRequest"
        case .healthReply: "HealthReply"
        case .generate: "GenerateRequest"
        case .generateChunk: "GenerateChunk"
        case .generateResult: "GenerateResult"
        }
    }
}
