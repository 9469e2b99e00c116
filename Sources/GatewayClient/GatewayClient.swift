import GatewayWire
import NIOCore
import NIOPosix

/// A client of the gateway's binary protocol (docs/binary-protocol.md): one TCP
/// connection carrying any number of concurrent calls.
///
/// ```swift
/// let client = try await GatewayClient.connect(host: "127.0.0.1", port: 30001)
/// defer { Task { await client.close() } }
/// let workers = try await client.listWorkers()
/// for try await event in client.generateStream(.init(model: "m", input: .text("Hi"))) { … }
/// ```
///
/// Calls may run from many tasks at once; each gets its own stream id. When the
/// server's `max_concurrent_streams` calls are running, further calls wait for a free
/// slot instead of being refused. Cancelling the task of a call sends `Cancel` for it.
public final class GatewayClient: Sendable {
    /// The server's `HelloReply`: its name, frame limit and stream limit.
    public let serverHello: Wire.HelloReply

    let connection: ClientConnection

    private init(connection: ClientConnection, serverHello: Wire.HelloReply) {
        self.connection = connection
        self.serverHello = serverHello
    }

    /// Opens a connection and performs the `Hello` handshake.
    ///
    /// - Parameters:
    ///   - apiKey: sent in `Hello` (the gateway refuses a wrong one with `UNAUTHORIZED`).
    ///   - clientName: sent in `Hello`, for the server's logs.
    ///   - maxFrameBytes: the largest frame payload accepted from the server; a larger
    ///     one closes the connection.
    /// - Throws: `GatewayClientError.connectionFailed` when the TCP connection cannot be
    ///   opened, `.server(code:message:httpStatus:)` when the server refuses the `Hello`
    ///   (`UNAUTHORIZED`, `UNSUPPORTED_VERSION` …), `.timedOut` when it does not answer
    ///   within 10 seconds.
    public static func connect(
        host: String,
        port: Int,
        apiKey: String? = nil,
        clientName: String = "gateway-client",
        maxFrameBytes: Int = Frame.defaultMaxPayloadBytes
    ) async throws -> GatewayClient {
        let connection = ClientConnection()
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadBytes: maxFrameBytes)))
                        try pipeline.addHandler(MessageToByteHandler(EnvelopeFrameEncoder()))
                        try pipeline.addHandler(ClientInboundHandler(connection: connection))
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            throw GatewayClientError.connectionFailed("\(host):\(port): \(error)")
        }
        connection.attach(channel)
        // The socket may already have closed (a server that hangs up at once).
        if !channel.isActive { connection.channelClosed() }
        do {
            let hello = Wire.Hello(protocolVersion: 1, apiKey: apiKey ?? "", clientName: clientName)
            let reply = try await connection.handshake(hello, timeout: .seconds(10))
            return GatewayClient(connection: connection, serverHello: reply)
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Closes the connection. Calls still running fail with
    /// `GatewayClientError.connectionClosed("the client was closed")`. Calling it again
    /// does nothing.
    public func close() async {
        await connection.close()
    }

    /// The `GoAway` the server sent, if it sent one: new calls now fail with
    /// `GatewayClientError.goingAway`, calls already running finish.
    public var goAway: Wire.GoAway? { connection.goAway }

    // MARK: Workers

    /// Registers a worker (`POST /workers`); the server probes it in the background.
    public func addWorker(_ request: Wire.AddWorkerRequest) async throws -> Wire.AddWorkerReply {
        let body = try await connection.call(.addWorker(request))
        guard case .addWorkerReply(let reply) = body else { throw Self.unexpected(body, "AddWorkerReply") }
        return reply
    }

    /// The workers `filter` matches (all by default), with their totals
    /// (`GET /workers?model=&status=&worker_type=`).
    public func listWorkers(_ filter: Wire.ListWorkersRequest = .init()) async throws -> Wire.ListWorkersReply {
        let body = try await connection.call(.listWorkers(filter))
        guard case .listWorkersReply(let reply) = body else { throw Self.unexpected(body, "ListWorkersReply") }
        return reply
    }

    /// One worker (`GET /workers/{id}`).
    public func getWorker(id: String) async throws -> Wire.WorkerInfo {
        let body = try await connection.call(.getWorker(.init(workerID: id)))
        guard case .getWorkerReply(let reply) = body else { throw Self.unexpected(body, "GetWorkerReply") }
        guard let worker = reply.worker else { throw GatewayClientError.protocolViolation("GetWorkerReply carries no worker") }
        return worker
    }

    /// Changes a worker's priority, cost, labels, API key or health checks (a partial
    /// update: `PATCH` or `PUT /workers/{id}`).
    public func updateWorker(_ request: Wire.UpdateWorkerRequest) async throws -> Wire.AcceptedReply {
        let body = try await connection.call(.updateWorker(request))
        guard case .updateWorkerReply(let reply) = body else { throw Self.unexpected(body, "UpdateWorkerReply") }
        return reply
    }

    /// Removes a worker (`DELETE /workers/{id}`): it drains (leaves routing now, removed
    /// once its requests end), or with `force` goes at once.
    public func removeWorker(id: String, force: Bool = false) async throws -> Wire.AcceptedReply {
        let body = try await connection.call(.removeWorker(.init(workerID: id, force: force)))
        guard case .removeWorkerReply(let reply) = body else { throw Self.unexpected(body, "RemoveWorkerReply") }
        return reply
    }

    // MARK: Models and health

    /// The models served, with their worker counts (`GET /v1/models`).
    public func listModels() async throws -> Wire.ListModelsReply {
        let body = try await connection.call(.listModels)
        guard case .listModelsReply(let reply) = body else { throw Self.unexpected(body, "ListModelsReply") }
        return reply
    }

    /// The gateway's readiness (`GET /readiness`).
    public func health() async throws -> Wire.HealthReply {
        let body = try await connection.call(.health)
        guard case .healthReply(let reply) = body else { throw Self.unexpected(body, "HealthReply") }
        return reply
    }

    // MARK: Inference

    /// Generates in one reply (`request.stream` is ignored: always unary).
    public func generate(_ request: Wire.GenerateRequest) async throws -> Wire.GenerateResult {
        var request = request
        request.stream = false
        let body = try await connection.call(.generate(request))
        guard case .generateResult(let result) = body else { throw Self.unexpected(body, "GenerateResult") }
        return result
    }

    /// Generates as a stream: `.chunk` events as text arrives, then one `.result`
    /// (`request.stream` is ignored: always streamed).
    ///
    /// The request is sent when iteration starts. Cancelling the iterating task, or
    /// dropping the iterator before the result, sends `Cancel` for the call; the
    /// iteration then throws `CancellationError`.
    public func generateStream(_ request: Wire.GenerateRequest) -> GenerateStream {
        var request = request
        request.stream = true
        return GenerateStream(connection: connection, request: request)
    }

    // MARK: Connection

    /// Sends `Ping` and returns the time until its `Pong`.
    public func ping() async throws -> Duration {
        let start = ContinuousClock.now
        try await connection.ping()
        return ContinuousClock.now - start
    }

    private static func unexpected(_ body: Wire.Envelope.Body, _ expected: String) -> GatewayClientError {
        .protocolViolation("expected \(expected), the server answered \(body.kindName)")
    }
}
