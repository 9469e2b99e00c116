import ArgumentParser
import GatewayCore
import GatewayObservability
import GatewayServer
import GatewayWorkers
import Logging

/// The flags of `serve` (and `demo`), named as the reference gateway names them.
struct ServeOptions: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "REST port to listen on (0 picks a free one).")
    var port: Int = 30000

    @Option(help: "Binary-protocol port (0 disables the binary listener).")
    var binaryPort: Int = 30001

    @Option(help: "Largest binary frame payload in bytes; a longer frame closes the connection.")
    var maxFrameBytes: Int = 4 * 1024 * 1024

    @Option(help: "Calls one binary connection may run at once (TOO_MANY_STREAMS above).")
    var maxConcurrentStreams: Int = 100

    @Option(help: "Seconds before an idle binary connection (no call, no frame) is closed.")
    var binaryIdleTimeoutSecs: Int = 300

    @Option(help: "Seconds in-flight requests, streams and binary calls get to finish on shutdown.")
    var shutdownGracePeriodSecs: Int = 180

    // MARK: Admission, auth, timeouts

    @Option(help: "Inference requests served at once (-1: no limit); more wait in the queue.")
    var maxConcurrentRequests: Int = -1

    @Option(help: "Requests that may wait for a slot (429 when full).")
    var queueSize: Int = 100

    @Option(help: "Seconds a request may wait for a slot (408 after).")
    var queueTimeoutSecs: Int = 60

    @Option(help: "Inference requests per second per API key (default: no limit).")
    var rateLimitTokensPerSecond: Double?

    @Option(help: "Bearer key required on inference routes (and binary Hello).")
    var apiKey: String?

    @Option(help: "Bearer key required for worker management; without it only loopback clients may manage workers.")
    var adminApiKey: String?

    @Option(help: "Seconds before an idle HTTP connection is closed.")
    var idleTimeoutSecs: Int = 120

    @Option(help: "Seconds a client has to send a request's head once it started (slow clients are cut off).")
    var headerReadTimeoutSecs: Int = 10

    @Option(help: "Seconds a client has to send a request's body after its head.")
    var bodyReadTimeoutSecs: Int = 60

    @Option(help: "Seconds a client may accept no byte of its answer before it is cut off (its request and admission slot freed).")
    var sendTimeoutSecs: Int = 60

    @Option(help: "Connections the gateway opens to one worker at most; more requests wait for one.")
    var maxConnectionsPerWorker: Int = 1024

    @Option(help: "SQLite file keeping registered workers across restarts; 'none' keeps them in memory only.")
    var statePath: String = "model-gateway-state.sqlite"

    @Option(parsing: .upToNextOption, help: "Workers to register at start-up (http://host:port or host:port).")
    var workerUrls: [String] = []

    @Option(help: "Seconds between active health checks of a worker.")
    var healthCheckIntervalSecs: Int = 60

    @Option(help: "Consecutive failed checks that make a healthy worker unhealthy.")
    var healthFailureThreshold: Int = 3

    @Option(help: "Consecutive good checks that make an unhealthy worker healthy.")
    var healthSuccessThreshold: Int = 2

    @Option(help: "Seconds before a health check counts as failed.")
    var healthCheckTimeoutSecs: Int = 5

    @Option(help: "Path probed by health checks.")
    var healthCheckEndpoint: String = "/health"

    @Flag(help: "Do not probe workers; registered workers count as healthy.")
    var disableHealthCheck: Bool = false

    @Option(help: "Seconds an add job keeps retrying an unreachable worker before it reports failed.")
    var workerStartupTimeoutSecs: Int = 1800

    @Option(help: "Longest wait in seconds between two registration attempts (backoff starts at 250 ms).")
    var workerStartupCheckInterval: Int = 5

    @Option(help: "Seconds a deleted worker's in-flight requests may run before they are cut and it is removed.")
    var drainTimeoutSecs: Int = 300

    @Flag(
        name: [.customLong("remove-unhealthy-workers"), .customLong("worker-auto-recovery")],
        help: "Remove workers that stay not_ready or failed past --remove-unhealthy-after-secs."
    )
    var removeUnhealthyWorkers: Bool = false

    @Option(help: "With --remove-unhealthy-workers: seconds a worker may stay unhealthy (default: 3 x its failure threshold x its check interval, smg's limit).")
    var removeUnhealthyAfterSecs: Int?

    @Option(help: "Log level: trace, debug, info, warn, error.")
    var logLevel: String = "info"

    @Flag(help: "Log one JSON object per line (timestamp, level, label, message, metadata) instead of text.")
    var logJson: Bool = false

    @Option(help: "Also serve Prometheus metrics (GET /metrics) on this port; /metrics is on --port in any case.")
    var prometheusPort: Int?

    @Option(help: "Address of the --prometheus-port listener.")
    var prometheusHost: String = "0.0.0.0"

    // MARK: Routing

    @Option(help: "Load-balancing policy: random, round_robin, power_of_two, cache_aware, consistent_hash, cache_aware_blocks.")
    var policy: String = "cache_aware"

    @Option(help: "cache_aware: share of a prompt a worker must already hold to win on cache (0-1).")
    var cacheThreshold: Double = 0.3

    @Option(help: "cache_aware: load difference (requests) above which the least loaded worker wins.")
    var balanceAbsThreshold: Int = 64

    @Option(help: "cache_aware: load ratio above which the least loaded worker wins.")
    var balanceRelThreshold: Double = 1.5

    @Option(name: [.customLong("eviction-interval-secs"), .customLong("eviction-interval")], help: "cache_aware: seconds between evictions of old prefixes.")
    var evictionIntervalSecs: Int = 120

    @Option(help: "cache_aware: bytes of prompt text remembered per worker.")
    var maxTreeSize: Int = 1 << 26

    @Option(help: "cache_aware_blocks: prompt blocks (16 words) remembered per worker; about its KV cache in 16-token blocks.")
    var cacheBlocksPerWorker: Int = 65536

    @Option(help: "cache_aware_blocks: a worker takes another request while below this factor times the mean load (>= 1).")
    var loadBoundFactor: Double = 1.25

    @Option(help: "cache_aware_blocks: leading prompt blocks whose hash picks the home worker (rendezvous).")
    var affinityBlocks: Int = 8

    @Option(help: "cache_aware_blocks: a worker holding less than this share of the others' mean blocks is warming up (0-1).")
    var warmupShare: Double = 0.25

    @Flag(help: "Answer 503 with Retry-After when every available worker is saturated (--worker-max-load), instead of sending to a saturated one.")
    var shedWhenSaturated = false

    @Flag(help: "Add X-Gateway-Route to inference answers: why the worker was chosen (cache_aware_blocks).")
    var explainRouting = false

    @Option(help: "Largest inference request body in bytes (413 above).")
    var maxPayloadSize: Int = 512 * 1024 * 1024

    @Option(help: "Seconds a request may take, first attempt to last byte.")
    var requestTimeoutSecs: Int = 1800

    @Option(help: "In-flight requests at which a worker counts as saturated (0: no limit); a worker's max_load overrides it.")
    var workerMaxLoad: Int = 0

    // MARK: Retries

    @Option(help: "Attempts per request in all, first included (1: no retry).")
    var retryMaxRetries: Int = 5

    @Option(help: "Backoff before the first retry, in milliseconds.")
    var retryInitialBackoffMs: Int = 50

    @Option(help: "Longest backoff between retries, in milliseconds.")
    var retryMaxBackoffMs: Int = 30000

    @Option(help: "Backoff growth per retry.")
    var retryBackoffMultiplier: Double = 1.5

    @Option(help: "Random spread of each backoff (0-1).")
    var retryJitterFactor: Double = 0.2

    @Flag(help: "Never retry a failed attempt on another worker.")
    var disableRetries: Bool = false

    // MARK: Circuit breaker

    @Option(help: "Consecutive failures (connection errors, 5xx) that open a worker's breaker.")
    var cbFailureThreshold: Int = 10

    @Option(help: "Consecutive successes in half-open that close the breaker.")
    var cbSuccessThreshold: Int = 3

    @Option(help: "Seconds a breaker stays open before it lets trial requests through.")
    var cbTimeoutDurationSecs: Int = 60

    @Flag(help: "Never open circuit breakers.")
    var disableCircuitBreaker: Bool = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard (0...65535).contains(binaryPort) else { throw ValidationError("--binary-port must be 0-65535") }
        if let prometheusPort, !(0...65535).contains(prometheusPort) { throw ValidationError("--prometheus-port must be 0-65535") }
        guard maxConcurrentRequests == -1 || maxConcurrentRequests >= 1 else { throw ValidationError("--max-concurrent-requests must be -1 or at least 1") }
        guard queueSize >= 0, queueTimeoutSecs >= 1, idleTimeoutSecs >= 1, headerReadTimeoutSecs >= 1, bodyReadTimeoutSecs >= 1, sendTimeoutSecs >= 1 else {
            throw ValidationError("--queue-size must be >= 0; --queue-timeout-secs and the client timeouts >= 1")
        }
        guard maxConnectionsPerWorker >= 1 else { throw ValidationError("--max-connections-per-worker must be at least 1") }
        if let rate = rateLimitTokensPerSecond, !(rate > 0) { throw ValidationError("--rate-limit-tokens-per-second must be > 0") }
        for (name, key) in [("--api-key", apiKey), ("--admin-api-key", adminApiKey)] where key?.isEmpty == true {
            throw ValidationError("\(name) must not be empty")
        }
        guard maxFrameBytes >= 1024, maxConcurrentStreams >= 1, binaryIdleTimeoutSecs >= 1, shutdownGracePeriodSecs >= 0 else {
            throw ValidationError("--max-frame-bytes must be >= 1024; --max-concurrent-streams and --binary-idle-timeout-secs >= 1")
        }
        for (name, value) in [
            ("--health-check-interval-secs", healthCheckIntervalSecs), ("--health-failure-threshold", healthFailureThreshold),
            ("--health-success-threshold", healthSuccessThreshold), ("--health-check-timeout-secs", healthCheckTimeoutSecs),
            ("--worker-startup-timeout-secs", workerStartupTimeoutSecs), ("--worker-startup-check-interval", workerStartupCheckInterval),
            ("--drain-timeout-secs", drainTimeoutSecs), ("--remove-unhealthy-after-secs", removeUnhealthyAfterSecs ?? 1),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard healthCheckEndpoint.hasPrefix("/") else { throw ValidationError("--health-check-endpoint must start with '/'") }
        _ = try parsedLogLevel()
        _ = try parsedPolicy()
        for (name, value) in [
            ("--eviction-interval-secs", evictionIntervalSecs), ("--max-tree-size", maxTreeSize), ("--max-payload-size", maxPayloadSize),
            ("--request-timeout-secs", requestTimeoutSecs), ("--retry-max-retries", retryMaxRetries),
            ("--retry-max-backoff-ms", retryMaxBackoffMs), ("--cb-failure-threshold", cbFailureThreshold),
            ("--cb-success-threshold", cbSuccessThreshold), ("--cb-timeout-duration-secs", cbTimeoutDurationSecs),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard (0...1).contains(cacheThreshold) else { throw ValidationError("--cache-threshold must be between 0 and 1") }
        guard (0...1).contains(warmupShare) else { throw ValidationError("--warmup-share must be between 0 and 1") }
        guard loadBoundFactor >= 1 else { throw ValidationError("--load-bound-factor must be at least 1") }
        guard cacheBlocksPerWorker >= 1, affinityBlocks >= 1 else { throw ValidationError("--cache-blocks-per-worker and --affinity-blocks must be at least 1") }
        guard (0...1).contains(retryJitterFactor) else { throw ValidationError("--retry-jitter-factor must be between 0 and 1") }
        guard retryBackoffMultiplier >= 1 else { throw ValidationError("--retry-backoff-multiplier must be at least 1") }
        guard retryInitialBackoffMs >= 0, balanceAbsThreshold >= 0, balanceRelThreshold >= 1, workerMaxLoad >= 0 else {
            throw ValidationError("--retry-initial-backoff-ms, --balance-abs-threshold and --worker-max-load must be >= 0; --balance-rel-threshold >= 1")
        }
    }

    func parsedPolicy() throws -> PolicyName {
        guard let policy = PolicyName(rawValue: policy.lowercased()) else {
            throw ValidationError("--policy must be one of \(PolicyName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return policy
    }

    func parsedLogLevel() throws -> Logger.Level {
        switch logLevel.lowercased() {
        case "warn": return .warning
        case let name:
            guard let level = Logger.Level(rawValue: name) else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warn, error, critical")
            }
            return level
        }
    }

    func makeConfiguration() throws -> GatewayConfiguration {
        GatewayConfiguration(
            http: .init(host: host, port: port),
            binary: .init(
                port: binaryPort == 0 ? nil : binaryPort, maxFrameBytes: maxFrameBytes, maxConcurrentStreams: maxConcurrentStreams,
                idleTimeout: .seconds(binaryIdleTimeoutSecs)
            ),
            admission: .init(
                maxConcurrentRequests: maxConcurrentRequests > 0 ? maxConcurrentRequests : nil, queueSize: queueSize,
                queueTimeout: .seconds(queueTimeoutSecs), rateLimitPerSecond: rateLimitTokensPerSecond
            ),
            auth: .init(apiKey: apiKey, adminAPIKey: adminApiKey),
            clientTimeouts: .init(
                idle: .seconds(idleTimeoutSecs), headerRead: .seconds(headerReadTimeoutSecs), bodyRead: .seconds(bodyReadTimeoutSecs),
                send: .seconds(sendTimeoutSecs)
            ),
            shutdownGracePeriod: .seconds(shutdownGracePeriodSecs),
            registration: .init(
                startupTimeout: .seconds(workerStartupTimeoutSecs),
                maxCheckInterval: .seconds(workerStartupCheckInterval),
                drainTimeout: .seconds(drainTimeoutSecs),
                removeUnhealthyWorkers: removeUnhealthyWorkers,
                unhealthyRemovalTimeout: removeUnhealthyAfterSecs.map { .seconds($0) }
            ),
            healthCheck: HealthCheckConfig(
                timeout: .seconds(healthCheckTimeoutSecs),
                interval: .seconds(healthCheckIntervalSecs),
                failureThreshold: healthFailureThreshold,
                successThreshold: healthSuccessThreshold,
                endpoint: healthCheckEndpoint,
                disabled: disableHealthCheck
            ),
            routing: .init(
                policy: try parsedPolicy(),
                cacheAware: .init(
                    cacheThreshold: cacheThreshold, balanceAbsThreshold: balanceAbsThreshold,
                    balanceRelThreshold: balanceRelThreshold, maxTreeSize: maxTreeSize
                ),
                blocks: .init(
                    cacheThreshold: cacheThreshold, blocksPerWorker: cacheBlocksPerWorker, loadBoundFactor: loadBoundFactor,
                    affinityBlocks: affinityBlocks, warmupShare: warmupShare
                ),
                evictionInterval: .seconds(evictionIntervalSecs),
                maxPayloadBytes: maxPayloadSize,
                requestTimeout: .seconds(requestTimeoutSecs),
                workerMaxLoad: workerMaxLoad > 0 ? workerMaxLoad : nil,
                maxConnectionsPerWorker: maxConnectionsPerWorker,
                shedWhenSaturated: shedWhenSaturated,
                explainRouting: explainRouting
            ),
            retry: .init(
                maxAttempts: retryMaxRetries,
                backoff: Backoff(
                    initial: .milliseconds(retryInitialBackoffMs), maximum: .milliseconds(retryMaxBackoffMs),
                    multiplier: retryBackoffMultiplier, jitter: retryJitterFactor
                ),
                isEnabled: !disableRetries
            ),
            circuitBreaker: .init(
                failureThreshold: cbFailureThreshold, successThreshold: cbSuccessThreshold,
                openDuration: .seconds(cbTimeoutDurationSecs), isEnabled: !disableCircuitBreaker
            ),
            statePath: statePath.lowercased() == "none" ? nil : statePath,
            workerURLs: workerUrls,
            logLevel: try parsedLogLevel(),
            metrics: .init(host: prometheusHost, port: prometheusPort)
        )
    }
}

/// Installs stderr logging at `level` (once per process): text lines, or with `json`
/// one JSON object per line; written by a thread of its own, off the request path.
func bootstrapLogging(level: Logger.Level, json: Bool = false) {
    let writer = json ? LogWriter.standardErrorJSON : LogWriter.standardError
    LoggingSystem.bootstrap { label in
        var handler = BufferedLogHandler(label: label, writer: writer)
        handler.logLevel = level
        return handler
    }
}
