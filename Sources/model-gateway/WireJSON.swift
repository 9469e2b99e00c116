import GatewayJSON
import GatewayWire

/// Binary-protocol replies as the REST API's JSON: same field names, same order, same
/// value spellings, so `--rest` and binary output agree on every field both carry.
enum WireJSON {
    /// WorkerInfo as `GET /workers/{id}` shows it.
    static func worker(_ worker: Wire.WorkerInfo) -> JSONValue {
        var json = JSONObject()
        json["id"] = .string(worker.id)
        json["url"] = .string(worker.url)
        json["model_id"] = .string(worker.modelID)
        json["priority"] = .int(Int64(worker.priority))
        json["cost"] = .double(worker.cost)
        json["worker_type"] = .string(name(worker.workerType))
        json["is_healthy"] = .bool(worker.isHealthy)
        json["status"] = .string(name(worker.status))
        json["load"] = .int(Int64(clamping: worker.load))
        json["connection_mode"] = .string(worker.connectionMode)
        json["runtime_type"] = .string(name(worker.runtimeType))
        if let port = worker.bootstrapPort { json["bootstrap_port"] = .int(Int64(port)) }
        json["metadata"] = map(worker.metadata)
        json["labels"] = map(worker.labels)
        if let health = worker.healthCheck {
            if let disabled = health.disabled { json["disable_health_check"] = .bool(disabled) }
            var settings = JSONObject()
            if let v = health.timeoutSecs { settings["timeout_secs"] = .int(Int64(v)) }
            if let v = health.intervalSecs { settings["interval_secs"] = .int(Int64(v)) }
            if let v = health.failureThreshold { settings["failure_threshold"] = .int(Int64(v)) }
            if let v = health.successThreshold { settings["success_threshold"] = .int(Int64(v)) }
            if let v = health.endpoint { settings["endpoint"] = .string(v) }
            json["health_check"] = .object(settings)
        }
        json["has_api_key"] = .bool(worker.hasAPIKey)
        if let maxLoad = worker.maxLoad { json["max_load"] = .int(Int64(maxLoad)) }
        if !worker.circuitBreaker.isEmpty { json["circuit_breaker"] = .string(worker.circuitBreaker) }
        if let job = worker.jobStatus {
            var status: JSONObject = [
                "job_type": .string(name(job.jobType)),
                "worker_url": .string(job.workerURL),
                "status": .string(name(job.status)),
                "message": .string(job.message),
                "timestamp": .int(job.timestamp),
            ]
            if job.status == .draining { status["in_flight"] = .int(Int64(clamping: job.inFlight)) }
            json["job_status"] = .object(status)
        }
        return .object(json)
    }

    /// `GET /workers`.
    static func workerList(_ reply: Wire.ListWorkersReply) -> JSONValue {
        let stats = reply.stats ?? Wire.WorkerStats()
        return .object([
            "workers": .array(reply.workers.map(worker)),
            "total": .int(Int64(reply.total)),
            "stats": .object([
                "prefill_count": .int(Int64(stats.prefillCount)),
                "decode_count": .int(Int64(stats.decodeCount)),
                "regular_count": .int(Int64(stats.regularCount)),
            ]),
        ])
    }

    /// `POST /workers`.
    static func added(_ reply: Wire.AddWorkerReply) -> JSONValue {
        .object([
            "status": .string(reply.status),
            "worker_id": .string(reply.workerID),
            "url": .string(reply.url),
            "location": .string(reply.location),
            "message": .string(reply.message),
        ])
    }

    /// `PUT` and `PATCH /workers/{id}`.
    static func accepted(_ reply: Wire.AcceptedReply) -> JSONValue {
        .object([
            "status": .string(reply.status),
            "worker_id": .string(reply.workerID),
            "message": .string(reply.message),
        ])
    }

    /// `DELETE /workers/{id}`.
    static func removed(_ reply: Wire.AcceptedReply) -> JSONValue {
        .object([
            "status": .string(reply.status),
            "worker_id": .string(reply.workerID),
            "message": .string(reply.message),
            "worker_status": .string(reply.workerStatus == .draining ? "draining" : "removed"),
            "in_flight": .int(Int64(clamping: reply.inFlight)),
        ])
    }

    /// `GET /v1/models` (the REST answer also carries `created`).
    static func models(_ reply: Wire.ListModelsReply) -> JSONValue {
        .object([
            "object": .string("list"),
            "data": .array(
                reply.models.map { model in
                    .object([
                        "id": .string(model.id),
                        "object": .string("model"),
                        "owned_by": .string("model-gateway"),
                        "workers": .int(Int64(model.workerCount)),
                        "healthy_workers": .int(Int64(model.healthyWorkerCount)),
                    ])
                }
            ),
        ])
    }

    /// A generation's result (the REST mode builds the same value from the OpenAI answer).
    static func result(_ result: Wire.GenerateResult) -> JSONValue {
        var json = JSONObject()
        json["text"] = .string(result.text)
        if !result.tokenIDs.isEmpty { json["token_ids"] = .array(result.tokenIDs.map { .int(Int64($0)) }) }
        json["finish_reason"] = .string(result.finishReason)
        if let usage = result.usage { json["usage"] = Self.usage(usage) }
        json["model"] = .string(result.model)
        json["worker_id"] = .string(result.workerID)
        json["request_id"] = .string(result.requestID)
        return .object(json)
    }

    static func usage(_ usage: Wire.Usage) -> JSONValue {
        .object([
            "prompt_tokens": .int(Int64(usage.promptTokens)),
            "completion_tokens": .int(Int64(usage.completionTokens)),
            "total_tokens": .int(Int64(usage.totalTokens)),
        ])
    }

    /// A string map with sorted keys, as the REST API writes it.
    static func map(_ map: [String: String]) -> JSONValue {
        var json = JSONObject()
        for key in map.keys.sorted() { json[key] = .string(map[key]!) }
        return .object(json)
    }

    // MARK: Enum spellings (the REST API's)

    static func name(_ type: Wire.WorkerType) -> String {
        switch type {
        case .regular: "regular"
        case .prefill: "prefill"
        case .decode: "decode"
        case .unspecified: "unspecified"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }

    static func name(_ type: Wire.RuntimeType) -> String {
        switch type {
        case .sglang: "sglang"
        case .openai: "openai"
        case .unspecified: "unknown"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }

    static func name(_ type: Wire.JobType) -> String {
        switch type {
        case .addWorker: "AddWorker"
        case .updateWorker: "UpdateWorker"
        case .removeWorker: "RemoveWorker"
        case .unspecified: "unspecified"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }

    static func name(_ state: Wire.JobState) -> String {
        switch state {
        case .pending: "pending"
        case .processing: "processing"
        case .failed: "failed"
        case .draining: "draining"
        case .unspecified: "unspecified"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }

    static func name(_ status: Wire.WorkerStatus) -> String {
        switch status {
        case .pending: "pending"
        case .ready: "ready"
        case .notReady: "not_ready"
        case .failed: "failed"
        case .draining: "draining"
        case .unspecified: "unspecified"
        case .unrecognized(let value): "unknown(\(value))"
        }
    }
}
