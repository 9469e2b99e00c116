import AsyncHTTPClient
import GatewayCore
import GatewayStore
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The gateway: registry, background jobs, health checks and the REST API,
/// assembled from one configuration.
///
/// `run` serves until the surrounding task is cancelled or (when given signals)
/// a shutdown signal arrives; tests run the real gateway this way on port 0.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let registry: WorkerRegistry
    public let workers: WorkerService
    public let policy: any RoutingPolicy
    let selector: WorkerSelector
    let jobs: WorkerJobs
    let prober: WorkerProber
    let httpClient: HTTPClient
    /// Inference calls to plain-HTTP workers.
    let upstreamClient: UpstreamHTTPClient
    let logger: Logger
    /// Set once the upstream client is shut down (by `run`, or by `deinit` for a gateway never run).
    private let clientShutDown = Atomic<Bool>(false)
    /// The running service group, so `shutdown()` can stop it gracefully.
    private let serviceGroup = Mutex<ServiceGroup?>(nil)
    private let boundBinaryPort = Mutex<Int?>(nil)
    let lifecycle = LifecycleState()
    private let runningProxy = Mutex<InferenceProxy?>(nil)
    private let boundPrometheusPort = Mutex<Int?>(nil)
    /// The metric families served at `/metrics`.
    let metrics: GatewayMetrics

    /// The port of the separate Prometheus listener once `run` has bound it (nil when disabled).
    public var prometheusPort: Int? { boundPrometheusPort.withLock { $0 } }

    /// The Prometheus text `/metrics` answers now.
    public func metricsText() -> String { metrics.render() }

    /// The admission controller of the running gateway (tests and metrics).
    var proxyAdmission: AdmissionController? { runningProxy.withLock { $0?.admission } }

    /// The port of the binary listener once `run` has bound it (nil when disabled).
    public var binaryPort: Int? { boundBinaryPort.withLock { $0 } }

    /// Why the gateway cannot start.
    public struct StartupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Throws: `StartupError` when the state file cannot be opened.
    public init(configuration: GatewayConfiguration, logger: Logger? = nil) throws {
        let store: any WorkerStore
        if let path = configuration.statePath {
            do {
                store = try SQLiteWorkerStore(path: path)
            } catch {
                throw StartupError(description: "cannot open the state file \(path): \(error)")
            }
        } else {
            store = NoWorkerStore()
        }
        var logger = logger ?? Logger(label: "model-gateway")
        logger.logLevel = configuration.logLevel
        self.configuration = configuration
        self.logger = logger
        self.registry = WorkerRegistry(wallClock: { Int64(Date().timeIntervalSince1970) }, breaker: configuration.circuitBreaker)
        self.policy = configuration.routing.policy.makePolicy(cacheAware: configuration.routing.cacheAware)
        self.selector = WorkerSelector(registry: registry, policy: policy)
        self.metrics = GatewayMetrics(workers: registry)

        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        // No distributed tracing spans per upstream request (measurable on the hot path).
        clientConfiguration.tracing.tracer = nil
        clientConfiguration.timeout = .init(connect: .seconds(5))
        clientConfiguration.httpVersion = .http1Only
        // We retry on our own terms (another attempt later, another worker): fail fast.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.connectionPool.idleTimeout = .seconds(60)
        // Streams hold a connection each; many may run against one worker at once.
        clientConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1024
        self.httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        // Idle connections are not reused after 4 s: workers (uvicorn, llama.cpp) close theirs at 5 s.
        self.upstreamClient = UpstreamHTTPClient(connectTimeout: .seconds(5), idleTimeout: .seconds(4))
        self.prober = WorkerProber(client: httpClient)
        self.jobs = WorkerJobs(registry: registry, prober: prober, configuration: configuration.registration, logger: logger)
        self.workers = WorkerService(
            registry: registry, jobs: jobs, persistence: WorkerPersistence(store: store), healthDefaults: configuration.healthCheck, defaultMaxLoad: configuration.routing.workerMaxLoad
        )
    }

    /// Serves until cancelled or signalled, then shuts down in order: listener,
    /// background services, jobs, upstream client.
    ///
    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown (none in tests).
    ///   - onListening: called with the bound REST port once the listener is up.
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [],
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let startupInputs: [AddWorkerInput]
        do {
            startupInputs = try validatedStartupWorkers()
        } catch {
            await shutdownBackground()
            throw error
        }
        let proxy = InferenceProxy(
            selector: selector, registry: registry, upstream: upstreamClient, client: httpClient, configuration: configuration, logger: logger,
            metrics: metrics
        )
        runningProxy.withLock { $0 = proxy }
        metrics.setAdmission(proxy.admission)
        let info = InfoRoutes(
            registry: registry, selector: selector, client: httpClient, configuration: configuration,
            startedAt: Int64(Date().timeIntervalSince1970)
        )
        let timeouts = configuration.clientTimeouts
        let authorizer = Authorizer(apiKey: configuration.auth.apiKey, adminAPIKey: configuration.auth.adminAPIKey)
        let api = RESTAPI(service: workers, registry: registry, configuration: configuration, proxy: proxy, info: info, lifecycle: lifecycle, metrics: metrics)
        var services: [any Service] = [
            HealthChecker(registry: registry, prober: prober, logger: logger),
            PolicyMaintenance(policy: policy, registry: registry, interval: configuration.routing.evictionInterval),
        ]
        var binaryListener: BinaryListener?
        if configuration.binary.port != nil {
            do {
                let listener = try await BinaryListener(
                    host: configuration.http.host, configuration: configuration.binary, grace: configuration.shutdownGracePeriod,
                    authorizer: authorizer, calls: BinaryCalls(workers: workers, registry: registry, proxy: proxy), metrics: metrics, logger: logger
                )
                boundBinaryPort.withLock { $0 = listener.port }
                services.append(listener)
                binaryListener = listener
                logger.info("binary protocol listening", metadata: ["address": "\(configuration.http.host):\(listener.port)"])
            } catch {
                await shutdownBackground()
                throw StartupError(description: "cannot listen for the binary protocol on \(configuration.http.host):\(configuration.binary.port!): \(error)")
            }
        }
        defer { binaryListener?.close() }
        if let port = configuration.metrics.port {
            services.append(makePrometheusListener(port: port))
        }
        let responder = GatewayResponder(routes: api.makeRoutes(), authorizer: authorizer, metrics: metrics, logger: logger)
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [SlowClientGuard(headerTimeout: timeouts.headerRead, bodyTimeout: timeouts.bodyRead)],
            idleTimeout: TimeAmount(configuration.clientTimeouts.idle)
        )
        let connectionShared = ConnectionResponder.Shared(
            responder: responder, serverName: Self.serverName, logger: logger,
            inferenceBodyLimit: configuration.routing.maxPayloadBytes, controlBodyLimit: configuration.http.maxControlBodyBytes
        )
        let app = Application(
            responder: responder,
            // Requests are answered by ConnectionResponder (on the connection's event loop
            // where that pays); Hummingbird keeps the listener, codec and connection lifetime.
            server: HTTPServerBuilder { hummingbirdResponder in
                GatewayHTTP1Channel(base: HTTP1Channel(responder: hummingbirdResponder, configuration: http1), shared: connectionShared)
            },
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.http.host, port: configuration.http.port),
                serverName: Self.serverName
            ),
            services: services,
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? 0)
            },
            logger: logger
        )
        do {
            let restored = try await workers.restoreStoredWorkers()
            if restored > 0 { logger.info("restored workers from the state file", metadata: ["count": "\(restored)"]) }
        } catch {
            await shutdownBackground()
            throw StartupError(description: "cannot read the state file: \(error)")
        }
        for input in startupInputs {
            _ = try await workers.add(input)
        }
        // Services shut down in reverse order: the watcher marks the gateway draining first.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: app),
                // It returns when the shutdown starts; that must not cancel the group.
                .init(
                    service: ShutdownWatcher(state: lifecycle, signals: gracefulShutdownSignals, logger: logger),
                    successTerminationBehavior: .gracefullyShutdownGroup
                ),
            ],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger
        )
        // Past the grace period, whatever still runs is cancelled.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGracePeriod
        let group = ServiceGroup(configuration: groupConfiguration)
        serviceGroup.withLock { $0 = group }
        defer { serviceGroup.withLock { $0 = nil } }
        do {
            try await group.run()
        } catch {
            await shutdownBackground()
            throw error
        }
        await shutdownBackground()
    }

    /// The `Server` header of every answer.
    static let serverName = "model-gateway"

    /// Starts a graceful shutdown of a running gateway: the listener closes, requests
    /// in flight finish, then `run` returns. Does nothing when the gateway is not running.
    public func shutdown() async {
        lifecycle.beginDraining()
        await serviceGroup.withLock { $0 }?.triggerGracefulShutdown()
    }

    /// The `--prometheus-port` listener: `GET /metrics` only.
    private func makePrometheusListener(port: Int) -> some Service {
        let host = configuration.metrics.host
        let logger = logger
        return Application(
            responder: MetricsResponder(metrics: metrics),
            server: .http1(configuration: .init(idleTimeout: TimeAmount(configuration.clientTimeouts.idle))),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: Self.serverName),
            onServerRunning: { [weak self] channel in
                let bound = channel.localAddress?.port ?? port
                self?.boundPrometheusPort.withLock { $0 = bound }
                logger.info("prometheus metrics listening", metadata: ["address": "http://\(host):\(bound)/metrics"])
            },
            logger: logger
        )
    }

    private func shutdownBackground() async {
        await jobs.shutdown()
        upstreamClient.shutdown()
        if clientShutDown.exchange(true, ordering: .acquiringAndReleasing) == false {
            try? await httpClient.shutdown()
        }
    }

    deinit {
        // A gateway that never ran (or failed to start) still owns a client that must be closed.
        if clientShutDown.exchange(true, ordering: .acquiringAndReleasing) == false {
            _ = httpClient.shutdown()
        }
    }

    /// `--worker-urls` checked before anything starts, so a typo stops the gateway
    /// with a clear message instead of a worker that never registers.
    private func validatedStartupWorkers() throws -> [AddWorkerInput] {
        try configuration.workerURLs.map { raw in
            do throws(WorkerURLError) {
                _ = try WorkerURL(raw)
            } catch {
                throw StartupError(description: "--worker-urls: \(error.description)")
            }
            return AddWorkerInput(url: raw, apiKey: configuration.workerAPIKey)
        }
    }
}
