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
        try updateInput(try FieldReader(body: body))
    }

    private static func updateInput(_ fields: FieldReader) throws(GatewayError) -> UpdateWorkerInput {
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

    /// `PATCH /workers/{id}`: smg 1.x's `WorkerUpdateRequest` (`priority`, `cost`,
    /// `labels` merged, `api_key`, `health: {timeout_secs, check_interval_secs,
    /// success_threshold, failure_threshold, disable_health_check}`) plus this gateway's
    /// `max_load`, `health.endpoint` and the flat health names PUT takes. A setting
    /// given both ways is refused rather than guessed.
    static func patchInput(from body: some Collection<UInt8>) throws(GatewayError) -> UpdateWorkerInput {
        let fields = try FieldReader(body: body)
        var input = try updateInput(fields)
        guard let value = fields.object["health"], value != .null else { return input }
        guard let object = value.objectValue else { throw .invalidField("health", "must be an object, got \(value.typeDescription)") }
        let health = FieldReader(object: object)
        let limit: ClosedRange<Int64> = 1...86_400
        let nested: HealthCheckChange
        do {
            nested = HealthCheckChange(
                timeout: try health.integer("timeout_secs", in: limit).map { .seconds($0) },
                interval: try health.integer("check_interval_secs", in: limit).map { .seconds($0) },
                failureThreshold: try health.integer("failure_threshold", in: 1...1000).map { Int($0) },
                successThreshold: try health.integer("success_threshold", in: 1...1000).map { Int($0) },
                endpoint: try health.string("endpoint"),
                disabled: try health.bool("disable_health_check")
            )
        } catch {
            // Name the field as the client wrote it: `health.timeout_secs`.
            var named = error
            if named.message.hasPrefix("field '") { named.message = "field 'health." + named.message.dropFirst("field '".count) }
            throw named
        }
        let flat = input.healthCheck
        let pairs: [(String, Bool, Bool)] = [
            ("timeout_secs", nested.timeout != nil, flat.timeout != nil),
            ("check_interval_secs", nested.interval != nil, flat.interval != nil),
            ("failure_threshold", nested.failureThreshold != nil, flat.failureThreshold != nil),
            ("success_threshold", nested.successThreshold != nil, flat.successThreshold != nil),
            ("endpoint", nested.endpoint != nil, flat.endpoint != nil),
            ("disable_health_check", nested.disabled != nil, flat.disabled != nil),
        ]
        for (name, inHealth, atTop) in pairs where inHealth && atTop {
            throw .invalidField("health.\(name)", "is also given as a top-level health field; give it once")
        }
        input.healthCheck = HealthCheckChange(
            timeout: nested.timeout ?? flat.timeout, interval: nested.interval ?? flat.interval,
            failureThreshold: nested.failureThreshold ?? flat.failureThreshold,
            successThreshold: nested.successThreshold ?? flat.successThreshold,
            endpoint: nested.endpoint ?? flat.endpoint, disabled: nested.disabled ?? flat.disabled
        )
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
