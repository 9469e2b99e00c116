import ArgumentParser
import GatewayClient
import GatewayCore
import GatewayJSON
import GatewayServer
import GatewayUpstream
import GatewayWire
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SimWorker
import UnixSignals

/// The gateway's main job on an embedded default: a gateway, simulated workers,
/// and the worker API exercised against them, call by call.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the gateway with simulated workers, register them over REST and show example calls."
    )

    @Option(help: "Gateway REST port (0 picks a free one).")
    var port: Int = 30000

    @Option(help: "How many simulated workers to start.")
    var workers: Int = 2

    @Flag(help: "Exit after the example calls instead of serving until Ctrl-C.")
    var once: Bool = false

    @Option(help: "Log level of the gateway: trace, debug, info, warn, error.")
    var logLevel: String = "warn"

    func validate() throws {
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be 1-16") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
    }

    func run() async throws {
        var options = try ServeOptions.parse(["--state-path", "none", "--host", "127.0.0.1", "--port", String(port), "--log-level", logLevel, "--health-check-interval-secs", "5"])
        options.workerStartupTimeoutSecs = 30
        var configuration = try options.makeConfiguration()
        // --port 0: a free binary port too, so several demos can run side by side.
        if port == 0 { configuration.binary.port = 0 }
        bootstrapLogging(level: configuration.logLevel)

        var simWorkers: [SimWorker] = []
        var workerURLs: [String] = []
        for index in 0..<workers {
            // The second worker speaks OpenAI only (like llama.cpp): the gateway translates /generate for it.
            let worker = SimWorker(
                configuration: .init(
                    name: "sim-\(index + 1)", modelID: "sim-model", runtime: index % 2 == 1 ? .openai : .sglang,
                    latency: .milliseconds(20), chunkCount: 4
                )
            )
            let workerPort = try await worker.start()
            simWorkers.append(worker)
            workerURLs.append("http://127.0.0.1:\(workerPort)")
        }
        defer {
            for worker in simWorkers { Task { try? await worker.shutdown() } }
        }
        print("Started \(workers) simulated worker(s): \(workerURLs.joined(separator: ", "))")

        let gateway = try Gateway(configuration: configuration, logger: Logger(label: "model-gateway"))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try await gateway.run(gracefulShutdownSignals: [.sigterm, .sigint]) { continuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            guard let gatewayPort = await iterator.next() else {
                try await group.next()
                throw ValidationError("the gateway stopped before it listened")
            }
            let base = "http://127.0.0.1:\(gatewayPort)"
            print("Gateway listening on \(base)\n")
            let client = try WorkerTransport()
            do {
                try await examples(base: base, workerURLs: workerURLs, client: client)
                if let binaryPort = gateway.binaryPort { try await binaryExamples(port: binaryPort) }
                print("# Demo calls done.")
                client.shutdown()
            } catch {
                client.shutdown()
                await gateway.shutdown()
                throw error
            }
            if once {
                await gateway.shutdown()
            } else {
                print("The gateway keeps serving on \(base); press Ctrl-C to stop.")
            }
            try await group.waitForAll()
        }
        for worker in simWorkers { try await worker.shutdown() }
    }

    /// The example calls, printed as curl commands with their answers.
    private func examples(base: String, workerURLs: [String], client: WorkerTransport) async throws {
        var ids: [String] = []
        for url in workerURLs {
            let reply = try await call(client, .POST, base, "/workers", body: #"{"url": "\#(url)", "labels": {"pool": "demo"}}"#)
            try expect(reply.status == 202, "POST /workers answered \(reply.status)")
            guard let id = reply.json["worker_id"]?.stringValue else { throw ValidationError("POST /workers gave no worker_id") }
            ids.append(id)
        }

        // Registration runs in the background: wait for the probes to finish.
        let deadline = ContinuousClock.now + .seconds(30)
        for id in ids {
            while try await call(client, .GET, base, "/workers/\(id)", quiet: true).json["is_healthy"] != .bool(true) {
                try expect(ContinuousClock.now < deadline, "worker \(id) did not become healthy")
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        print("# Both workers are probed and healthy.\n")

        _ = try await call(client, .GET, base, "/workers")
        _ = try await call(client, .GET, base, "/workers/\(ids[0])")
        let update = try await call(client, .PUT, base, "/workers/\(ids[0])", body: #"{"priority": 80, "labels": {"tier": "fast"}}"#)
        try expect(update.status == 202, "PUT answered \(update.status)")
        let readiness = try await call(client, .GET, base, "/readiness")
        try expect(readiness.status == 200, "readiness answered \(readiness.status)")
        let bad = try await call(client, .POST, base, "/workers", body: #"{"url": "not a url"}"#)
        try expect(bad.status == 400, "a bad URL answered \(bad.status)")
        let missing = try await call(client, .GET, base, "/workers/00000000-0000-4000-8000-000000000000")
        try expect(missing.status == 404, "an unknown id answered \(missing.status)")

        print("# Inference through the gateway (the policy is cache_aware by default).\n")
        _ = try await call(client, .GET, base, "/v1/models")
        let chat = try await call(client, .POST, base, "/v1/chat/completions", body: #"{"model": "sim-model", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8}"#)
        try expect(chat.status == 200, "chat answered \(chat.status)")
        let generate = try await call(client, .POST, base, "/generate", body: #"{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 6}}"#)
        try expect(generate.status == 200, "/generate answered \(generate.status)")
        let stream = try await call(client, .POST, base, "/generate", body: #"{"text": "Stream this", "stream": true, "sampling_params": {"max_new_tokens": 4}}"#)
        try expect(stream.status == 200, "streamed /generate answered \(stream.status)")
        _ = try await call(client, .GET, base, "/get_loads")
        let unknown = try await call(client, .POST, base, "/v1/completions", body: #"{"model": "no-such-model", "prompt": "hi"}"#)
        try expect(unknown.status == 404, "an unknown model answered \(unknown.status)")

        if ids.count > 1 {
            let removed = try await call(client, .DELETE, base, "/workers/\(ids[1])")
            try expect(removed.status == 202, "DELETE answered \(removed.status)")
        }
    }

    /// The same core over the binary protocol, printed as the CLI commands that make
    /// these calls (`model-gateway models`, `model-gateway generate`).
    private func binaryExamples(port: Int) async throws {
        print("# The binary protocol (framed protobuf on port \(port)), as the CLI calls it.\n")
        let client = try await GatewayClient.connect(host: "127.0.0.1", port: port, clientName: "model-gateway-demo")
        do {
            print("$ model-gateway models --port \(port)")
            print(WireJSON.models(try await client.listModels()).prettyString + "\n")

            print("$ model-gateway generate --port \(port) --prompt 'Stream this over binary' --max-tokens 6")
            var text = ""
            var final: Wire.GenerateResult?
            let request = Wire.GenerateRequest(input: .text("Stream this over binary"), sampling: .init(maxTokens: 6), stream: true)
            for try await event in client.generateStream(request) {
                switch event {
                case .chunk(let chunk): text += chunk.text
                case .result(let result): final = result
                }
            }
            guard let final else { throw ValidationError("demo failed: the stream ended without a result") }
            // As the CLI prints it: the tokens on stdout, then the summary line (its stderr).
            print(text)
            print(GenerateCommand.summary(final) + "\n")
            await client.close()
        } catch {
            await client.close()
            throw error
        }
    }

    private struct Reply {
        let status: Int
        let json: JSONValue
    }

    private func call(_ client: WorkerTransport, _ method: HTTPMethod, _ base: String, _ path: String, body: String? = nil, quiet: Bool = false) async throws -> Reply {
        var headers = HTTPHeaders()
        if body != nil { headers.add(name: "Content-Type", value: "application/json") }
        let request = WorkerRequest(method: method, url: try WorkerURL(base), path: path, headers: headers, body: body.map { ByteBuffer(string: $0) })
        let answer = try await client.send(request, timeout: .seconds(10), bodyLimit: 16 << 20)
        let parsed = try? JSONParser.parse(answer.body.readableBytesView)
        if !quiet {
            var command = "curl -s -X \(method.rawValue) \(base)\(path)"
            if let body { command += " -H 'Content-Type: application/json' -d '\(body)'" }
            print("$ \(command)")
            print("HTTP \(answer.status)")
            // JSON pretty-printed; anything else (a server-sent event stream) as it came.
            print((parsed?.prettyString ?? String(buffer: answer.body)) + "\n")
        }
        let json = parsed ?? .string(String(buffer: answer.body))
        return Reply(status: answer.status, json: json)
    }

    private func expect(_ condition: Bool, _ message: String) throws {
        if !condition { throw ValidationError("demo failed: \(message)") }
    }
}
