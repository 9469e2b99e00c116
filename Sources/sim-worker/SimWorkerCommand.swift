import ArgumentParser
import Logging
import ServiceLifecycle
import SimWorker
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `sim-worker`: runs one or many simulated inference workers until SIGTERM/SIGINT.
@main
struct SimWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim-worker",
        abstract: "A simulated SGLang / OpenAI-compatible inference worker for tests, demos and benchmarks.",
        discussion: """
            Serves one port (--port), or many ports in one process (--ports or --port-range), \
            each a separate worker named sim-<port>. Prints one line per worker: \
            "sim-worker <name> listening on http://<host>:<port>".
            """
    )

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind (0 = ephemeral).")
    var port = 8000

    @Option(help: "Comma-separated ports to serve, one worker each (overrides --port).")
    var ports: String?

    @Option(name: .customLong("port-range"), help: "Inclusive port range to serve, e.g. 9000-9999 (overrides --port).")
    var portRange: String?

    @Option(name: .customLong("model-id"), help: "Model id the worker serves.")
    var modelID = "sim-model"

    @Option(help: "Worker name (X-Sim-Worker header). Default sim-<port>; with several ports, <name>-<port>.")
    var name: String?

    @Option(help: "sglang (SGLang + OpenAI routes) or openai (OpenAI routes + /health only).")
    var runtime = "sglang"

    @Option(name: .customLong("latency-ms"), help: "Delay before a reply / the first streamed chunk, in ms.")
    var latencyMs = 0.0

    @Option(help: "Number of streamed chunks.")
    var chunks = 8

    @Option(name: .customLong("chunk-interval-ms"), help: "Delay between streamed chunks, in ms.")
    var chunkIntervalMs = 0.0

    @Option(name: .customLong("failure-rate"), help: "Probability (0...1) that an inference request answers 500.")
    var failureRate = 0.0

    @Option(name: .customLong("startup-delay-ms"), help: "/health answers 503 for this long after start, in ms.")
    var startupDelayMs = 0.0

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(help: "simple (fixed latency) or realistic (prefix cache, prefill, continuous batching).")
    var engine = "simple"

    @Option(name: .customLong("kv-cache-tokens"), help: "realistic: KV cache capacity in tokens.")
    var kvCacheTokens = 32768

    @Option(name: .customLong("block-size"), help: "realistic: tokens per cache block.")
    var blockSize = 16

    @Option(name: .customLong("prefill-us-per-token"), help: "realistic: prefill microseconds per uncached prompt token.")
    var prefillMicrosPerToken = 200.0

    @Option(name: .customLong("prefill-overhead-ms"), help: "realistic: fixed milliseconds of one prefill step.")
    var prefillOverheadMs = 10.0

    @Option(name: .customLong("itl-base-ms"), help: "realistic: decode step milliseconds before the per-request term.")
    var itlBaseMs = 25.0

    @Option(name: .customLong("itl-per-request-ms"), help: "realistic: milliseconds each running request adds to a decode step.")
    var itlPerRequestMs = 0.5

    @Option(name: .customLong("max-running"), help: "realistic: requests running at once; more wait in a FIFO queue.")
    var maxRunning = 32

    @Option(name: .customLong("max-prefill-tokens"), help: "realistic: uncached prompt tokens one prefill step takes at most.")
    var maxPrefillTokens = 8192

    @Option(help: "regular, prefill or decode (disaggregation; prefill and decode need --engine realistic).")
    var role = "regular"

    @Option(name: .customLong("bootstrap-port"), help: "prefill: KV bootstrap listener port (worker i of several: this + i; 0 = ephemeral).")
    var bootstrapPort = 8998

    @Option(name: .customLong("bootstrap-timeout-ms"), help: "Longest wait of a KV hand-off, in ms.")
    var bootstrapTimeoutMs = 30000.0

    func validate() throws {
        guard SimWorker.Runtime(rawValue: runtime) != nil else {
            throw ValidationError("--runtime must be sglang or openai")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard (0...1).contains(failureRate) else { throw ValidationError("--failure-rate must be within 0...1") }
        guard chunks >= 1 else { throw ValidationError("--chunks must be at least 1") }
        guard latencyMs >= 0, chunkIntervalMs >= 0, startupDelayMs >= 0 else {
            throw ValidationError("durations must not be negative")
        }
        guard let engine = SimWorker.Engine(rawValue: engine) else { throw ValidationError("--engine must be simple or realistic") }
        guard let role = SimWorker.Role(rawValue: role) else { throw ValidationError("--role must be regular, prefill or decode") }
        guard role == .regular || engine == .realistic else {
            throw ValidationError("--role \(role.rawValue) needs --engine realistic")
        }
        guard blockSize >= 1, kvCacheTokens >= blockSize else {
            throw ValidationError("--block-size must be at least 1 and --kv-cache-tokens at least one block")
        }
        guard maxRunning >= 1, maxPrefillTokens >= 1 else { throw ValidationError("--max-running and --max-prefill-tokens must be at least 1") }
        guard prefillMicrosPerToken >= 0, prefillOverheadMs >= 0, itlBaseMs >= 0, itlPerRequestMs >= 0, bootstrapTimeoutMs > 0 else {
            throw ValidationError("engine figures must not be negative (and --bootstrap-timeout-ms positive)")
        }
        guard (0...65535).contains(bootstrapPort) else { throw ValidationError("--bootstrap-port must be within 0...65535") }
        _ = try portList()
    }

    /// The ports to serve, from --ports, --port-range or --port.
    func portList() throws -> [Int] {
        if ports != nil, portRange != nil { throw ValidationError("use either --ports or --port-range, not both") }
        var list: [Int]
        if let ports {
            list = try ports.split(separator: ",").map { item in
                guard let p = Int(item.trimmingWhitespace()) else { throw ValidationError("bad port '\(item)' in --ports") }
                return p
            }
        } else if let portRange {
            let bounds = portRange.split(separator: "-", maxSplits: 1).map { Int($0.trimmingWhitespace()) }
            guard bounds.count == 2, let low = bounds[0], let high = bounds[1], low <= high else {
                throw ValidationError("--port-range must look like 9000-9999")
            }
            list = Array(low...high)
        } else {
            list = [port]
        }
        guard !list.isEmpty else { throw ValidationError("no ports given") }
        guard list.allSatisfy({ (0...65535).contains($0) }) else { throw ValidationError("ports must be within 0...65535") }
        guard list.count == 1 || !list.contains(0) else { throw ValidationError("port 0 can only be used alone") }
        guard Set(list).count == list.count else { throw ValidationError("duplicate ports") }
        return list
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sim-worker")
        let portList = try portList()
        let runtime = SimWorker.Runtime(rawValue: runtime) ?? .sglang

        var workers: [SimWorker] = []
        workers.reserveCapacity(portList.count)
        let engineKind = SimWorker.Engine(rawValue: engine) ?? .simple
        let roleKind = SimWorker.Role(rawValue: role) ?? .regular
        let engineConfiguration = EngineConfiguration(
            blockSize: blockSize,
            capacityTokens: kvCacheTokens,
            prefillMicrosPerToken: prefillMicrosPerToken,
            prefillOverheadMicros: prefillOverheadMs * 1000,
            decodeBaseMicros: itlBaseMs * 1000,
            decodePerRunningMicros: itlPerRequestMs * 1000,
            maxRunning: maxRunning,
            maxPrefillTokens: maxPrefillTokens
        )
        for (index, port) in portList.enumerated() {
            let workerName: String
            if let name {
                workerName = portList.count == 1 ? name : "\(name)-\(port)"
            } else {
                workerName = "sim-{port}"
            }
            let configuration = SimWorker.Configuration(
                name: workerName,
                modelID: modelID,
                runtime: runtime,
                latency: .milliseconds(latencyMs),
                chunkCount: chunks,
                chunkInterval: .milliseconds(chunkIntervalMs),
                failureRate: failureRate,
                startupDelay: .milliseconds(startupDelayMs),
                host: host,
                port: port,
                engine: engineKind,
                engineConfiguration: engineConfiguration,
                role: roleKind,
                bootstrapPort: bootstrapPort == 0 ? 0 : bootstrapPort + index,
                bootstrapTimeout: .milliseconds(bootstrapTimeoutMs)
            )
            workers.append(SimWorker(configuration: configuration, logger: logger))
        }

        do {
            for worker in workers {
                let bound = try await worker.start()
                var line = "sim-worker \(worker.name) listening on http://\(Self.urlHost(host)):\(bound)"
                if let bootstrap = worker.bootstrapPort { line += " bootstrap \(bootstrap)" }
                Self.writeLine(line)
            }
        } catch {
            logger.error("could not start: \(error)")
            for worker in workers { try? await worker.shutdown() }
            throw ExitCode.failure
        }

        // One service for the whole fleet, so a signal stops every worker at once
        // (a ServiceGroup stops its services one after another).
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [WorkerFleet(workers: workers)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    /// Writes one line straight to file descriptor 1 (unbuffered, so scripts see it at once).
    static func writeLine(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }

    static func urlHost(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }
}

/// Runs already-started workers until graceful shutdown or cancellation, then shuts them
/// all down concurrently.
struct WorkerFleet: Service {
    let workers: [SimWorker]

    func run() async throws {
        try? await gracefulShutdown()
        await withTaskGroup(of: Void.self) { group in
            for worker in workers {
                group.addTask { try? await worker.shutdown() }
            }
        }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = self
        while let first = s.first, first.isWhitespace { s = s.dropFirst() }
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return s
    }
}
