import ArgumentParser
import GatewayClient
import GatewayJSON
import GatewayWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The flags every client subcommand (`workers`, `models`, `generate`) shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "Address of the gateway.")
    var host: String = "127.0.0.1"

    @Option(help: "The gateway's binary-protocol port.")
    var port: Int = 30001

    @Flag(help: "Use the REST API (on --rest-port) instead of the binary protocol.")
    var rest: Bool = false

    @Option(help: "The gateway's REST port (with --rest).")
    var restPort: Int = 30000

    @Option(help: "API key of the gateway (sent in Hello; over REST as a Bearer token).")
    var apiKey: String?

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1-65535") }
        guard (1...65535).contains(restPort) else { throw ValidationError("--rest-port must be 1-65535") }
    }

    /// Connects the chosen front door, runs `body`, closes the connection. A failure is
    /// printed as `error: CODE (status): message` on stderr and exits with status 1.
    func withBackend(_ body: (any GatewayBackend) async throws -> Void) async throws {
        let backend: any GatewayBackend
        do {
            if rest {
                backend = try RESTBackend(host: host, port: restPort, apiKey: apiKey)
            } else {
                let client = try await GatewayClient.connect(host: host, port: port, apiKey: apiKey, clientName: "model-gateway-cli")
                backend = BinaryBackend(client: client)
            }
        } catch {
            Terminal.error(Self.describe(error))
            throw ExitCode.failure
        }
        do {
            try await body(backend)
            await backend.shutdown()
        } catch {
            await backend.shutdown()
            Terminal.error(Self.describe(error))
            throw ExitCode.failure
        }
    }

    /// `error: CODE (status): message` for gateway errors, `error: …` for anything else.
    static func describe(_ error: any Error) -> String {
        switch error {
        case GatewayClientError.server(let code, let message, let status), RESTError.server(let code, let message, let status):
            "error: \(code) (\(status)): \(message)"
        default:
            "error: \(error)"
        }
    }
}

/// One front door of the gateway, seen by the client subcommands. Worker and model
/// calls answer the REST API's JSON; generation answers a `Wire.GenerateResult`.
protocol GatewayBackend: Sendable {
    func listWorkers(_ filter: Wire.ListWorkersRequest) async throws -> JSONValue
    func getWorker(id: String) async throws -> JSONValue
    func addWorker(_ request: Wire.AddWorkerRequest) async throws -> JSONValue
    func updateWorker(_ request: Wire.UpdateWorkerRequest) async throws -> JSONValue
    func removeWorker(id: String, force: Bool) async throws -> JSONValue
    func listModels() async throws -> JSONValue
    func generate(_ request: Wire.GenerateRequest) async throws -> Wire.GenerateResult
    /// Streams: `onText` for each piece of text as it arrives, then the final result.
    func generateStream(_ request: Wire.GenerateRequest, onText: (String) -> Void) async throws -> Wire.GenerateResult
    func shutdown() async
}

/// The binary protocol, through `GatewayClient`.
struct BinaryBackend: GatewayBackend {
    let client: GatewayClient

    func listWorkers(_ filter: Wire.ListWorkersRequest) async throws -> JSONValue { WireJSON.workerList(try await client.listWorkers(filter)) }
    func getWorker(id: String) async throws -> JSONValue { WireJSON.worker(try await client.getWorker(id: id)) }
    func addWorker(_ request: Wire.AddWorkerRequest) async throws -> JSONValue { WireJSON.added(try await client.addWorker(request)) }
    func updateWorker(_ request: Wire.UpdateWorkerRequest) async throws -> JSONValue { WireJSON.accepted(try await client.updateWorker(request)) }
    func removeWorker(id: String, force: Bool) async throws -> JSONValue { WireJSON.removed(try await client.removeWorker(id: id, force: force)) }
    func listModels() async throws -> JSONValue { WireJSON.models(try await client.listModels()) }
    func generate(_ request: Wire.GenerateRequest) async throws -> Wire.GenerateResult { try await client.generate(request) }

    func generateStream(_ request: Wire.GenerateRequest, onText: (String) -> Void) async throws -> Wire.GenerateResult {
        for try await event in client.generateStream(request) {
            switch event {
            case .chunk(let chunk): onText(chunk.text)
            case .result(let result): return result
            }
        }
        throw GatewayClientError.protocolViolation("the stream ended without a result")
    }

    func shutdown() async { await client.close() }
}

/// Unbuffered writes to stdout and stderr (streamed tokens must show at once).
enum Terminal {
    static func output(_ text: String) { write(1, text) }

    /// `text` and a newline on stderr.
    static func error(_ text: String) { write(2, text + "\n") }

    private static func write(_ descriptor: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                #if canImport(Darwin)
                let written = Darwin.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                #elseif canImport(Glibc)
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                #else
                let written = Musl.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                #endif
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// A JSON value pretty-printed, with a final newline, on stdout.
    static func printJSON(_ value: JSONValue) { output(value.prettyString + "\n") }
}

/// `KEY=VALUE` options (labels) as a map; an empty value is kept (it removes the label
/// in an update).
func parseLabels(_ pairs: [String]) throws -> [String: String] {
    var labels: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw ValidationError("--label takes KEY=VALUE, got '\(pair)'")
        }
        labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    return labels
}
