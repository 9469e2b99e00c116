import NIOCore
import NIOPosix
import Synchronization

/// A TCP listener of one door: accepts connections, hands each to the door's pipeline
/// set-up, and drains them on shutdown.
///
/// A drain stops accepting, tells every connection to finish (`ChannelShouldQuiesceEvent`:
/// the REST door closes idle connections at once and busy ones after their answer; the
/// binary door sends `GoAway` and closes once its calls ended), and waits until all have
/// closed or the grace period is over, when the rest are closed.
final class TCPListener: Sendable {
    private struct State: Sendable {
        var children: [ObjectIdentifier: any Channel] = [:]
        var draining = false
        /// Waiting for the last connection to close during a drain.
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    /// The open connections, shared with the accept path.
    private final class Children: Sendable {
        let state = Mutex(State())
    }

    let port: Int
    private let server: any Channel
    private let children = Children()

    /// Binds at once (so the port is known before the gateway reports it is listening).
    ///
    /// - Parameters:
    ///   - backlog: pending connections the kernel queues (bursts of connects beyond it
    ///     wait for a SYN retransmit, a second).
    ///   - initialize: sets up a connection's pipeline, on its event loop.
    init(host: String, port: Int, backlog: Int = 4096, initialize: @escaping @Sendable (any Channel) throws -> Void) async throws {
        let children = self.children
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: Int32(clamping: backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Accept in batches: a burst of connects is taken in few wake-ups.
            .serverChannelOption(.maxMessagesPerRead, value: 64)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // A client that half-closes still gets its answer.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                let key = ObjectIdentifier(channel)
                let draining = children.state.withLock { state in
                    state.children[key] = channel
                    return state.draining
                }
                channel.closeFuture.whenComplete { _ in
                    let waiters = children.state.withLock { state -> [CheckedContinuation<Void, Never>] in
                        state.children.removeValue(forKey: key)
                        guard state.draining, state.children.isEmpty else { return [] }
                        defer { state.drained = [] }
                        return state.drained
                    }
                    for waiter in waiters { waiter.resume() }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try initialize(channel)
                    if draining { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
                }
            }
            .bind(host: host, port: port)
            .get()
        self.port = server.localAddress?.port ?? port
    }

    /// Stops accepting and drains the open connections within `grace`.
    func drain(grace: Duration) async {
        try? await server.close()
        let open = children.state.withLock { state -> [any Channel] in
            state.draining = true
            return Array(state.children.values)
        }
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let done = self.children.state.withLock { state -> Bool in
                        if state.children.isEmpty { return true }
                        state.drained.append(continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            // Drained, or out of time: whatever is still open is closed now (and the
            // wait above then ends as the last connection goes).
            closeAll()
            group.cancelAll()
        }
    }

    /// Closes the listener and every connection at once.
    func closeAll() {
        server.close(promise: nil)
        let open = children.state.withLock { state -> [any Channel] in
            state.draining = true
            return Array(state.children.values)
        }
        for channel in open { channel.close(promise: nil) }
        let waiters = children.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.drained = [] }
            return state.children.isEmpty ? state.drained : []
        }
        for waiter in waiters { waiter.resume() }
    }
}
