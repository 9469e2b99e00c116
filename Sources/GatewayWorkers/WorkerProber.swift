import GatewayCore
import GatewayJSON
import GatewayUpstream
import NIOCore
import NIOHTTP1

/// Talks to workers outside of inference: health probes and registration probing,
/// through the same transport as inference.
public struct WorkerProber: Sendable {
    /// The result of one health probe.
    public enum HealthOutcome: Sendable, Equatable {
        case healthy
        /// Answered, but not with 2xx; or timed out; or the transport failed.
        case unhealthy(String)
        /// Nothing listens: the worker is down, no need to wait for more failures.
        case refused(String)
    }

    /// Why a registration probe did not succeed (each failure is retried until the startup timeout).
    public struct ProbeFailure: Error, Sendable, Equatable {
        public let message: String
    }

    let transport: WorkerTransport
    /// Largest body read from an info endpoint.
    let maxInfoBytes = 1 << 20

    public init(transport: WorkerTransport) {
        self.transport = transport
    }

    /// GET the worker's health endpoint once.
    public func checkHealth(url: WorkerURL, config: HealthCheckConfig, apiKey: String?) async -> HealthOutcome {
        do throws(WorkerFailure) {
            let (status, _) = try await get(url, config.endpoint, apiKey: apiKey, timeout: config.timeout)
            return (200..<300).contains(status) ? .healthy : .unhealthy("GET \(config.endpoint) answered HTTP \(status)")
        } catch {
            return error.isRefused ? .refused(error.message) : .unhealthy(error.message)
        }
    }

    /// Checks that the worker is up and finds out what it serves.
    ///
    /// 1. `GET {health endpoint}` must answer 2xx (skipped when health checks are disabled);
    /// 2. SGLang: `/server_info` (or `/get_server_info`) and `/model_info` (or `/get_model_info`);
    /// 3. otherwise OpenAI-compatible: `/v1/models`.
    /// A runtime or model id given at registration is kept; probing fills the rest.
    public func probe(_ spec: WorkerSpec) async throws(ProbeFailure) -> WorkerProbeResult {
        if spec.healthCheck.disabled, let modelID = spec.modelID, let runtime = spec.runtimeType {
            // Nothing to check and nothing to find out.
            return WorkerProbeResult(modelID: modelID, runtimeType: runtime)
        }
        let timeout = spec.healthCheck.timeout
        if !spec.healthCheck.disabled {
            let status: Int
            do throws(WorkerFailure) {
                (status, _) = try await get(spec.url, spec.healthCheck.endpoint, apiKey: spec.apiKey, timeout: timeout)
            } catch {
                throw ProbeFailure(message: "GET \(spec.healthCheck.endpoint): \(error.message)")
            }
            guard (200..<300).contains(status) else {
                throw ProbeFailure(message: "GET \(spec.healthCheck.endpoint) answered HTTP \(status)")
            }
        }

        if spec.runtimeType != .openai {
            let serverInfo = try await getJSON(spec, paths: ["/server_info", "/get_server_info"])
            let modelInfo = try await getJSON(spec, paths: ["/model_info", "/get_model_info"])
            if serverInfo != nil || modelInfo != nil {
                return try Self.sglangResult(serverInfo: serverInfo ?? [:], modelInfo: modelInfo ?? [:])
            }
        }
        if let models = try await getJSON(spec, paths: ["/v1/models"]) {
            return try Self.openAIResult(models: models)
        }
        if let runtime = spec.runtimeType, spec.modelID != nil {
            // Told everything; the worker just has no info routes.
            return WorkerProbeResult(modelID: spec.modelID!, runtimeType: runtime)
        }
        throw ProbeFailure(
            message: "the worker answers neither SGLang's /server_info or /model_info nor OpenAI's /v1/models; give model_id and runtime to register it anyway"
        )
    }

    // MARK: Reading worker answers

    static func sglangResult(serverInfo: JSONObject, modelInfo: JSONObject) throws(ProbeFailure) -> WorkerProbeResult {
        var metadata: [String: String] = [:]
        for key in ["model_path", "served_model_name", "tp_size", "dp_size", "load_balance_method", "disaggregation_mode", "version"] {
            if let value = serverInfo[key].flatMap(metadataString) { metadata[key] = value }
        }
        for key in ["tokenizer_path", "is_generation", "model_type", "architectures"] {
            if let value = modelInfo[key].flatMap(metadataString) { metadata[key] = value }
        }
        if metadata["model_path"] == nil, let path = modelInfo["model_path"].flatMap(metadataString) {
            metadata["model_path"] = path
        }
        let modelID = serverInfo["model_id"]?.stringValue
            ?? metadata["served_model_name"]
            ?? metadata["model_path"]
            ?? Worker.unknownModelID
        guard storable(modelID) else { throw ProbeFailure(message: "the worker reports a model id with a NUL character") }
        return WorkerProbeResult(modelID: modelID, runtimeType: .sglang, metadata: metadata)
    }

    static func openAIResult(models: JSONObject) throws(ProbeFailure) -> WorkerProbeResult {
        guard let first = models["data"]?.arrayValue?.first?.objectValue, let id = first["id"]?.stringValue, !id.isEmpty else {
            throw ProbeFailure(message: "GET /v1/models listed no model")
        }
        guard storable(id) else { throw ProbeFailure(message: "GET /v1/models reports a model id with a NUL character") }
        var metadata: [String: String] = ["served_model_name": id]
        for key in ["owned_by", "max_model_len", "root"] {
            if let value = first[key].flatMap(metadataString) { metadata[key] = value }
        }
        // llama.cpp reports its model facts under "meta".
        if let meta = first["meta"]?.objectValue {
            for (key, value) in meta {
                if let text = metadataString(value) { metadata[key] = text }
            }
        }
        return WorkerProbeResult(modelID: id, runtimeType: .openai, metadata: metadata)
    }

    /// Scalars as their text; arrays and objects as compact JSON; null and "" dropped.
    /// Whether `text` can be stored and served by every door (the binary protocol's
    /// strings are C strings: a NUL would cut or break them).
    static func storable(_ text: String) -> Bool {
        !text.utf8.contains(0)
    }

    static func metadataString(_ value: JSONValue) -> String? {
        switch value {
        case .null: return nil
        case .string(let s): return s.isEmpty || !storable(s) ? nil : s
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .number(let text): return text
        case .array, .object: return value.jsonString
        }
    }

    // MARK: HTTP

    /// The first of `paths` that answers 2xx with a JSON object; nil when all answer 404/405
    /// or something that is not JSON. Other failures are retryable errors.
    private func getJSON(_ spec: WorkerSpec, paths: [String]) async throws(ProbeFailure) -> JSONObject? {
        for path in paths {
            let status: Int
            let body: ByteBuffer
            do throws(WorkerFailure) {
                (status, body) = try await get(spec.url, path, apiKey: spec.apiKey, timeout: spec.healthCheck.timeout)
            } catch {
                throw ProbeFailure(message: "GET \(path): \(error.message)")
            }
            if status == 404 || status == 405 { continue }
            guard (200..<300).contains(status) else {
                throw ProbeFailure(message: "GET \(path) answered HTTP \(status)")
            }
            if let object = try? JSONParser.parse(body.readableBytesView).objectValue { return object }
        }
        return nil
    }

    private func get(_ url: WorkerURL, _ path: String, apiKey: String?, timeout: Duration) async throws(WorkerFailure) -> (Int, ByteBuffer) {
        let request = WorkerRequest(method: .GET, url: url, path: path, apiKey: apiKey.flatMap { $0.isEmpty ? nil : $0 })
        let answer = try await transport.send(request, timeout: timeout, bodyLimit: maxInfoBytes)
        return (answer.status, answer.body)
    }
}
