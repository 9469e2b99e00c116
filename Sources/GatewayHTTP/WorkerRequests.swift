import GatewayCore
import GatewayWorkers
import GatewayJSON

/// Parses the JSON bodies of the worker API into protocol-neutral inputs.
///
/// Field names are the reference gateway's (`runtime` or `runtime_type`,
/// `health_check_timeout_secs` …). Unknown fields are ignored, as the reference
/// does, so clients written for it keep working; fields that exist but cannot be
/// changed are refused on PUT rather than silently dropped.
enum WorkerRequests {
    static func addInput(from body: some Collection<UInt8>) throws(GatewayError) -> AddWorkerInput {
        let fields = try FieldReader(body: body)
        guard fields.object["url"] != nil, fields.object["url"] != .null else { throw .missingField("url") }
        // An empty URL is a missing one, as over the binary protocol (where proto3 cannot
        // tell an empty string from an absent one): both doors answer MISSING_FIELD.
        guard let url = try fields.string("url"), !url.isEmpty else { throw .missingField("url") }
        var input = AddWorkerInput(url: url)
        input.modelID = try fields.string("model_id")
        input.priority = try fields.integer("priority", in: 0...Int64(UInt32.max)).map { UInt32($0) }
        input.cost = try fields.double("cost")
        input.labels = try fields.stringMap("labels") ?? [:]
        if let type = try fields.string("worker_type") {
            guard let parsed = WorkerType(rawValue: type.lowercased()) else {
                throw .invalidField("worker_type", "must be one of regular, prefill, decode (got \"\(type)\")")
            }
            input.workerType = parsed
        }
        input.runtimeType = try runtime(fields)
        input.bootstrapPort = try fields.integer("bootstrap_port", in: 1...65535).map { Int($0) }
        input.apiKey = try fields.string("api_key")
        input.healthCheck = try healthCheck(fields)
        input.maxLoad = try fields.integer("max_load", in: WorkerInputValidation.maxLoadRange).map { Int($0) }
        return input
    }

    static func updateInput(from body: some Collection<UInt8>) throws(GatewayError) -> UpdateWorkerInput {
        let fields = try FieldReader(body: body)
        for key in ["url", "model_id", "worker_type", "runtime", "runtime_type", "bootstrap_port"] where fields.has(key) {
            throw .invalidField(key, "cannot be changed; remove the worker and add it again")
        }
        var input = UpdateWorkerInput()
        input.priority = try fields.integer("priority", in: 0...Int64(UInt32.max)).map { UInt32($0) }
        input.cost = try fields.double("cost")
        input.labelChanges = try fields.stringMapAllowingNulls("labels") ?? [:]
        if fields.object["api_key"] == .null {
            input.apiKey = .some(nil)
        } else if let key = try fields.string("api_key") {
            input.apiKey = .some(key)
        }
        input.healthCheck = try healthCheck(fields)
        if fields.object["max_load"] == .null {
            input.maxLoad = .some(nil)
        } else if let limit = try fields.integer("max_load", in: WorkerInputValidation.maxLoadRange) {
            input.maxLoad = .some(Int(limit))
        }
        return input
    }

    private static func runtime(_ fields: FieldReader) throws(GatewayError) -> RuntimeType? {
        for key in ["runtime_type", "runtime"] {
            guard let value = try fields.string(key) else { continue }
            switch value.lowercased() {
            case "sglang": return .sglang
            // vLLM, llama.cpp and other OpenAI-compatible servers are reached through OpenAI routes.
            case "openai", "vllm", "llamacpp", "llama.cpp", "external": return .openai
            default:
                throw .invalidField(key, "must be sglang or openai (vllm, llamacpp and external mean openai), got \"\(value)\"")
            }
        }
        return nil
    }

    private static func healthCheck(_ fields: FieldReader) throws(GatewayError) -> HealthCheckChange {
        let limit: ClosedRange<Int64> = 1...86_400
        return HealthCheckChange(
            timeout: try fields.integer("health_check_timeout_secs", in: limit).map { .seconds($0) },
            interval: try fields.integer("health_check_interval_secs", in: limit).map { .seconds($0) },
            failureThreshold: try fields.integer("health_failure_threshold", in: 1...1000).map { Int($0) },
            successThreshold: try fields.integer("health_success_threshold", in: 1...1000).map { Int($0) },
            endpoint: try fields.string("health_check_endpoint"),
            disabled: try fields.bool("disable_health_check")
        )
    }
}
