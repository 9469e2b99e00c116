import NIOCore
import NIOPosix
import Synchronization

/// Splits a byte stream into `\n`-terminated lines (without the terminator; a trailing
/// `\r` is dropped). A line longer than `maxLength` is an error.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    let maxLength = 1024

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxLength { throw BootstrapError("line longer than \(maxLength) bytes") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        var line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

/// A failure of the KV hand-off, with the reason the other side gave or what went wrong.
struct BootstrapError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The prefill worker's bootstrap listener: serves `WAIT`/`PULL`, `ACK` (see
/// `BootstrapRooms`) and lets the worker's requests announce, complete or fail rooms.
final class BootstrapServer: Sendable {
    private struct State: Sendable {
        var rooms: BootstrapRooms
        var channels: [Int: any Channel] = [:]
        var nextConnection = 1
        var waiters: [String: @Sendable (String?) -> Void] = [:]
        var listener: (any Channel)?
        var sweep: RepeatedTask?
        var stopped = false
    }

    private let state: Mutex<State>
    private let loop: any EventLoop

    init(timeout: Duration) {
        let nanos = UInt64(max(0, timeout.components.seconds)) * 1_000_000_000 + UInt64(max(0, timeout.components.attoseconds / 1_000_000_000))
        self.state = Mutex(State(rooms: BootstrapRooms(timeoutNanos: nanos)))
        self.loop = MultiThreadedEventLoopGroup.singleton.next()
    }

    /// Binds the listener; returns the bound port.
    func start(host: String, port: Int) async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                let id = register(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder()))
                    try channel.pipeline.syncOperations.addHandler(BootstrapServerHandler(server: self, connection: id))
                }
            }
            .bind(host: host, port: port)
            .get()
        let sweep = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
            let now = NIODeadline.now().uptimeNanoseconds
            perform(state.withLock { $0.rooms.expire(now: now) })
        }
        let stopped = state.withLock { state -> Bool in
            state.listener = channel
            state.sweep = sweep
            return state.stopped
        }
        if stopped { await shutdown() }
        return channel.localAddress?.port ?? port
    }

    /// Closes the listener and every decode connection (their decodes fail); pending
    /// prefill waiters fail too.
    func shutdown() async {
        let (listener, channels, waiters, sweep) = state.withLock { state in
            state.stopped = true
            let out = (state.listener, Array(state.channels.values), Array(state.waiters.values), state.sweep)
            state.listener = nil
            state.channels.removeAll()
            state.waiters.removeAll()
            state.sweep = nil
            return out
        }
        sweep?.cancel()
        try? await listener?.close()
        for channel in channels { try? await channel.close() }
        for waiter in waiters { waiter("the prefill worker is shutting down") }
    }

    /// Whether a decode waits on (or took) the KV of `key`.
    func hasDecode(_ key: String) -> Bool { state.withLock { $0.rooms.hasDecode(key) } }

    // MARK: The prefill requests' side

    /// A prefill request for `key` arrived.
    func prefillStarted(_ key: String) {
        state.withLock { $0.rooms.prefillStarted(key) }
    }

    /// The prefill of `key` is computed. `done`, when given, is called once a decode took
    /// the KV (nil) or the hand-off failed (the reason).
    func prefillReady(_ key: String, tokens: Int, done: (@Sendable (String?) -> Void)?) {
        let now = NIODeadline.now().uptimeNanoseconds
        let actions = state.withLock { state -> [BootstrapRooms.Action] in
            if let done { state.waiters[key] = done }
            return state.rooms.prefillReady(key, tokens: tokens, waitsForAck: done != nil, now: now)
        }
        perform(actions)
    }

    /// The prefill of `key` failed or was cancelled.
    func prefillFailed(_ key: String, reason: String) {
        let now = NIODeadline.now().uptimeNanoseconds
        perform(state.withLock { $0.rooms.prefillFailed(key, reason: reason, now: now) })
    }

    // MARK: Connections

    private func register(_ channel: any Channel) -> Int {
        state.withLock { state in
            let id = state.nextConnection
            state.nextConnection += 1
            state.channels[id] = channel
            return id
        }
    }

    fileprivate func received(_ line: String, connection: Int) {
        let now = NIODeadline.now().uptimeNanoseconds
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let command = parts.first.map(String.init) ?? ""
        let key = parts.count > 1 ? String(parts[1]) : ""
        let actions = state.withLock { state -> [BootstrapRooms.Action] in
            switch command {
            case "WAIT" where !key.isEmpty:
                return state.rooms.decodeWaits(key, connection: connection, now: now)
            case "PULL" where !key.isEmpty:
                return state.rooms.decodeWaits(key, connection: connection, now: now, mustExist: true)
            case "ACK" where !key.isEmpty:
                return state.rooms.decodeAcked(key, connection: connection)
            default:
                return [.sendError(connection, key: key.isEmpty ? "-" : key, reason: "unknown command: \(line.prefix(64))")]
            }
        }
        perform(actions)
    }

    fileprivate func closed(connection: Int) {
        let actions = state.withLock { state -> [BootstrapRooms.Action] in
            state.channels[connection] = nil
            return state.rooms.decodeClosed(connection)
        }
        perform(actions)
    }

    private func perform(_ actions: [BootstrapRooms.Action]) {
        for action in actions {
            switch action {
            case .sendKV(let connection, let key, let tokens):
                write(connection, "KV \(key) \(tokens)\n", close: false)
            case .sendError(let connection, let key, let reason):
                write(connection, "ERR \(key) \(reason)\n", close: true)
            case .close(let connection):
                let channel = state.withLock { $0.channels.removeValue(forKey: connection) }
                channel?.close(promise: nil)
            case .prefillDone(let key, let failure):
                let waiter = state.withLock { $0.waiters.removeValue(forKey: key) }
                waiter?(failure)
            }
        }
    }

    private func write(_ connection: Int, _ text: String, close: Bool) {
        let channel = state.withLock { state in close ? state.channels.removeValue(forKey: connection) : state.channels[connection] }
        guard let channel else { return }
        let future = channel.writeAndFlush(ByteBuffer(string: text))
        if close { future.whenComplete { _ in channel.close(promise: nil) } }
    }
}

private final class BootstrapServerHandler: ChannelInboundHandler {
    typealias InboundIn = String

    private let server: BootstrapServer
    private let connection: Int

    init(server: BootstrapServer, connection: Int) {
        self.server = server
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        server.received(unwrapInboundIn(data), connection: connection)
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.closed(connection: connection)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The decode side: asks a prefill worker's bootstrap listener for one room's KV.
enum BootstrapClient {
    /// A hand-off in progress; `cancel()` closes the connection (the prefill sees the
    /// decode go away).
    struct Fetch: Sendable {
        /// Succeeds with the number of KV tokens transferred, or fails with a `BootstrapError`.
        let result: EventLoopFuture<Int>
        let cancel: @Sendable () -> Void
    }

    /// Connects to `host:port`, sends `command key` (`WAIT` for SGLang rooms, `PULL` for
    /// vLLM request ids) and waits up to `timeout` for the KV.
    static func fetch(host: String, port: Int, command: String, key: String, timeout: TimeAmount, on loop: any EventLoop) -> Fetch {
        let promise = loop.makePromise(of: Int.self)
        let channelBox = LockedBox<(any Channel)?>(nil)
        let cancelled = LockedBox(false)
        let timer = loop.scheduleTask(in: timeout) {
            promise.fail(BootstrapError("no KV for room \(key) from \(host):\(port) within \(timeout.nanoseconds / 1_000_000) ms"))
            channelBox.withLock { $0 }?.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(min(timeout, .seconds(5)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder()))
                    try channel.pipeline.syncOperations.addHandler(BootstrapClientHandler(key: key, promise: promise))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    channelBox.withLock { $0 = channel }
                    if cancelled.withLock({ $0 }) {
                        channel.close(promise: nil)
                        return
                    }
                    channel.writeAndFlush(ByteBuffer(string: "\(command) \(key)\n"), promise: nil)
                case .failure(let error):
                    promise.fail(BootstrapError("cannot reach the bootstrap server \(host):\(port): \(error)"))
                }
            }
        return Fetch(result: promise.futureResult) {
            cancelled.withLock { $0 = true }
            promise.fail(BootstrapError("cancelled"))
            channelBox.withLock { $0 }?.close(promise: nil)
        }
    }
}

private final class BootstrapClientHandler: ChannelInboundHandler {
    typealias InboundIn = String

    private let key: String
    private let promise: EventLoopPromise<Int>
    private var done = false

    init(key: String, promise: EventLoopPromise<Int>) {
        self.key = key
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard !done else { return }
        if parts.count == 3, parts[0] == "KV", parts[1] == key, let tokens = Int(parts[2]) {
            done = true
            context.writeAndFlush(NIOAny(ByteBuffer(string: "ACK \(key)\n")), promise: nil)
            promise.succeed(tokens)
        } else if parts.first == "ERR" {
            done = true
            promise.fail(BootstrapError(parts.count == 3 ? String(parts[2]) : "prefill reported an error"))
            context.close(promise: nil)
        } else {
            done = true
            promise.fail(BootstrapError("unexpected bootstrap reply: \(line.prefix(64))"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(BootstrapError("the prefill worker closed the bootstrap connection of room \(key)"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(BootstrapError("bootstrap connection of room \(key) failed: \(error)"))
        }
        context.close(promise: nil)
    }
}

/// A `Mutex` that closures can share.
final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
