import GatewayWire

/// Hand-encoding of protobuf wire bytes, to craft payloads the Swift API cannot build.
enum Proto {
    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    static func key(_ field: UInt64, wireType: UInt64) -> [UInt8] { varint(field << 3 | wireType) }

    static func varintField(_ field: UInt64, _ value: UInt64) -> [UInt8] { key(field, wireType: 0) + varint(value) }

    static func bytesField(_ field: UInt64, _ bytes: [UInt8]) -> [UInt8] {
        key(field, wireType: 2) + varint(UInt64(bytes.count)) + bytes
    }

    static func fixed64Field(_ field: UInt64, _ value: UInt64) -> [UInt8] {
        key(field, wireType: 1) + (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func fixed32Field(_ field: UInt64, _ value: UInt32) -> [UInt8] {
        key(field, wireType: 5) + (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

/// The first index where `needle` occurs in `haystack`.
func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return start
    }
    return nil
}

/// One envelope per string field of every message, with `s` in that field (for
/// round-trip, UTF-8 validation and NUL tests that must cover every string).
func stringFieldCases(_ s: String) -> [(field: String, envelope: Wire.Envelope)] {
    func env(_ body: Wire.Envelope.Body) -> Wire.Envelope { Wire.Envelope(streamID: 9, body: body) }
    func listed(_ info: Wire.WorkerInfo) -> Wire.Envelope { env(.listWorkersReply(.init(workers: [Wire.WorkerInfo(id: "first"), info]))) }
    return [
        ("Hello.api_key", env(.hello(.init(apiKey: s)))),
        ("Hello.client_name", env(.hello(.init(clientName: s)))),
        ("HelloReply.server_name", env(.helloReply(.init(serverName: s)))),
        ("GoAway.reason", env(.goAway(.init(reason: s)))),
        ("Error.code", env(.error(.init(code: s)))),
        ("Error.message", env(.error(.init(message: s)))),
        ("AddWorkerRequest.url", env(.addWorker(.init(url: s)))),
        ("AddWorkerRequest.model_id", env(.addWorker(.init(modelID: s)))),
        ("AddWorkerRequest.labels key", env(.addWorker(.init(labels: ["a": "1", s: "v", "z": "2"])))),
        ("AddWorkerRequest.labels value", env(.addWorker(.init(labels: ["a": "1", "k": s, "z": "2"])))),
        ("AddWorkerRequest.api_key", env(.addWorker(.init(apiKey: s)))),
        ("AddWorkerRequest.health_check.endpoint", env(.addWorker(.init(healthCheck: .init(endpoint: s))))),
        ("AddWorkerReply.status", env(.addWorkerReply(.init(status: s)))),
        ("AddWorkerReply.worker_id", env(.addWorkerReply(.init(workerID: s)))),
        ("AddWorkerReply.url", env(.addWorkerReply(.init(url: s)))),
        ("AddWorkerReply.location", env(.addWorkerReply(.init(location: s)))),
        ("AddWorkerReply.message", env(.addWorkerReply(.init(message: s)))),
        ("WorkerInfo.id", listed(.init(id: s))),
        ("WorkerInfo.url", listed(.init(url: s))),
        ("WorkerInfo.model_id", listed(.init(modelID: s))),
        ("WorkerInfo.connection_mode", listed(.init(connectionMode: s))),
        ("WorkerInfo.metadata key", listed(.init(metadata: [s: "v", "other": "x"]))),
        ("WorkerInfo.metadata value", listed(.init(metadata: ["k": s, "other": "x"]))),
        ("WorkerInfo.job_status.worker_url", listed(.init(jobStatus: .init(workerURL: s)))),
        ("WorkerInfo.job_status.message", listed(.init(jobStatus: .init(message: s)))),
        ("WorkerInfo.labels key", listed(.init(labels: [s: "v"]))),
        ("WorkerInfo.labels value", listed(.init(labels: ["k": s]))),
        ("WorkerInfo.health_check.endpoint", listed(.init(healthCheck: .init(endpoint: s)))),
        ("GetWorkerRequest.worker_id", env(.getWorker(.init(workerID: s)))),
        ("GetWorkerReply.worker.url", env(.getWorkerReply(.init(worker: .init(url: s))))),
        ("UpdateWorkerRequest.worker_id", env(.updateWorker(.init(workerID: s)))),
        ("UpdateWorkerRequest.labels key", env(.updateWorker(.init(labels: [s: "v", "b": ""])))),
        ("UpdateWorkerRequest.labels value", env(.updateWorker(.init(labels: ["k": s, "b": ""])))),
        ("UpdateWorkerRequest.api_key", env(.updateWorker(.init(apiKey: s)))),
        ("UpdateWorkerRequest.health_check.endpoint", env(.updateWorker(.init(healthCheck: .init(endpoint: s))))),
        ("UpdateWorkerReply.status", env(.updateWorkerReply(.init(status: s)))),
        ("UpdateWorkerReply.worker_id", env(.updateWorkerReply(.init(workerID: s)))),
        ("UpdateWorkerReply.message", env(.updateWorkerReply(.init(message: s)))),
        ("RemoveWorkerRequest.worker_id", env(.removeWorker(.init(workerID: s)))),
        ("RemoveWorkerReply.status", env(.removeWorkerReply(.init(status: s)))),
        ("RemoveWorkerReply.worker_id", env(.removeWorkerReply(.init(workerID: s)))),
        ("RemoveWorkerReply.message", env(.removeWorkerReply(.init(message: s)))),
        ("ModelInfo.id", env(.listModelsReply(.init(models: [.init(id: "m0"), .init(id: s)])))),
        ("HealthReply.status", env(.healthReply(.init(status: s)))),
        ("GenerateRequest.model", env(.generate(.init(model: s)))),
        ("GenerateRequest.text", env(.generate(.init(input: .text(s))))),
        ("ChatMessage.role", env(.generate(.init(input: .chat([.init(role: "system"), .init(role: s)]))))),
        ("ChatMessage.content", env(.generate(.init(input: .chat([.init(content: s)]))))),
        ("ChatMessage.name", env(.generate(.init(input: .chat([.init(name: s)]))))),
        ("SamplingParams.stop", env(.generate(.init(sampling: .init(stop: ["first", s, "last"]))))),
        ("GenerateRequest.routing_key", env(.generate(.init(routingKey: s)))),
        ("GenerateRequest.request_id", env(.generate(.init(requestID: s)))),
        ("GenerateChunk.text", env(.generateChunk(.init(text: s)))),
        ("GenerateResult.text", env(.generateResult(.init(text: s)))),
        ("GenerateResult.finish_reason", env(.generateResult(.init(finishReason: s)))),
        ("GenerateResult.model", env(.generateResult(.init(model: s)))),
        ("GenerateResult.worker_id", env(.generateResult(.init(workerID: s)))),
        ("GenerateResult.request_id", env(.generateResult(.init(requestID: s)))),
    ]
}
