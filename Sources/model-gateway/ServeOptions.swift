import ArgumentParser
import GatewayCore
import GatewayServer
import Logging

/// The flags of `serve` (and `demo`), named as the reference gateway names them.
struct ServeOptions: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "REST port to listen on (0 picks a free one).")
    var port: Int = 30000

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

    @Option(help: "Log level: trace, debug, info, warn, error.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        for (name, value) in [
            ("--health-check-interval-secs", healthCheckIntervalSecs), ("--health-failure-threshold", healthFailureThreshold),
            ("--health-success-threshold", healthSuccessThreshold), ("--health-check-timeout-secs", healthCheckTimeoutSecs),
            ("--worker-startup-timeout-secs", workerStartupTimeoutSecs), ("--worker-startup-check-interval", workerStartupCheckInterval),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard healthCheckEndpoint.hasPrefix("/") else { throw ValidationError("--health-check-endpoint must start with '/'") }
        _ = try parsedLogLevel()
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
            registration: .init(
                startupTimeout: .seconds(workerStartupTimeoutSecs),
                maxCheckInterval: .seconds(workerStartupCheckInterval)
            ),
            healthCheck: HealthCheckConfig(
                timeout: .seconds(healthCheckTimeoutSecs),
                interval: .seconds(healthCheckIntervalSecs),
                failureThreshold: healthFailureThreshold,
                successThreshold: healthSuccessThreshold,
                endpoint: healthCheckEndpoint,
                disabled: disableHealthCheck
            ),
            workerURLs: workerUrls,
            logLevel: try parsedLogLevel()
        )
    }
}

/// Installs stderr logging at `level` (once per process).
func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
