import ArgumentParser
import GatewayWire

/// `model-gateway workers …`: the worker API, over the binary protocol or `--rest`.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List, add, inspect, update and remove the gateway's workers.",
        subcommands: [List.self, Add.self, Get.self, Update.self, Remove.self]
    )
}

extension WorkersCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the workers (GET /workers[?model=&status=&worker_type=]).")

        @Option(help: "Only workers serving this model.")
        var model: String?

        @Option(help: "Only workers in this status: pending, ready, not_ready, failed, draining.")
        var status: String?

        @Option(help: "Only workers of this type: regular, prefill, decode.")
        var workerType: String?

        @OptionGroup var client: ClientOptions

        func validate() throws { _ = try makeFilter() }

        func makeFilter() throws -> Wire.ListWorkersRequest {
            Wire.ListWorkersRequest(
                model: model ?? "", status: try status.map(Self.status) ?? .unspecified,
                workerType: try workerType.map(Add.workerType) ?? .unspecified
            )
        }

        static func status(_ name: String) throws -> Wire.WorkerStatus {
            switch name.lowercased() {
            case "pending": .pending
            case "ready": .ready
            case "not_ready": .notReady
            case "failed": .failed
            case "draining": .draining
            default: throw ValidationError("--status must be pending, ready, not_ready, failed or draining")
            }
        }

        func run() async throws {
            let filter = try makeFilter()
            try await client.withBackend { Terminal.printJSON(try await $0.listWorkers(filter)) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one worker (GET /workers/{id}).")

        @Argument(help: "The worker's id.")
        var id: String

        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.withBackend { Terminal.printJSON(try await $0.getWorker(id: id)) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a worker (DELETE /workers/{id}): it leaves routing at once and is removed when its requests end."
        )

        @Argument(help: "The worker's id.")
        var id: String

        @Flag(help: "Remove it at once instead of draining (requests already sent to it finish).")
        var force: Bool = false

        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.withBackend { Terminal.printJSON(try await $0.removeWorker(id: id, force: force)) }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a worker (POST /workers); it is probed in the background."
        )

        @Argument(help: "The worker's URL (http://host:port, https://…, or host:port).")
        var url: String

        @Option(help: "The model it serves (default: detected from the worker).")
        var modelId: String?

        @Option(help: "Routing priority (higher is preferred; default 50).")
        var priority: UInt32?

        @Option(help: "Relative cost (default 1.0).")
        var cost: Double?

        @Option(name: .customLong("label"), help: "A label KEY=VALUE (repeatable).")
        var labels: [String] = []

        @Option(help: "regular, prefill or decode.")
        var workerType: String?

        @Option(help: "sglang or openai (vllm, llamacpp, external mean openai; default: detected).")
        var runtime: String?

        @Option(help: "Bootstrap port (prefill workers).")
        var bootstrapPort: UInt32?

        @Option(help: "API key the gateway sends to this worker as a Bearer token.")
        var workerApiKey: String?

        @Flag(help: "Never probe this worker; it counts as healthy.")
        var disableHealthCheck: Bool = false

        @Option(help: "In-flight requests above which the worker counts as saturated (1-1000000).")
        var maxLoad: UInt32?

        @OptionGroup var client: ClientOptions

        func validate() throws {
            _ = try makeRequest()
        }

        func makeRequest() throws -> Wire.AddWorkerRequest {
            Wire.AddWorkerRequest(
                url: url, modelID: modelId ?? "", priority: priority, cost: cost, labels: try parseLabels(labels),
                workerType: try workerType.map(Self.workerType) ?? .unspecified,
                runtimeType: try runtime.map(Self.runtimeType) ?? .unspecified,
                bootstrapPort: bootstrapPort, apiKey: workerApiKey ?? "", disableHealthCheck: disableHealthCheck,
                maxLoad: maxLoad
            )
        }

        func run() async throws {
            let request = try makeRequest()
            try await client.withBackend { Terminal.printJSON(try await $0.addWorker(request)) }
        }

        static func workerType(_ name: String) throws -> Wire.WorkerType {
            switch name.lowercased() {
            case "regular": .regular
            case "prefill": .prefill
            case "decode": .decode
            default: throw ValidationError("--worker-type must be regular, prefill or decode")
            }
        }

        static func runtimeType(_ name: String) throws -> Wire.RuntimeType {
            switch name.lowercased() {
            case "sglang": .sglang
            case "openai", "vllm", "llamacpp", "llama.cpp", "external": .openai
            default: throw ValidationError("--runtime must be sglang or openai (vllm, llamacpp, external)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a worker (PUT /workers/{id}).")

        @Argument(help: "The worker's id.")
        var id: String

        @Option(help: "New routing priority.")
        var priority: UInt32?

        @Option(help: "New relative cost.")
        var cost: Double?

        @Option(name: .customLong("label"), help: "Set label KEY=VALUE; KEY= removes it (repeatable).")
        var labels: [String] = []

        @Option(help: "New API key for the worker; an empty one removes it.")
        var workerApiKey: String?

        @Option(help: "New saturation limit (1-1000000); 0 removes it.")
        var maxLoad: UInt32?

        @OptionGroup var client: ClientOptions

        func validate() throws {
            _ = try parseLabels(labels)
            if priority == nil && cost == nil && labels.isEmpty && workerApiKey == nil && maxLoad == nil {
                throw ValidationError("nothing to change: give --priority, --cost, --label, --worker-api-key or --max-load")
            }
        }

        func run() async throws {
            let request = Wire.UpdateWorkerRequest(
                workerID: id, priority: priority, cost: cost, labels: labels.isEmpty ? nil : try parseLabels(labels), apiKey: workerApiKey,
                maxLoad: maxLoad
            )
            try await client.withBackend { Terminal.printJSON(try await $0.updateWorker(request)) }
        }
    }
}
