import GatewayCore
import GatewayJSON

/// The REST (JSON) shapes of workers, as the reference gateway names them.
enum WorkerJSON {
    /// One WorkerInfo object.
    static func write(_ worker: Worker, now: ContinuousClock.Instant = .now, to json: inout JSONWriter) {
        json.beginObject()
        json.field("id", worker.id.description)
        json.field("url", worker.url.description)
        json.field("model_id", worker.modelID)
        json.field("priority", worker.spec.priority)
        json.field("cost", worker.spec.cost)
        json.field("worker_type", worker.spec.workerType.rawValue)
        json.field("is_healthy", worker.isHealthy(at: now))
        json.field("status", worker.status.rawValue)
        json.field("load", worker.load)
        json.field("connection_mode", "HTTP")
        json.field("runtime_type", worker.runtimeType?.rawValue ?? "unknown")
        if let port = worker.spec.bootstrapPort { json.field("bootstrap_port", port) }
        json.key("metadata")
        writeMap(worker.metadata, to: &json)
        json.key("labels")
        writeMap(worker.spec.labels, to: &json)
        json.field("disable_health_check", worker.spec.healthCheck.disabled)
        json.key("health_check")
        json.beginObject()
        json.field("timeout_secs", worker.spec.healthCheck.timeout.seconds)
        json.field("interval_secs", worker.spec.healthCheck.interval.seconds)
        json.field("failure_threshold", worker.spec.healthCheck.failureThreshold)
        json.field("success_threshold", worker.spec.healthCheck.successThreshold)
        json.field("endpoint", worker.spec.healthCheck.endpoint)
        json.endObject()
        json.field("has_api_key", worker.spec.apiKey != nil)
        if let maxLoad = worker.spec.maxLoad { json.field("max_load", maxLoad) }
        json.field("circuit_breaker", worker.handle.breakerState(at: now).rawValue)
        if let job = worker.job {
            json.key("job_status")
            json.beginObject()
            json.field("job_type", job.jobType.rawValue)
            json.field("worker_url", job.workerURL)
            json.field("status", job.state.rawValue)
            json.field("message", job.message)
            json.field("timestamp", job.timestamp)
            if job.state == .draining { json.field("in_flight", worker.load) }
            json.endObject()
        }
        json.endObject()
    }

    /// `GET /workers`.
    static func writeList(_ workers: [Worker], to json: inout JSONWriter) {
        beginList(&json)
        let now = ContinuousClock.now
        for worker in workers { write(worker, now: now, to: &json) }
        endList(workers, &json)
    }

    /// `GET /workers` in pieces: `beginList`, ``write(_:now:to:)`` per worker, `endList`.
    static func beginList(_ json: inout JSONWriter) {
        json.beginObject()
        json.key("workers")
        json.beginArray()
    }

    static func endList(_ workers: [Worker], _ json: inout JSONWriter) {
        let counts = WorkerTypeCounts(workers)
        json.endArray()
        json.field("total", workers.count)
        json.key("stats")
        json.beginObject()
        json.field("prefill_count", counts.prefill)
        json.field("decode_count", counts.decode)
        json.field("regular_count", counts.regular)
        json.endObject()
        json.endObject()
    }

    /// A string map with sorted keys (stable output).
    static func writeMap(_ map: [String: String], to json: inout JSONWriter) {
        json.beginObject()
        for key in map.keys.sorted() {
            json.field(key, map[key]!)
        }
        json.endObject()
    }
}
