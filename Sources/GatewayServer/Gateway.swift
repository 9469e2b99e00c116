import GatewayBinary
import GatewayCore
import GatewayHTTP
import GatewayInference
import GatewayObservability
import GatewayStore
import GatewayUpstream
import GatewayWorkers
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The gateway, assembled from one configuration: registry, worker transport, inference
/// core, the two doors and the background services, run as one `ServiceGroup`.
///
/// `run` serves until the surrounding task is cancelled or (when given signals) a
/// shutdown signal arrives, then shuts down in this order: readiness answers 503; the
/// REST listener drains and binary connections get `GoAway`, both at once, within the
/// grace period; the background services stop; registration jobs are cancelled; the
/// worker transport closes its idle connections. Tests run the real gateway this way on port 0.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let registry: WorkerRegistry
    public let workers: WorkerService
    public let policy: any RoutingPolicy
    let selector: WorkerSelector
    let transport: WorkerTransport
    let prober: WorkerProber
    let engine: InferenceEngine
    let logger: Logger
    let lifecycle = LifecycleState()
    /// The metric families served at `/metrics`.
    let metrics: GatewayMetrics
    private let serviceGroup = Mutex<ServiceGroup?>(nil)
    private let boundBinaryPort = Mutex<Int?>(nil)
    private let boundPrometheusPort = Mutex<Int?>(nil)

    /// The port of the separate Prometheus listener once `run` has bound it (nil when disabled).
    public var prometheusPort: Int? { boundPrometheusPort.withLock { $0 } }

    /// The port of the binary listener once `run` has bound it (nil when disabled).
    public var binaryPort: Int? { boundBinaryPort.withLock { $0 } }

    /// The Prometheus text `/metrics` answers now.
    public func metricsText() -> String { metrics.render() }

    /// The admission controller (nil without `--max-concurrent-requests`).
    var proxyAdmission: AdmissionController? { engine.admission }

    /// Why the gateway cannot start.
    public struct StartupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Throws: `StartupError` when the state file or the TLS settings cannot be loaded.
    public init(configuration: GatewayConfiguration, logger: Logger? = nil) throws {
        var logger = logger ?? Logger(label: "model-gateway")
        logger.logLevel = configuration.logLevel
        let store: any WorkerStore
        if let path = configuration.statePath {
            do {
                let sqlite = try SQLiteWorkerStore(path: path)
                if let exposure = sqlite.exposure { logger.warning("\(exposure)") }
                store = sqlite
            } catch {
                throw StartupError(description: "cannot open the state file \(path): \(error)")
            }
        } else {
            store = NoWorkerStore()
        }
        self.configuration = configuration
        self.logger = logger
        self.registry = WorkerRegistry(wallClock: { Int64(Date().timeIntervalSince1970) }, breaker: configuration.circuitBreaker)
        self.policy = configuration.routing.policy.makePolicy(cacheAware: configuration.routing.cacheAware, blocks: configuration.routing.blocks)
        self.selector = WorkerSelector(registry: registry, policy: policy, shedWhenSaturated: configuration.routing.shedWhenSaturated)
        self.metrics = GatewayMetrics(workers: registry)
        if let blocks = policy as? BlockCacheAwarePolicy {
            metrics.setRoutingStatistics { blocks.statistics }
        }
        do {
            // Idle connections are not reused after 4 s: workers (uvicorn, llama.cpp) close theirs at 5 s.
            self.transport = try WorkerTransport(
                configuration: .init(
                    connectTimeout: .seconds(5), idleTimeout: .seconds(4), maxConnectionsPerWorker: configuration.routing.maxConnectionsPerWorker
                )
            )
        } catch {
            throw StartupError(description: "cannot set up TLS for calls to workers: \(error)")
        }
        self.prober = WorkerProber(transport: transport)
        self.workers = WorkerService(
            registry: registry, store: store, prober: prober, registration: configuration.registration, healthDefaults: configuration.healthCheck,
            defaultMaxLoad: configuration.routing.workerMaxLoad, logger: logger
        )
        let admission = configuration.admission
        self.engine = InferenceEngine(
            configuration: .init(
                attempts: .init(
                    maxAttempts: configuration.retry.effectiveMaxAttempts, backoff: configuration.retry.backoff
                ),
                requestTimeout: configuration.routing.requestTimeout, maxTranslatedAnswerBytes: configuration.routing.maxPayloadBytes,
                wantsRoutingText: configuration.routing.policy.wantsText, maxRoutingTextBytes: configuration.routing.maxRoutingTextBytes,
                gatewayChecksKeys: configuration.auth.authorizer.checksKeys, explainRouting: configuration.routing.explainRouting
            ),
            registry: registry, selector: selector, transport: transport, metrics: metrics, logger: logger,
            admission: admission.maxConcurrentRequests.map { limit in
                AdmissionController(configuration: .init(maxConcurrent: limit, queueSize: admission.queueSize, queueTimeout: admission.queueTimeout))
            },
            rateLimiter: admission.rateLimitPerSecond.map { RateLimiter(rate: $0) }
        )
        metrics.setAdmission(engine.admission)
    }

    /// Serves until cancelled or signalled, then shuts down in order (see the type).
    ///
    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown (none in tests).
    ///   - onListening: called with the bound REST port once the listeners are up.
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [],
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let startupInputs = try validatedStartupWorkers()
        let authorizer = configuration.auth.authorizer
        let timeouts = configuration.clientTimeouts
        let doorConfiguration = RESTDoor.Configuration(
            maxInferenceBodyBytes: configuration.routing.maxPayloadBytes, maxControlBodyBytes: configuration.http.maxControlBodyBytes,
            idleTimeout: timeouts.idle, headerReadTimeout: timeouts.headerRead, bodyReadTimeout: timeouts.bodyRead, sendTimeout: timeouts.send,
            serverName: Self.serverName
        )
        let facts = ServerFacts(
            policy: configuration.routing.policy.rawValue, maxPayloadBytes: configuration.routing.maxPayloadBytes,
            requestTimeout: configuration.routing.requestTimeout,
            retryMaxAttempts: configuration.retry.effectiveMaxAttempts,
            circuitBreakerEnabled: configuration.circuitBreaker.isEnabled
        )
        let rest = RESTDoor(
            configuration: doorConfiguration, engine: engine, workers: workers, transport: transport, lifecycle: lifecycle, selector: selector,
            facts: facts, startedAt: Int64(Date().timeIntervalSince1970), authorizer: authorizer, metrics: metrics, logger: logger
        )
        let host = configuration.http.host
        var listeners: [TCPListener] = []
        do {
            listeners.append(try await TCPListener(host: host, port: configuration.http.port) { try rest.initialize($0) })
        } catch {
            throw StartupError(description: "cannot listen on \(host):\(configuration.http.port): \(error)")
        }
        if let port = configuration.binary.port {
            let binary = BinaryDoor(
                configuration: .init(
                    maxFrameBytes: configuration.binary.maxFrameBytes, maxConcurrentStreams: configuration.binary.maxConcurrentStreams,
                    idleTimeout: configuration.binary.idleTimeout, serverName: Self.serverName
                ),
                engine: engine, workers: workers, authorizer: authorizer, metrics: metrics, logger: logger
            )
            do {
                let listener = try await TCPListener(host: host, port: port) { try binary.initialize($0) }
                listeners.append(listener)
                boundBinaryPort.withLock { $0 = listener.port }
                logger.info("binary protocol listening", metadata: ["address": "\(host):\(listener.port)"])
            } catch {
                for listener in listeners { listener.closeAll() }
                throw StartupError(description: "cannot listen for the binary protocol on \(host):\(port): \(error)")
            }
        }
        if let port = configuration.metrics.port {
            let metricsDoor = RESTDoor.metricsOnly(configuration: doorConfiguration, metrics: metrics, logger: logger)
            let metricsHost = configuration.metrics.host
            do {
                let listener = try await TCPListener(host: metricsHost, port: port) { try metricsDoor.initialize($0) }
                listeners.append(listener)
                boundPrometheusPort.withLock { $0 = listener.port }
                logger.info("prometheus metrics listening", metadata: ["address": "http://\(metricsHost):\(listener.port)/metrics"])
            } catch {
                for listener in listeners { listener.closeAll() }
                throw StartupError(description: "cannot listen for metrics on \(metricsHost):\(port): \(error)")
            }
        }
        func abandonStart(_ description: String) async -> StartupError {
            for listener in listeners { listener.closeAll() }
            await workers.shutdown()
            transport.shutdown()
            return StartupError(description: description)
        }
        do {
            let restored = try await workers.restoreStoredWorkers()
            if restored > 0 { logger.info("restored workers from the state file", metadata: ["count": "\(restored)"]) }
        } catch {
            throw await abandonStart("cannot read the state file: \(error)")
        }
        do {
            for input in startupInputs { _ = try await workers.add(input) }
        } catch {
            throw await abandonStart("cannot register the --worker-urls workers: \(error)")
        }

        let restPort = listeners[0].port
        let doors = listeners
        // Services shut down in reverse order, each after the one before it has ended.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: TransportService(transport: transport)),
            .init(service: RegistrationJobsService(workers: workers)),
            .init(service: HealthChecker(registry: registry, prober: prober, logger: logger)),
            .init(service: PolicyMaintenance(policy: policy, registry: registry, interval: configuration.routing.evictionInterval)),
        ]
        if configuration.registration.removeUnhealthyWorkers {
            services.append(.init(service: UnhealthyWorkerRemoval(registry: registry, workers: workers, configuration: configuration.registration, logger: logger)))
        }
        services += [
            .init(service: FrontDoors(listeners: doors, grace: configuration.shutdownGracePeriod, onListening: { await onListening(restPort) })),
            // It returns when the shutdown starts: that must not cancel the group.
            .init(
                service: ShutdownWatcher(state: lifecycle, signals: gracefulShutdownSignals, logger: logger),
                successTerminationBehavior: .gracefullyShutdownGroup
            ),
        ]
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger
        )
        // The doors enforce the grace period themselves; this is the backstop.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGracePeriod + .seconds(10)
        let group = ServiceGroup(configuration: groupConfiguration)
        serviceGroup.withLock { $0 = group }
        defer { serviceGroup.withLock { $0 = nil } }
        defer { for listener in doors { listener.closeAll() } }
        try await group.run()
    }

    /// The `Server` header of every answer.
    static let serverName = "model-gateway"

    /// Starts a graceful shutdown of a running gateway: readiness answers 503, the
    /// listeners drain, then `run` returns. Does nothing when the gateway is not running.
    public func shutdown() async {
        lifecycle.beginDraining()
        await serviceGroup.withLock { $0 }?.triggerGracefulShutdown()
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

/// The listeners of both doors (and the Prometheus one): serving until the shutdown,
/// then drained at the same time, REST and binary alike.
struct FrontDoors: Service {
    let listeners: [TCPListener]
    let grace: Duration
    let onListening: @Sendable () async -> Void

    func run() async throws {
        await onListening()
        let grace: Duration
        do {
            try await gracefulShutdown()
            grace = self.grace
        } catch {
            // Cancelled: close at once.
            grace = .zero
        }
        await withTaskGroup(of: Void.self) { group in
            for listener in listeners { group.addTask { await listener.drain(grace: grace) } }
        }
    }
}

/// Cancels the registration jobs once the doors are closed.
struct RegistrationJobsService: Service {
    let workers: WorkerService

    func run() async throws {
        try? await gracefulShutdown()
        await workers.shutdown()
    }
}

/// Closes the worker transport's idle connections last.
struct TransportService: Service {
    let transport: WorkerTransport

    func run() async throws {
        try? await gracefulShutdown()
        transport.shutdown()
    }
}

/// Runs first in shutdown: marks the gateway as draining (readiness 503), and when
/// shutdown signals are in use, turns a second signal into an immediate exit (an
/// operator who presses Ctrl-C twice wants out now).
///
/// It returns as soon as the shutdown starts: the service group shuts services down in
/// reverse order and waits for each, so waiting here for the second signal would keep
/// the doors from ever draining. The second-signal watch runs in a task of its own that
/// lives until the process exits.
struct ShutdownWatcher: Service {
    let state: LifecycleState
    let signals: [UnixSignal]
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        state.beginDraining()
        logger.notice("shutting down: no new connections; in-flight requests and streams get the grace period")
        guard !signals.isEmpty else { return }
        // The first signal started this shutdown; the next one forces it.
        let second = await UnixSignalsSequence(trapping: signals)
        let logger = logger
        Task.detached {
            for await signal in second {
                logger.warning("second \(signal): exiting now")
                exit(130)
            }
        }
    }
}
