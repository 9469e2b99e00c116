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
        for port in portList {
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
                port: port
            )
            workers.append(SimWorker(configuration: configuration, logger: logger))
        }

        do {
            for worker in workers {
                let bound = try await worker.start()
                Self.writeLine("sim-worker \(worker.name) listening on http://\(Self.urlHost(host)):\(bound)")
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
