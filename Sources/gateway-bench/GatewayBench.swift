import ArgumentParser

/// `gateway-bench`: the load generator and micro-benchmarks behind `scripts/bench.sh`.
@main
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-bench",
        abstract: "Load generator (binary protocol and HTTP/1.1) and micro-benchmarks for model-gateway.",
        subcommands: [Load.self, Scale.self, Micro.self]
    )

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One timed run of one operation; prints one JSON line.",
            discussion: """
                binary: --connections GatewayClient connections, --window calls in flight on each. \
                rest: HTTP/1.1 keep-alive, one request at a time per connection (no pipelining), \
                so concurrency = connections x window connections.
                """
        )
        @Option(help: "binary or rest.") var proto = "binary"
        @Option var host = "127.0.0.1"
        @Option(help: "Binary port (binary) or HTTP port (rest).") var port: Int
        @Option(help: "list, health, generate or stream.") var op = "health"
        @Option var connections = 1
        @Option(help: "Calls in flight per connection (binary).") var window = 1
        @Option(help: "Measured seconds.") var duration = 5.0
        @Option(help: "Unmeasured seconds first.") var warmup = 1.0
        @Option var model = "sim-model"
        @Option(name: .customLong("max-tokens")) var maxTokens = 8
        @Option var prompt = "Hello world"
        @Option var label = ""
        @Option(name: .customLong("rest-path"), help: "Override the HTTP path.") var restPath: String?
        @Option(help: "Process whose CPU time and peak RSS to report (the gateway).") var pid: Int32?
        @Option(help: "Calls a second, all connections together, on a fixed schedule (latency counted from when each call was due). Default: as fast as answers come.")
        var rate: Double?

        func run() async throws {
            if let rate, !(rate > 0) { throw ValidationError("--rate must be a positive number of calls a second") }
            guard let operation = LoadOperation(rawValue: op) else { throw ValidationError("--op: list, health, generate or stream") }
            guard proto == "binary" || proto == "rest" else { throw ValidationError("--proto: binary or rest") }
            var options = LoadOptions()
            options.proto = proto
            options.host = host
            options.port = port
            options.operation = operation
            options.connections = connections
            options.window = window
            options.duration = duration
            options.warmup = warmup
            options.model = model
            options.maxTokens = maxTokens
            options.prompt = prompt
            options.label = label
            options.restPath = restPath
            options.pid = pid
            options.rate = rate
            try await runLoadCommand(options)
        }
    }

    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registry scale: register N workers, time GET /workers, memory per worker.")
        @Option var host = "127.0.0.1"
        @Option(help: "REST port.") var port: Int
        @Option(name: .customLong("binary-port")) var binaryPort: Int
        @Option(help: "The gateway's pid (for RSS).") var pid: Int32?
        @Option(help: "Comma-separated worker counts.") var counts = "1000,10000"
        @Option var repeats = 10

        func run() async throws {
            var options = ScaleOptions()
            options.host = host
            options.port = port
            options.binaryPort = binaryPort
            options.pid = pid
            options.counts = counts.split(separator: ",").compactMap { Int($0) }
            options.repeats = repeats
            try await runScaleCommand(options)
        }
    }

    struct Micro: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Micro-benchmarks: medians over repeated runs; JSON on stdout, progress on stderr.")
        @Option var runs = 9
        @Option(name: .customLong("run-ms"), help: "Target milliseconds per run.") var runMillis = 30
        @Option(help: "Only one group: wire, policy or registry.") var only: String?

        func run() throws {
            try runMicroCommand(runs: runs, targetRunMillis: runMillis, only: only)
        }
    }
}
