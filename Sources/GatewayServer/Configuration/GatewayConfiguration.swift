import GatewayCore
import Logging

/// Everything `model-gateway serve` can be told, with the reference gateway's
/// defaults unless a comment says otherwise.
public struct GatewayConfiguration: Sendable {
    /// The REST listener.
    public struct HTTP: Sendable {
        public var host: String
        /// 0 picks a free port (tests).
        public var port: Int
        /// Largest request body accepted on worker-management routes.
        public var maxControlBodyBytes: Int

        public init(host: String = "0.0.0.0", port: Int = 30000, maxControlBodyBytes: Int = 1 << 20) {
            self.host = host
            self.port = port
            self.maxControlBodyBytes = maxControlBodyBytes
        }
    }

    /// How workers are registered.
    public struct Registration: Sendable {
        /// How long an add job keeps trying an unreachable worker before it fails.
        public var startupTimeout: Duration
        /// The longest wait between two registration attempts (the backoff starts at 250 ms).
        public var maxCheckInterval: Duration

        public init(startupTimeout: Duration = .seconds(1800), maxCheckInterval: Duration = .seconds(5)) {
            self.startupTimeout = startupTimeout
            self.maxCheckInterval = maxCheckInterval
        }
    }

    public var http: HTTP
    public var registration: Registration
    /// Default active health-check settings of every worker (a worker may override them).
    public var healthCheck: HealthCheckConfig
    /// Workers registered at start-up.
    public var workerURLs: [String]
    /// The API key sent to workers given in `workerURLs`.
    public var workerAPIKey: String?
    public var logLevel: Logger.Level

    public init(
        http: HTTP = HTTP(),
        registration: Registration = Registration(),
        healthCheck: HealthCheckConfig = HealthCheckConfig(),
        workerURLs: [String] = [],
        workerAPIKey: String? = nil,
        logLevel: Logger.Level = .info
    ) {
        self.http = http
        self.registration = registration
        self.healthCheck = healthCheck
        self.workerURLs = workerURLs
        self.workerAPIKey = workerAPIKey
        self.logLevel = logLevel
    }
}
