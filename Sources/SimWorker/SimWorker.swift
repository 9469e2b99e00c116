import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A simulated LLM inference worker: an HTTP/1.1 server that answers the SGLang and
/// OpenAI-compatible routes with deterministic, cheaply generated output.
///
/// It is the fixture for tests, demos and benchmarks of the gateway, so every request is
/// answered on the channel's event loop with no async hops; delays use
/// `EventLoop.scheduleTask`. Behaviour that tests want to flip at run time (health,
/// failure rate, latency) lives behind a `Mutex`, as do the request counters.
///
/// ```swift
/// let worker = SimWorker(configuration: .init(name: "w1", port: 0))
/// let port = try await worker.start()
/// // … talk to http://127.0.0.1:\(port) …
/// try await worker.shutdown()
/// ```
///
/// `SimWorker` is also a ServiceLifecycle `Service`: `run()` starts it (unless already
/// started), waits for graceful shutdown or cancellation, then shuts it down.
public final class SimWorker: Service, Sendable {
    /// Which family of servers the worker imitates.
    public enum Runtime: String, Sendable, CaseIterable {
        /// An SGLang server: SGLang routes (`/generate`, `/server_info`, `/model_info`,
        /// `/get_load`, `/flush_cache` …) and the OpenAI-compatible routes.
        case sglang
        /// A plain OpenAI-compatible server (vLLM, llama.cpp `llama-server`): only the
        /// `/v1/…` routes and `/health`; SGLang-only routes answer 404.
        case openai
    }

    /// How requests are timed.
    public enum Engine: String, Sendable, CaseIterable {
        /// A fixed latency and chunk interval per request, no cache, no queue.
        case simple
        /// `EngineCore`: tokens, a block prefix cache, prefill from uncached tokens,
        /// continuous batching with a bounded running batch and a FIFO queue.
        case realistic
    }

    /// The worker's part in prefill/decode disaggregation.
    public enum Role: String, Sendable, CaseIterable {
        /// Serves requests whole.
        case regular
        /// Computes prompts and hands their KV to decode workers over its bootstrap listener.
        case prefill
        /// Takes a request's KV from the prefill worker named in the request, then decodes.
        case decode
    }

    /// How a worker behaves. All durations are simulated on the event loop.
    public struct Configuration: Sendable {
        /// The worker's name, sent in the `X-Sim-Worker` header of every reply and as
        /// `system_fingerprint` / `meta_info.worker` in bodies. The text `{port}` is
        /// replaced by the bound port when the worker starts.
        public var name: String
        /// The model the worker serves (`/v1/models` id, `served_model_name`, default `model`).
        public var modelID: String
        /// Which routes the worker serves.
        public var runtime: Runtime
        /// Added before a non-streamed inference reply and before the first streamed chunk.
        public var latency: Duration
        /// How many SSE events a streamed reply carries (fewer if fewer tokens are generated).
        public var chunkCount: Int
        /// The pause between two streamed chunks.
        public var chunkInterval: Duration
        /// Probability (0...1) that an inference request answers 500 instead.
        public var failureRate: Double
        /// `/health` answers 503 "Loading model" until this long after `start()`.
        public var startupDelay: Duration
        /// The address to bind.
        public var host: String
        /// The port to bind; 0 picks an ephemeral port (see the value `start()` returns).
        public var port: Int
        /// How requests are timed (`simple` keeps `latency` and `chunkInterval`).
        public var engine: Engine
        /// The realistic engine's figures.
        public var engineConfiguration: EngineConfiguration
        /// Prefill/decode role (needs the realistic engine unless `regular`).
        public var role: Role
        /// A prefill worker's bootstrap listener port (0: ephemeral; see `bootstrapPort`).
        public var bootstrapPort: Int
        /// Longest wait of a KV hand-off: a decode for its KV, a computed KV for its decode.
        public var bootstrapTimeout: Duration

        /// Creates a configuration; every parameter has a default.
        public init(
            name: String = "sim-worker",
            modelID: String = "sim-model",
            runtime: Runtime = .sglang,
            latency: Duration = .zero,
            chunkCount: Int = 8,
            chunkInterval: Duration = .zero,
            failureRate: Double = 0,
            startupDelay: Duration = .zero,
            host: String = "127.0.0.1",
            port: Int = 0,
            engine: Engine = .simple,
            engineConfiguration: EngineConfiguration = EngineConfiguration(),
            role: Role = .regular,
            bootstrapPort: Int = 8998,
            bootstrapTimeout: Duration = .seconds(30)
        ) {
            self.name = name
            self.modelID = modelID
            self.runtime = runtime
            self.latency = latency
            self.chunkCount = chunkCount
            self.chunkInterval = chunkInterval
            self.failureRate = failureRate
            self.startupDelay = startupDelay
            self.host = host
            self.port = port
            self.engine = engine
            self.engineConfiguration = engineConfiguration
            self.role = role
            self.bootstrapPort = bootstrapPort
            self.bootstrapTimeout = bootstrapTimeout
        }
    }

    /// Errors from `start()`.
    public enum LifecycleError: Error, Sendable, Equatable {
        /// `start()` was called after `shutdown()`; a worker cannot be restarted.
        case alreadyShutDown
        /// `start()` was called while another `start()` was binding.
        case startInProgress
        /// A prefill or decode role was asked of the simple engine.
        case roleNeedsRealisticEngine
    }

    /// One step of a KV hand-off as a worker saw it (tests prove pairing and overlap with these).
    public struct PDEvent: Sendable, Equatable {
        /// What happened.
        public enum Kind: String, Sendable {
            /// The request of the room arrived.
            case started
            /// Prefill: its KV is computed. Decode: the KV arrived.
            case kvReady = "kv_ready"
            /// The request was answered successfully.
            case answered
            /// The hand-off failed; `detail` says why.
            case failed
        }
        /// The room (SGLang `bootstrap_room`) or vLLM request id.
        public var room: String
        /// The worker's role.
        public var role: Role
        /// What happened.
        public var kind: Kind
        /// When, in `NIODeadline.now().uptimeNanoseconds` (one clock for every worker of a process).
        public var at: UInt64
        /// The failure's reason, else empty.
        public var detail: String
    }

    /// The largest request body accepted; larger bodies answer 413.
    public static let maxBodyBytes = 16 * 1024 * 1024
    /// The most tokens one request can ask for.
    public static let maxTokens = 4096
    /// Tokens generated when the request does not say how many.
    public static let defaultTokens = 16

    /// The configuration the worker was created with (runtime-mutable values may since
    /// have changed: see `setLatency`, `setFailureRate`, `setHealthy`).
    public let configuration: Configuration
    let logger: Logger
    let state: Mutex<State>

    enum Phase {
        case idle
        case starting
        case running
        case stopped
    }

    struct State: Sendable {
        var phase: Phase = .idle
        var name: String
        var port: Int?
        var replies: StaticReplies?
        var serverChannel: (any Channel)?
        var children: [ObjectIdentifier: any Channel] = [:]
        var readyAt: NIODeadline = .distantFuture
        var healthy = true
        var failureRate: Double
        var latency: Duration
        var requestCounts: [String: Int] = [:]
        var lastHeaders: [String: HTTPHeaders] = [:]
        var totalRequests = 0
        var inFlight = 0
        var connections = 0
        var bootstrapPort: Int?
        var pdEvents: [PDEvent] = []
        var pdOutcomes: [String: Int] = [:]
    }

    /// The realistic engine, when configured.
    let engine: RealisticEngine?
    /// The bootstrap listener of a prefill worker.
    let bootstrap: BootstrapServer?

    /// Creates a worker; nothing is bound until `start()`.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sim-worker")) {
        var configuration = configuration
        configuration.chunkCount = max(1, configuration.chunkCount)
        configuration.failureRate = Self.clampRate(configuration.failureRate)
        self.configuration = configuration
        self.logger = logger
        self.engine = configuration.engine == .realistic ? RealisticEngine(configuration: configuration.engineConfiguration) : nil
        self.bootstrap = configuration.role == .prefill ? BootstrapServer(timeout: configuration.bootstrapTimeout) : nil
        self.state = Mutex(
            State(
                name: configuration.name,
                failureRate: configuration.failureRate,
                latency: configuration.latency
            )
        )
    }

    // MARK: Lifecycle

    /// Binds the listener and returns the bound port. Calling it again on a running
    /// worker returns the same port; calling it after `shutdown()` throws
    /// `LifecycleError.alreadyShutDown`.
    @discardableResult
    public func start() async throws -> Int {
        let existing: Int? = try state.withLock { state in
            switch state.phase {
            case .running: return state.port
            case .starting: throw LifecycleError.startInProgress
            case .stopped: throw LifecycleError.alreadyShutDown
            case .idle:
                state.phase = .starting
                return nil
            }
        }
        if let existing { return existing }
        if configuration.role != .regular, configuration.engine != .realistic {
            state.withLock { $0.phase = .idle }
            throw LifecycleError.roleNeedsRealisticEngine
        }
        if let bootstrap {
            do {
                let bound = try await bootstrap.start(host: configuration.host, port: configuration.bootstrapPort)
                state.withLock { $0.bootstrapPort = bound }
            } catch {
                state.withLock { $0.phase = .idle }
                throw error
            }
        }

        let serverBootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                guard self.track(channel) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withErrorHandling: true
                    )
                    try channel.pipeline.syncOperations.addHandler(SimHTTPHandler(worker: self))
                }
            }

        let channel: any Channel
        do {
            // Resolve the name on the bind future's event loop, before any accept is handled.
            channel = try await serverBootstrap.bind(host: configuration.host, port: configuration.port)
                .map { [self] channel in
                    let port = channel.localAddress?.port ?? configuration.port
                    state.withLock { state in
                        state.port = port
                        state.name = Self.resolveName(configuration.name, port: port)
                        state.replies = StaticReplies(name: state.name, configuration: configuration, port: port, bootstrapPort: state.bootstrapPort)
                        state.serverChannel = channel
                        state.readyAt = .now() + TimeAmount(configuration.startupDelay)
                    }
                    return channel
                }
                .get()
        } catch {
            state.withLock { $0.phase = .idle }
            await self.bootstrap?.shutdown()
            throw error
        }

        let (port, name, stopped): (Int, String, Bool) = state.withLock { state in
            if state.phase == .stopped { return (state.port ?? 0, state.name, true) }
            state.phase = .running
            return (state.port ?? 0, state.name, false)
        }
        if stopped {
            // shutdown() ran while binding.
            try? await channel.close()
            throw LifecycleError.alreadyShutDown
        }
        logger.debug(
            "sim worker listening",
            metadata: [
                "name": "\(name)", "host": "\(configuration.host)", "port": "\(port)",
                "runtime": "\(configuration.runtime.rawValue)",
            ]
        )
        return port
    }

    /// Closes the listener and every open connection (streams in progress stop).
    /// Idempotent; a worker cannot be started again afterwards.
    public func shutdown() async throws {
        let (server, children): ((any Channel)?, [any Channel]) = state.withLock { state in
            guard state.phase != .stopped else { return (nil, []) }
            state.phase = .stopped
            let server = state.serverChannel
            state.serverChannel = nil
            let children = Array(state.children.values)
            state.children.removeAll()
            return (server, children)
        }
        if let server {
            try? await server.close()
        }
        await bootstrap?.shutdown()
        for child in children {
            try? await child.close()
        }
        if server != nil {
            logger.debug("sim worker stopped", metadata: ["name": "\(name)"])
        }
    }

    /// Starts the worker (if `start()` was not called yet), waits until graceful shutdown
    /// is triggered, the task is cancelled, or `shutdown()` is called, then shuts down.
    public func run() async throws {
        _ = try await start()
        guard let closeFuture = state.withLock({ $0.serverChannel?.closeFuture }) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            group.addTask { try? await closeFuture.get() }
            _ = await group.next()
            try? await self.shutdown()
            group.cancelAll()
        }
    }

    // MARK: Runtime control

    /// `false` makes `/health` answer 503 until set back to `true`.
    public func setHealthy(_ healthy: Bool) {
        state.withLock { $0.healthy = healthy }
    }

    /// Sets the probability (clamped to 0...1) that an inference request answers 500.
    public func setFailureRate(_ rate: Double) {
        let rate = Self.clampRate(rate)
        state.withLock { $0.failureRate = rate }
    }

    /// Sets the delay before non-streamed replies and before the first streamed chunk.
    public func setLatency(_ latency: Duration) {
        state.withLock { $0.latency = latency }
    }

    /// Zeroes the request counters (not `inFlight`, which tracks live requests).
    public func resetCounters() {
        state.withLock { state in
            state.requestCounts.removeAll()
            state.totalRequests = 0
            state.connections = 0
        }
    }

    // MARK: Observation

    /// The worker's name, with `{port}` resolved once started.
    public var name: String { state.withLock { $0.name } }

    /// The bound port, or nil before `start()` finished binding.
    public var port: Int? { state.withLock { $0.port } }

    /// Requests received for `path` (the request target without its query string),
    /// whatever their method or outcome.
    public func requestCount(path: String) -> Int {
        state.withLock { $0.requestCounts[path] ?? 0 }
    }

    /// Requests received on all paths.
    public var totalRequestCount: Int { state.withLock { $0.totalRequests } }

    /// Inference requests (generate, completions, chat, embeddings, rerank) accepted
    /// and not yet finished (a stream counts until its last chunk or until the client goes away).
    public var inFlight: Int { state.withLock { $0.inFlight } }

    /// TCP connections accepted since start (or since `resetCounters()`).
    public var connectionCount: Int { state.withLock { $0.connections } }

    /// TCP connections currently open.
    public var openConnectionCount: Int { state.withLock { $0.children.count } }

    /// The bound bootstrap port of a prefill worker (nil otherwise, or before `start()`).
    public var bootstrapPort: Int? { state.withLock { $0.bootstrapPort } }

    /// The realistic engine's load and counters (nil with the simple engine).
    public var engineSnapshot: (load: EngineLoad, counters: EngineCounters)? { engine?.snapshot() }

    /// Hand-off events of `room` (all rooms when nil), oldest first; the last 4,096 are kept.
    public func pdEvents(room: String? = nil) -> [PDEvent] {
        state.withLock { state in room.map { r in state.pdEvents.filter { $0.room == r } } ?? state.pdEvents }
    }

    func recordPD(_ room: String, _ kind: PDEvent.Kind, detail: String = "") {
        let event = PDEvent(room: room, role: configuration.role, kind: kind, at: NIODeadline.now().uptimeNanoseconds, detail: detail)
        state.withLock { state in
            if state.pdEvents.count >= 4096 { state.pdEvents.removeFirst(1024) }
            state.pdEvents.append(event)
            switch kind {
            case .answered: state.pdOutcomes["ok", default: 0] += 1
            case .failed: state.pdOutcomes["failed", default: 0] += 1
            case .started, .kvReady: break
            }
        }
    }

    /// Hand-offs by outcome (`ok`, `failed`), for `/metrics`.
    var pdOutcomes: [String: Int] { state.withLock { $0.pdOutcomes } }

    // MARK: Internals used by the handler

    struct HealthSnapshot {
        var healthy: Bool
        var loading: Bool
    }

    struct InferenceAdmission {
        var fail: Bool
        var latency: Duration
    }

    /// Records that a request for `path` arrived, with its headers.
    @inline(__always)
    func recordRequest(path: Substring, headers: HTTPHeaders) {
        state.withLock { state in
            state.totalRequests += 1
            state.requestCounts[String(path), default: 0] += 1
            state.lastHeaders[String(path)] = headers
        }
    }

    /// The headers of the last request for `path` (tests check what a proxy forwarded).
    public func lastRequestHeaders(path: String) -> [(name: String, value: String)] {
        state.withLock { state in state.lastHeaders[path].map { $0.map { (name: $0.name, value: $0.value) } } ?? [] }
    }

    func healthSnapshot() -> HealthSnapshot {
        let now = NIODeadline.now()
        return state.withLock { HealthSnapshot(healthy: $0.healthy, loading: now < $0.readyAt) }
    }

    /// Decides whether an inference request fails; if not, counts it in flight.
    func admitInference() -> InferenceAdmission {
        let draw = Double.random(in: 0..<1)
        return state.withLock { state in
            if draw < state.failureRate {
                return InferenceAdmission(fail: true, latency: state.latency)
            }
            state.inFlight += 1
            return InferenceAdmission(fail: false, latency: state.latency)
        }
    }

    func finishInference() {
        state.withLock { $0.inFlight -= 1 }
    }

    /// What a new connection's handler needs: the resolved name and the fixed bodies.
    func connectionContext() -> (name: String, replies: StaticReplies) {
        state.withLock { state in
            (state.name, state.replies ?? StaticReplies(name: state.name, configuration: configuration, port: state.port ?? 0, bootstrapPort: state.bootstrapPort))
        }
    }

    /// Registers an accepted connection; false if the worker is shutting down.
    private func track(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard state.phase != .stopped else { return false }
            state.children[id] = channel
            state.connections += 1
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [self] _ in
                _ = state.withLock { $0.children.removeValue(forKey: id) }
            }
        }
        return accepted
    }

    static func resolveName(_ template: String, port: Int) -> String {
        guard template.contains("{port}") else { return template }
        var out = ""
        var rest = Substring(template)
        while let range = rest.firstRange(of: "{port}") {
            out += rest[..<range.lowerBound]
            out += String(port)
            rest = rest[range.upperBound...]
        }
        out += rest
        return out
    }

    static func clampRate(_ rate: Double) -> Double {
        guard rate.isFinite else { return 0 }
        return min(1, max(0, rate))
    }
}
