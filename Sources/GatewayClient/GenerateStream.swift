import GatewayWire

/// One event of a streamed generation.
public enum GenerateEvent: Sendable, Hashable {
    /// New text (and its token ids, when the worker sends them), in order.
    case chunk(Wire.GenerateChunk)
    /// The last event: finish reason, usage, model, worker and request id.
    case result(Wire.GenerateResult)
}

/// The events of one streamed generate call: `.chunk`s, then exactly one `.result`.
///
/// Each iterator runs its own call, started by its first `next()`. A server `Error`
/// is thrown as `GatewayClientError.server`; ending early (task cancellation, or the
/// iterator going away) sends `Cancel` for the call.
public struct GenerateStream: AsyncSequence, Sendable {
    public typealias Element = GenerateEvent

    let connection: ClientConnection
    let request: Wire.GenerateRequest

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(connection: connection, request: request)
    }

    /// Iterates one call's events.
    public struct AsyncIterator: AsyncIteratorProtocol {
        private let connection: ClientConnection
        private let request: Wire.GenerateRequest
        private var events: AsyncThrowingStream<GenerateEvent, any Error>.AsyncIterator?
        private var finished = false
        private var sawResult = false
        private var sawEvent = false

        init(connection: ClientConnection, request: Wire.GenerateRequest) {
            self.connection = connection
            self.request = request
        }

        public mutating func next() async throws -> GenerateEvent? {
            if finished { return nil }
            var attempt = 0
            while true {
                do {
                    if events == nil {
                        events = try await connection.startStream(.generate(request)).makeAsyncIterator()
                    }
                    guard let event = try await events!.next() else {
                        finished = true
                        // The underlying stream ends without the result only when this task was cancelled.
                        if sawResult { return nil }
                        throw CancellationError()
                    }
                    sawEvent = true
                    if case .result = event { sawResult = true }
                    return event
                } catch let error as GatewayClientError
                    where error.code == "TOO_MANY_STREAMS" && !sawEvent && attempt < ClientConnection.streamLimitRetries
                {
                    // Refused before it started (see `ClientConnection.call`): try again.
                    attempt += 1
                    events = nil
                    do {
                        try await Task.sleep(for: ClientConnection.streamLimitBackoff(attempt: attempt))
                    } catch {
                        finished = true
                        throw error
                    }
                } catch {
                    finished = true
                    events = nil
                    throw error
                }
            }
        }
    }
}
