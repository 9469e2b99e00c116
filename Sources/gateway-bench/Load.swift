import GatewayClient
import GatewayWire
import NIOHTTP1
import Synchronization

/// What one load run measured.
struct LoadResult {
    var requests = 0
    var errors = 0
    var seconds = 0.0
    var latencies: [UInt64] = []
    var ttfb: [UInt64] = []
    var firstError: String?
}

/// Runs `concurrency` loops of `operation` for `warmup + duration` seconds; counts
/// only calls that start after the warm-up and end before the deadline.
/// `operation(i)` returns the time to first chunk in nanoseconds (0 when none).
///
/// With `rate` (calls a second, all loops together) the load is open: each loop starts
/// its calls on a fixed schedule, and a call's latency counts from when it was due, so
/// a slow answer that delays the next calls is charged to them too (no coordinated
/// omission). Without it each loop starts its next call when the last one ends.
func runLoad(
    concurrency: Int,
    warmup: Double,
    duration: Double,
    rate: Double? = nil,
    operation: @escaping @Sendable (Int) async throws -> UInt64
) async -> LoadResult {
    let begin = nowNanos()
    let measureStart = begin + UInt64(warmup * 1e9)
    let deadline = measureStart + UInt64(duration * 1e9)
    let expected = 1024
    // Per loop: nanoseconds between two calls.
    let interval = rate.map { UInt64(Double(concurrency) / $0 * 1e9) }

    struct Partial: Sendable {
        var requests = 0
        var errors = 0
        var latencies: [UInt64] = []
        var ttfb: [UInt64] = []
        var firstError: String?
    }

    var total = LoadResult()
    await withTaskGroup(of: Partial.self) { group in
        for index in 0..<concurrency {
            group.addTask {
                var partial = Partial()
                partial.latencies.reserveCapacity(expected)
                var consecutiveErrors = 0
                // The loops' schedules are spread evenly over one interval.
                var due = begin + (interval ?? 0) * UInt64(index) / UInt64(concurrency)
                while true {
                    var t0 = nowNanos()
                    if let interval {
                        if due > t0 { try? await Task.sleep(for: .nanoseconds(due - t0)) }
                        t0 = due
                        due += interval
                    }
                    if t0 >= deadline { break }
                    do {
                        let firstChunk = try await operation(index)
                        let t1 = nowNanos()
                        consecutiveErrors = 0
                        if t0 >= measureStart && t1 <= deadline {
                            partial.requests += 1
                            partial.latencies.append(t1 - t0)
                            if firstChunk > 0 { partial.ttfb.append(firstChunk) }
                        }
                    } catch {
                        let t1 = nowNanos()
                        if t0 >= measureStart && t1 <= deadline { partial.errors += 1 }
                        if partial.firstError == nil { partial.firstError = "\(error)" }
                        consecutiveErrors += 1
                        // A dead connection: do not spin.
                        if consecutiveErrors > 100 { try? await Task.sleep(for: .milliseconds(10)) }
                    }
                }
                return partial
            }
        }
        for await partial in group {
            total.requests += partial.requests
            total.errors += partial.errors
            total.latencies += partial.latencies
            total.ttfb += partial.ttfb
            if total.firstError == nil { total.firstError = partial.firstError }
        }
    }
    total.seconds = duration
    return total
}

enum LoadOperation: String, CaseIterable {
    /// List workers (GET /workers).
    case list
    /// Health (GET /readiness, the twin of the binary `Health` call).
    case health
    /// Unary generate (POST /generate).
    case generate
    /// Streamed generate (POST /generate with "stream": true): time to first chunk.
    case stream
}

struct LoadOptions {
    var proto = "binary"
    var host = "127.0.0.1"
    var port = 30001
    var operation = LoadOperation.health
    var connections = 1
    var window = 1
    var duration = 5.0
    var warmup = 1.0
    var model = "sim-model"
    var maxTokens = 8
    var prompt = "Hello world"
    var label = ""
    var restPath: String?
    var pid: Int32?
    /// Calls a second for an open load (nil: each loop calls again as soon as it can).
    var rate: Double?
}

/// `gateway-bench load …`: one measured run, printed as one JSON line.
func runLoadCommand(_ options: LoadOptions) async throws {
    let operation: @Sendable (Int) async throws -> UInt64
    var closers: [@Sendable () async -> Void] = []
    let concurrency: Int

    if options.proto == "binary" {
        var clients: [GatewayClient] = []
        for _ in 0..<options.connections {
            let client = try await GatewayClient.connect(host: options.host, port: options.port, clientName: "gateway-bench")
            clients.append(client)
            closers.append { await client.close() }
        }
        let pool = clients
        let count = pool.count
        let request = Wire.GenerateRequest(
            model: options.model, input: .text(options.prompt), sampling: .init(maxTokens: UInt32(options.maxTokens))
        )
        concurrency = options.connections * options.window
        switch options.operation {
        case .list:
            operation = { i in _ = try await pool[i % count].listWorkers(); return 0 }
        case .health:
            operation = { i in _ = try await pool[i % count].health(); return 0 }
        case .generate:
            operation = { i in _ = try await pool[i % count].generate(request); return 0 }
        case .stream:
            operation = { i in
                let start = nowNanos()
                var first: UInt64 = 0
                var sawResult = false
                for try await event in pool[i % count].generateStream(request) {
                    switch event {
                    case .chunk: if first == 0 { first = nowNanos() - start }
                    case .result: sawResult = true
                    }
                }
                guard sawResult, first > 0 else { throw HTTPClientFailure(description: "stream ended without chunk or result") }
                return first
            }
        }
    } else {
        // HTTP/1.1 cannot multiplex: one request at a time per connection, so the
        // window is the number of connections.
        var connections: [HTTPConnection] = []
        let total = options.connections * options.window
        for _ in 0..<total {
            let connection = try await HTTPConnection.connect(host: options.host, port: options.port)
            connections.append(connection)
            closers.append { await connection.close() }
        }
        let pool = connections
        let host = "\(options.host):\(options.port)"
        let escapedPrompt = options.prompt.replacingOccurrences(of: "\"", with: "\\\"")
        let template: HTTPRequestTemplate
        switch options.operation {
        case .list: template = .init(method: .GET, path: options.restPath ?? "/workers", host: host, body: nil)
        case .health: template = .init(method: .GET, path: options.restPath ?? "/readiness", host: host, body: nil)
        case .generate, .stream:
            let stream = options.operation == .stream
            let body =
                "{\"text\":\"\(escapedPrompt)\",\"model\":\"\(options.model)\",\"stream\":\(stream),\"sampling_params\":{\"max_new_tokens\":\(options.maxTokens)}}"
            template = .init(method: .POST, path: options.restPath ?? "/generate", host: host, body: body)
        }
        concurrency = total
        let streaming = options.operation == .stream
        operation = { i in
            let result = try await pool[i].send(template)
            guard (200..<300).contains(result.status) else { throw HTTPClientFailure(description: "HTTP \(result.status)") }
            return streaming ? result.firstBodyNanos : 0
        }
    }

    // The target's CPU time over the measured window only (after the warm-up).
    let pid = options.pid
    let warmup = options.warmup
    let duration = options.duration
    let cpuTask = Task { () -> Double? in
        guard let pid else { return nil }
        try? await Task.sleep(for: .milliseconds(Int(warmup * 1000)))
        guard let before = procCPUSeconds(pid: pid) else { return nil }
        try? await Task.sleep(for: .milliseconds(Int(duration * 1000)))
        guard let after = procCPUSeconds(pid: pid) else { return nil }
        return after - before
    }
    let result = await runLoad(concurrency: concurrency, warmup: options.warmup, duration: options.duration, rate: options.rate, operation: operation)
    let cpu = await cpuTask.value
    for close in closers { await close() }

    var fields: [(String, JSON)] = [
        ("label", .string(options.label)),
        ("protocol", .string(options.proto)),
        ("operation", .string(options.operation.rawValue)),
        ("connections", .int(options.connections)),
        ("window", .int(options.proto == "binary" ? options.window : 1)),
        ("concurrency", .int(concurrency)),
        ("target_rate", options.rate.map { .double($0) } ?? .null),
        ("duration_s", .double(result.seconds)),
        ("requests", .int(result.requests)),
        ("errors", .int(result.errors)),
        ("rps", .double(Double(result.requests) / result.seconds)),
        ("latency", LatencySummary(nanos: result.latencies).json()),
    ]
    if !result.ttfb.isEmpty { fields.append(("ttfb", LatencySummary(nanos: result.ttfb).json())) }
    if let cpu {
        fields.append(("target_cpu_s", .double(cpu)))
        if result.requests > 0 { fields.append(("target_cpu_s_per_1k", .double(cpu / Double(result.requests) * 1000))) }
    }
    if let pid, let hwm = procStatusKB(pid: pid, field: "VmHWM") { fields.append(("target_vmhwm_kb", .int(hwm))) }
    if let firstError = result.firstError { fields.append(("first_error", .string(firstError))) }
    print(JSON.object(fields).rendered)
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        out += rest
        return out
    }
}
