import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The worker connections of one event loop: idle keep-alive connections per worker,
/// a cap on open connections per worker with a FIFO of exchanges waiting beyond it,
/// and a sweep that closes idle connections once they are too old to reuse.
///
/// Loop-confined: every method runs on `loop`.
final class ConnectionPool {
    /// A worker address.
    struct Key: Hashable, Sendable {
        let secure: Bool
        /// As the socket needs it (IPv6 without brackets).
        let host: String
        let port: Int

        init(_ url: WorkerURL) {
            secure = url.scheme == .https
            host = url.host.hasPrefix("[") ? String(url.host.dropFirst().dropLast()) : url.host
            port = url.effectivePort
        }
    }

    struct Settings {
        let connectTimeout: TimeAmount
        let idleTimeout: TimeAmount
        let maxConnectionsPerKey: Int
        let maxIdlePerKey: Int
        let tls: NIOSSLContext
    }

    private struct Idle {
        let connection: UpstreamConnection
        let since: NIODeadline
    }

    let loop: any EventLoop
    let settings: Settings
    private let statistics: PoolStatistics
    private var idle: [Key: [Idle]] = [:]
    private var openCount: [Key: Int] = [:]
    private var waiting: [Key: CircularBuffer<Exchange>] = [:]
    private var sweep: Scheduled<Void>?
    private var isShutDown = false

    init(loop: any EventLoop, settings: Settings, statistics: PoolStatistics) {
        self.loop = loop
        self.settings = settings
        self.statistics = statistics
    }

    // MARK: Exchanges

    /// Gives the exchange an idle connection, a new one, or a place in the queue.
    func acquire(for exchange: Exchange) {
        let key = exchange.key
        if let connection = takeIdle(key) {
            exchange.connectionAcquired(connection, reused: true)
        } else if openCount[key, default: 0] < settings.maxConnectionsPerKey {
            connect(for: exchange)
        } else {
            waiting[key, default: CircularBuffer()].append(exchange)
            statistics.startedWaiting(key)
        }
    }

    /// A new connection for an exchange whose reused connection turned out stale (the
    /// stale one is closing and no longer counts against the cap).
    func connectNew(for exchange: Exchange) {
        connect(for: exchange)
    }

    /// The exchange gave up while it waited for a connection.
    func cancelWaiting(_ exchange: Exchange) {
        guard var queue = waiting[exchange.key], let index = queue.firstIndex(where: { $0 === exchange }) else { return }
        queue.remove(at: index)
        waiting[exchange.key] = queue.isEmpty ? nil : queue
        statistics.stoppedWaiting(exchange.key)
    }

    /// A connection finished its exchange: to the next waiting exchange, to the idle
    /// list (`reuse`), or closed.
    func release(_ connection: UpstreamConnection, reuse: Bool) {
        guard reuse, connection.isUsable, !isShutDown else {
            connection.close()
            return
        }
        if let next = nextWaiting(connection.key) {
            next.connectionAcquired(connection, reused: true)
            return
        }
        var list = idle[connection.key] ?? []
        if list.count >= settings.maxIdlePerKey {
            guard !list.isEmpty else {
                connection.close()
                return
            }
            list.removeFirst().connection.close()
        }
        list.append(Idle(connection: connection, since: .now()))
        idle[connection.key] = list
        scheduleSweep()
    }

    /// A connection closed (the worker ended it, or we did): it no longer counts, and a
    /// waiting exchange may open one in its place.
    func closed(_ connection: UpstreamConnection) {
        let key = connection.key
        if var list = idle[key], let index = list.firstIndex(where: { $0.connection === connection }) {
            list.remove(at: index)
            idle[key] = list.isEmpty ? nil : list
        }
        let remaining = openCount[key, default: 1] - 1
        openCount[key] = remaining > 0 ? remaining : nil
        statistics.closed(key)
        if remaining < settings.maxConnectionsPerKey, let next = nextWaiting(key) {
            connect(for: next)
        }
    }

    /// Closes every idle connection, and refuses what waits.
    func closeAll() {
        isShutDown = true
        sweep?.cancel()
        sweep = nil
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for entry in all { entry.connection.close() }
        let queued = waiting.values.flatMap { $0 }
        for exchange in queued { statistics.stoppedWaiting(exchange.key) }
        waiting = [:]
        for exchange in queued { exchange.connectFailed(TransportError.shutDown) }
    }

    // MARK: Connections

    private func nextWaiting(_ key: Key) -> Exchange? {
        while var queue = waiting[key], let next = queue.popFirst() {
            waiting[key] = queue.isEmpty ? nil : queue
            statistics.stoppedWaiting(key)
            if !next.isDone { return next }
        }
        return nil
    }

    private func takeIdle(_ key: Key) -> UpstreamConnection? {
        let now = NIODeadline.now()
        // The most recently used first: it is the least likely to have been closed.
        while let last = idle[key]?.popLast() {
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if last.connection.isUsable, now - last.since < settings.idleTimeout { return last.connection }
            last.connection.close()
        }
        return nil
    }

    private func connect(for exchange: Exchange) {
        let key = exchange.key
        openCount[key, default: 0] += 1
        statistics.opened(key)
        let connection = UpstreamConnection(pool: self, key: key)
        let tls = key.secure ? settings.tls : nil
        let serverName = exchange.request.url.host.hasPrefix("[") || (try? SocketAddress(ipAddress: key.host, port: 0)) != nil ? nil : key.host
        let bound = NIOLoopBound(connection, eventLoop: loop)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(bound.value)
                }
            }
        let connecting: EventLoopFuture<any Channel>
        if let address = try? SocketAddress(ipAddress: key.host, port: key.port) {
            connecting = bootstrap.connect(to: address)
        } else {
            connecting = bootstrap.connect(host: key.host, port: key.port)
        }
        connecting.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                if exchange.isDone {
                    release(connection, reuse: true)
                } else {
                    exchange.connectionAcquired(connection, reused: false)
                }
            case .failure(let error):
                // Never connected: no channelInactive will come.
                let remaining = openCount[key, default: 1] - 1
                openCount[key] = remaining > 0 ? remaining : nil
                statistics.closed(key)
                exchange.connectFailed(error)
                if let next = nextWaiting(key) { connect(for: next) }
            }
        }
    }

    /// Closes idle connections past the reuse limit, while any are idle.
    private func scheduleSweep() {
        guard sweep == nil else { return }
        sweep = loop.assumeIsolated().scheduleTask(in: settings.idleTimeout) { [self] in
            sweep = nil
            let now = NIODeadline.now()
            for (key, list) in idle {
                let (expired, kept) = (list.filter { now - $0.since >= settings.idleTimeout }, list.filter { now - $0.since < settings.idleTimeout })
                idle[key] = kept.isEmpty ? nil : kept
                for entry in expired { entry.connection.close() }
            }
            if !idle.isEmpty { scheduleSweep() }
        }
    }
}
