import ArgumentParser
import BenchKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `gateway-bench`: the load generator and micro-benchmarks behind `scripts/bench.sh`.
@main
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-bench",
        abstract: "Load generator (binary protocol and HTTP/1.1) and micro-benchmarks for model-gateway.",
        subcommands: [Load.self, Scale.self, Micro.self, Replay.self, Split.self]
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

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open-loop Poisson replay of a workload against a gateway or a worker; hit rate, TTFT, goodput.",
            discussion: """
                Every arm with the same flags and seed sends the same requests at the same offsets \
                (a session's turns go in order: a turn whose previous one has not ended waits and counts as late). \
                Streams every request; TTFT is the first body byte. Scrapes each --worker-urls /metrics \
                (vLLM counter names) before and after for the hit rate and requests per worker. \
                Prints a table on stderr and one JSON object on stdout (also appended to --json-out). \
                Loopback hosts only.
                """
        )
        @Option(name: .customLong("base-url"), help: "Where requests go (the gateway, or a worker).") var baseURL = "http://127.0.0.1:30000"
        @Option(help: "shared-prefix, multi-turn, zero-reuse or trace.") var workload = "shared-prefix"
        @Option(help: "chat, completions or generate.") var route = "chat"
        @Option var model = "sim-model"
        @Option(help: "Requests a second (Poisson arrivals; ignored by trace).") var rate = 10.0
        @Option var seed: UInt64 = 42
        @Option(help: "Requests at most (shared-prefix, zero-reuse, trace).") var requests = 400
        @Option(help: "Seconds of sending at most: jobs due later are not sent.") var duration = 60.0
        @Option(help: "Seconds the last answers may take after --duration.") var drain = 60.0
        @Option(help: "shared-prefix: groups sharing a system prompt.") var groups = 16
        @Option(name: .customLong("prompts-per-group"), help: "shared-prefix: distinct questions per group.") var promptsPerGroup = 32
        @Option(name: .customLong("system-tokens"), help: "System prompt tokens (shared-prefix; multi-turn: per session).") var systemTokens = 2048
        @Option(name: .customLong("question-tokens"), help: "shared-prefix: question tokens; multi-turn: tokens of each user turn; zero-reuse: prompt tokens.")
        var questionTokens = 128
        @Option(name: .customLong("output-tokens"), help: "Tokens to generate per request.") var outputTokens = 64
        @Option(help: "shared-prefix: uniform or zipf (over groups).") var popularity = "uniform"
        @Option(name: .customLong("zipf-alpha")) var zipfAlpha = 1.1
        @Option(help: "multi-turn: sessions.") var sessions = 64
        @Option(help: "multi-turn: turns per session.") var turns = 4
        @Option(name: .customLong("turn-gap"), help: "multi-turn: seconds between a session's turns.") var turnGap = 4.0
        @Option(name: .customLong("routing-key"), help: "multi-turn: none, header (X-SMG-Routing-Key) or body (user).") var routingKey = "none"
        @Option(name: .customLong("trace-file"), help: "trace: JSONL with timestamp (ms), input_length, output_length, hash_ids.") var traceFile: String?
        @Option(name: .customLong("trace-time-scale"), help: "trace: multiply the trace's time offsets by this.") var traceTimeScale = 1.0
        @Option(name: .customLong("trace-block-tokens"), help: "trace: tokens per hash id.") var traceBlockTokens = 512
        @Option(name: .customLong("worker-urls"), help: "Comma-separated worker URLs whose /metrics are scraped.") var workerURLs = ""
        @Option(name: .customLong("slo-ttft-ms")) var sloTTFTMs = 1000.0
        @Option(name: .customLong("slo-itl-ms"), help: "Mean inter-token latency target.") var sloITLMs = 100.0
        @Flag(name: .customLong("honor-retry-after"), help: "Retry a 503 after its Retry-After (at most --max-retries).") var honorRetryAfter = false
        @Option(name: .customLong("max-retries")) var maxRetries = 3
        @Option(name: .customLong("max-in-flight"), help: "Requests in flight at most; more are failed, not delayed.") var maxInFlight = 4096
        @Option(help: "Seconds one request may take.") var timeout = 120.0
        @Option var label = ""
        @Option(name: .customLong("json-out"), help: "Append the JSON summary to this file.") var jsonOut: String?

        func run() async throws {
            guard let route = ReplayRoute(rawValue: route) else { throw ValidationError("--route: chat, completions or generate") }
            guard let key = RoutingKeyMode(rawValue: routingKey) else { throw ValidationError("--routing-key: none, header or body") }
            guard rate > 0, duration > 0, drain >= 0, requests > 0, timeout > 0 else {
                throw ValidationError("--rate, --duration, --requests and --timeout must be positive")
            }
            guard popularity == "uniform" || popularity == "zipf" else { throw ValidationError("--popularity: uniform or zipf") }
            var options = ReplayOptions()
            options.baseURL = baseURL
            options.route = route
            options.model = model
            options.rate = rate
            options.seed = seed
            options.duration = duration
            options.drain = drain
            options.routingKey = key
            options.workerURLs = workerURLs.split(separator: ",").map(String.init).filter { !$0.isEmpty }
            options.slo = SLO(ttft: sloTTFTMs / 1000, interToken: sloITLMs / 1000)
            options.honorRetryAfter = honorRetryAfter
            options.maxRetries = maxRetries
            options.maxInFlight = maxInFlight
            options.timeout = timeout
            options.jsonOut = jsonOut
            options.workloadName = workload
            switch workload {
            case "shared-prefix":
                guard groups > 0, promptsPerGroup > 0 else { throw ValidationError("--groups and --prompts-per-group must be positive") }
                let spec = Workload.SharedPrefix(
                    groups: groups, promptsPerGroup: promptsPerGroup, systemTokens: systemTokens, questionTokens: questionTokens,
                    outputTokens: outputTokens, zipfAlpha: popularity == "zipf" ? zipfAlpha : 0, requests: requests
                )
                options.workload = .sharedPrefix(spec)
                if popularity == "zipf" { options.workloadName = "shared-prefix-zipf" }
                printErr("working set: \(spec.workingSetTokens) tokens")
            case "multi-turn":
                guard sessions > 0, turns > 0 else { throw ValidationError("--sessions and --turns must be positive") }
                let spec = Workload.MultiTurn(
                    sessions: sessions, turns: turns, systemTokens: systemTokens, userTokens: questionTokens, outputTokens: outputTokens,
                    turnGap: turnGap
                )
                options.workload = .multiTurn(spec)
                options.workloadName = key == .none ? "multi-turn" : "multi-turn-key-\(key.rawValue)"
                printErr("working set: \(spec.workingSetTokens) tokens")
            case "zero-reuse":
                options.workload = .zeroReuse(.init(requests: requests, promptTokens: questionTokens, outputTokens: outputTokens))
            case "trace":
                guard let traceFile else { throw ValidationError("--workload trace needs --trace-file") }
                guard let file = fopen(traceFile, "r") else { throw ValidationError("cannot open \(traceFile)") }
                var text = ""
                var buffer = [CChar](repeating: 0, count: 1 << 16)
                while fgets(&buffer, Int32(buffer.count), file) != nil {
                    text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
                fclose(file)
                let records: [TraceRecord]
                do {
                    records = try parseTrace(text)
                } catch {
                    throw ValidationError(error.description)
                }
                options.workload = .trace(records: Array(records.prefix(requests)), timeScale: traceTimeScale, blockTokens: traceBlockTokens)
            default:
                throw ValidationError("--workload: shared-prefix, multi-turn, zero-reuse or trace")
            }
            options.label = label.isEmpty ? options.workloadName : label
            try await runReplayCommand(options)
        }
    }

    struct Split: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Round-robin TCP splitter on loopback: each connection goes whole to the next target (layer 4)."
        )
        @Option(name: .customLong("listen-port"), help: "0 picks a free port (printed).") var listenPort = 0
        @Option(help: "Comma-separated loopback targets, e.g. http://127.0.0.1:30010,http://127.0.0.1:30011.") var targets: String

        func run() async throws {
            let list = try targets.split(separator: ",").map { try LoopbackURL(String($0)) }
            guard !list.isEmpty else { throw ValidationError("--targets: at least one") }
            try await runSplitCommand(listenHost: "127.0.0.1", listenPort: listenPort, targets: list)
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
