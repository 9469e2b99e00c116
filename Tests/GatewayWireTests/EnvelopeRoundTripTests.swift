import Testing
import NIOCore
import GatewayWire

private func roundTrip(_ envelope: Wire.Envelope) throws -> Wire.Envelope {
    try Wire.Envelope(serializedBytes: try envelope.serializedBytes())
}

private let fullHealthCheck = Wire.HealthCheckSettings(
    timeoutSecs: 7, intervalSecs: 30, failureThreshold: 4, successThreshold: 2, endpoint: "/health?full=1", disabled: true
)
/// Every optional present, with the zero value: presence must survive.
private let zeroHealthCheck = Wire.HealthCheckSettings(
    timeoutSecs: 0, intervalSecs: 0, failureThreshold: 0, successThreshold: 0, endpoint: "", disabled: false
)

private let fullWorker = Wire.WorkerInfo(
    id: "123e4567-e89b-12d3-a456-426614174000",
    url: "http://10.0.0.5:8000",
    modelID: "meta-llama/Llama-3.1-8B-Instruct",
    priority: 77,
    cost: 1.25,
    workerType: .prefill,
    isHealthy: true,
    load: UInt64.max,
    connectionMode: "http",
    runtimeType: .sglang,
    bootstrapPort: 8998,
    metadata: ["max_total_tokens": "8192", "version": "0.4.1", "ünï": "cødé 😀", "": "empty key"],
    jobStatus: Wire.JobStatus(jobType: .addWorker, workerURL: "http://10.0.0.5:8000", status: .processing, message: "probing", timestamp: 1_700_000_000),
    labels: ["zone": "us-east-1a", "gpu": "h100", "tier": ""],
    healthCheck: fullHealthCheck,
    hasAPIKey: true, circuitBreaker: "half_open", maxLoad: 1_000_000, status: .notReady
)

/// A draining worker: job status with its in-flight count.
private let drainingWorker = Wire.WorkerInfo(
    id: "w3", url: "http://w:3", modelID: "m", workerType: .regular, load: 7, connectionMode: "HTTP", runtimeType: .openai,
    jobStatus: Wire.JobStatus(jobType: .removeWorker, workerURL: "http://w:3", status: .draining, message: "draining", timestamp: 1, inFlight: 7),
    circuitBreaker: "closed", status: .draining
)

/// Zero values in the optionals, unrecognised enum numbers, empty maps.
private let oddWorker = Wire.WorkerInfo(
    id: "w2", url: "https://[::1]:9000/prefix", modelID: "", priority: 0, cost: -0.5,
    workerType: .unrecognized(99), isHealthy: false, load: 0, connectionMode: "", runtimeType: .unrecognized(-1),
    bootstrapPort: 0, metadata: [:], jobStatus: Wire.JobStatus(jobType: .unrecognized(99), status: .unrecognized(1234), timestamp: -1),
    labels: [:], healthCheck: zeroHealthCheck, hasAPIKey: false, circuitBreaker: "", maxLoad: 0, status: .unrecognized(77)
)

/// One envelope per body case, every field set to a non-default value.
let everyBodyCase: [(name: String, envelope: Wire.Envelope)] = [
    ("hello", Wire.Envelope(streamID: 0, body: .hello(.init(protocolVersion: 3, apiKey: "sk-ключ-🔑", clientName: "client/1.0 中文")))),
    ("helloReply", Wire.Envelope(streamID: 0, body: .helloReply(.init(protocolVersion: 1, serverName: "model-gateway", maxFrameBytes: 4_194_304, maxConcurrentStreams: 128)))),
    ("ping", Wire.Envelope(streamID: 0, body: .ping(nonce: .max))),
    ("pong", Wire.Envelope(streamID: 0, body: .pong(nonce: 0xDEAD_BEEF_CAFE))),
    ("ping zero nonce", Wire.Envelope(streamID: 1, body: .ping(nonce: 0))),
    ("cancel", Wire.Envelope(streamID: 41, body: .cancel)),
    ("goAway", Wire.Envelope(streamID: 0, body: .goAway(.init(reason: "shutting down ✋", lastStreamID: UInt64.max - 1)))),
    ("error", Wire.Envelope(streamID: 3, body: .error(.init(code: "WORKER_NOT_FOUND", message: "no worker with id é", httpStatus: 404)))),
    ("addWorker full", Wire.Envelope(streamID: 5, body: .addWorker(.init(
        url: "http://10.0.0.7:30000", modelID: "qwen", priority: 90, cost: 2.5,
        labels: ["zone": "b", "gpu": "a100", "ключ": "значение", "k4": ""], workerType: .decode, runtimeType: .openai,
        bootstrapPort: 8998, apiKey: "secret", disableHealthCheck: true, healthCheck: fullHealthCheck, maxLoad: 64
    )))),
    ("addWorker zero optionals", Wire.Envelope(streamID: 6, body: .addWorker(.init(
        url: "w:1", modelID: "", priority: 0, cost: 0, labels: [:], workerType: .unrecognized(99), runtimeType: .unrecognized(99),
        bootstrapPort: 0, apiKey: "", disableHealthCheck: false, healthCheck: zeroHealthCheck, maxLoad: 0
    )))),
    ("addWorker absent optionals", Wire.Envelope(streamID: 7, body: .addWorker(.init(url: "w:2", workerType: .regular, runtimeType: .sglang)))),
    ("addWorkerReply", Wire.Envelope(streamID: 8, body: .addWorkerReply(.init(
        status: "accepted", workerID: "123e4567-e89b-12d3-a456-426614174000", url: "http://w:1",
        location: "/workers/123e4567-e89b-12d3-a456-426614174000", message: "registration queued"
    )))),
    ("listWorkers", Wire.Envelope(streamID: 9, body: .listWorkers(.init()))),
    ("listWorkers filtered", Wire.Envelope(streamID: 9, body: .listWorkers(.init(model: "m/é", status: .draining, workerType: .prefill)))),
    ("listWorkers unknown filters", Wire.Envelope(streamID: 9, body: .listWorkers(.init(status: .unrecognized(42), workerType: .unrecognized(9))))),
    ("listWorkersReply", Wire.Envelope(streamID: 10, body: .listWorkersReply(.init(
        workers: [fullWorker, oddWorker, drainingWorker, Wire.WorkerInfo()], total: 4, stats: .init(prefillCount: 1, decodeCount: 2, regularCount: 3)
    )))),
    ("listWorkersReply zero stats", Wire.Envelope(streamID: 11, body: .listWorkersReply(.init(workers: [], total: 0, stats: .init())))),
    ("listWorkersReply no stats", Wire.Envelope(streamID: 12, body: .listWorkersReply(.init(workers: [oddWorker], total: 1, stats: nil)))),
    ("getWorker", Wire.Envelope(streamID: 13, body: .getWorker(.init(workerID: "abc")))),
    ("getWorkerReply", Wire.Envelope(streamID: 14, body: .getWorkerReply(.init(worker: fullWorker)))),
    ("getWorkerReply empty worker", Wire.Envelope(streamID: 15, body: .getWorkerReply(.init(worker: Wire.WorkerInfo())))),
    ("getWorkerReply no worker", Wire.Envelope(streamID: 16, body: .getWorkerReply(.init(worker: nil)))),
    ("updateWorker full", Wire.Envelope(streamID: 17, body: .updateWorker(.init(
        workerID: "w", priority: 5, cost: 0.125, labels: ["add": "x", "remove": "", "é": "ü"], apiKey: "new-key", healthCheck: fullHealthCheck, maxLoad: 32
    )))),
    ("updateWorker zero optionals", Wire.Envelope(streamID: 18, body: .updateWorker(.init(
        workerID: "w", priority: 0, cost: 0, labels: [:], apiKey: "", healthCheck: zeroHealthCheck, maxLoad: 0
    )))),
    ("updateWorker absent optionals", Wire.Envelope(streamID: 19, body: .updateWorker(.init(workerID: "w")))),
    ("updateWorkerReply", Wire.Envelope(streamID: 20, body: .updateWorkerReply(.init(status: "accepted", workerID: "w", message: "updated")))),
    ("removeWorker", Wire.Envelope(streamID: 21, body: .removeWorker(.init(workerID: "w-to-remove")))),
    ("removeWorkerReply", Wire.Envelope(streamID: 22, body: .removeWorkerReply(.init(status: "accepted", workerID: "w", message: "removed")))),
    ("removeWorker force", Wire.Envelope(streamID: 21, body: .removeWorker(.init(workerID: "w-to-remove", force: true)))),
    ("removeWorkerReply draining", Wire.Envelope(streamID: 22, body: .removeWorkerReply(.init(
        status: "accepted", workerID: "w", message: "draining", workerStatus: .draining, inFlight: .max
    )))),
    ("listModels", Wire.Envelope(streamID: 23, body: .listModels)),
    ("listModelsReply", Wire.Envelope(streamID: 24, body: .listModelsReply(.init(models: [
        .init(id: "m1", workerCount: 3, healthyWorkerCount: 2), .init(id: "模型", workerCount: 1, healthyWorkerCount: 0), .init(),
    ])))),
    ("health", Wire.Envelope(streamID: 25, body: .health)),
    ("healthReply", Wire.Envelope(streamID: 26, body: .healthReply(.init(status: "ok", healthyWorkers: 4, totalWorkers: 5)))),
    ("generate text", Wire.Envelope(streamID: 27, body: .generate(.init(
        model: "m", input: .text("Once upon a time, 中文, emoji 😀"),
        sampling: .init(maxTokens: 128, temperature: 0.7, topP: 0.9, topK: -1, seed: UInt64.max, stop: ["\n\n", "</s>", "停"],
                        frequencyPenalty: -0.5, presencePenalty: 1.5, ignoreEOS: true),
        stream: true, routingKey: "user-42", requestID: "req-1"
    )))),
    ("generate empty text, zero sampling", Wire.Envelope(streamID: 28, body: .generate(.init(
        model: "", input: .text(""),
        sampling: .init(maxTokens: 0, temperature: 0, topP: 0, topK: 0, seed: 0, stop: [], frequencyPenalty: 0, presencePenalty: 0, ignoreEOS: false)
    )))),
    ("generate token ids", Wire.Envelope(streamID: 29, body: .generate(.init(model: "m", input: .tokenIDs([0, 1, 128_000, UInt32.max]), sampling: .init())))),
    ("generate empty token ids", Wire.Envelope(streamID: 30, body: .generate(.init(input: .tokenIDs([]))))),
    ("generate chat", Wire.Envelope(streamID: 31, body: .generate(.init(model: "chat", input: .chat([
        .init(role: "system", content: "You are terse.", name: ""),
        .init(role: "user", content: "Hi 👋", name: "alice"),
        .init(),
    ]), stream: false, requestID: "r")))),
    ("generate empty chat", Wire.Envelope(streamID: 32, body: .generate(.init(input: .chat([]))))),
    ("generate no input", Wire.Envelope(streamID: 33, body: .generate(.init(model: "m", input: nil, sampling: nil, stream: true)))),
    ("generateChunk", Wire.Envelope(streamID: 34, body: .generateChunk(.init(text: "tok ⚡", tokenIDs: [5, 6, 7], index: 2)))),
    ("generateResult", Wire.Envelope(streamID: 35, body: .generateResult(.init(
        text: "done", tokenIDs: [1, 2, 3, UInt32.max], finishReason: "stop", usage: .init(promptTokens: 10, completionTokens: 4, totalTokens: 14),
        model: "m", workerID: "w", requestID: "req-1"
    )))),
    ("generateResult zero usage", Wire.Envelope(streamID: 36, body: .generateResult(.init(usage: .init())))),
    ("no body", Wire.Envelope(streamID: 37, body: nil)),
    ("max stream id", Wire.Envelope(streamID: .max, body: .cancel)),
]

@Suite("Envelope round trips")
struct EnvelopeRoundTripTests {
    @Test(arguments: everyBodyCase.map(\.name))
    func roundTripsThroughBytes(name: String) throws {
        let envelope = try #require(everyBodyCase.first { $0.name == name }?.envelope)
        let bytes = try envelope.serializedBytes()
        let decoded = try Wire.Envelope(serializedBytes: bytes)
        #expect(decoded == envelope)
        // Packing is deterministic and stable through a round trip.
        #expect(try decoded.serializedBytes() == bytes)
        #expect(try envelope.serializedBytes() == bytes)
    }

    @Test(arguments: everyBodyCase.map(\.name))
    func roundTripsThroughAFrame(name: String) throws {
        let envelope = try #require(everyBodyCase.first { $0.name == name }?.envelope)
        var frame = try Frame.encode(envelope)
        let flagsRead = frame.readInteger(as: UInt8.self)
        let lengthRead = frame.readInteger(as: UInt32.self)
        let flags = try #require(flagsRead)
        let length = try #require(lengthRead)
        #expect(flags == 0)
        #expect(Int(length) == frame.readableBytes)
        #expect(Array(frame.readableBytesView) == (try envelope.serializedBytes()))
        #expect(try Wire.Envelope(payload: frame) == envelope)
    }

    @Test func everyBodyCaseIsCovered() {
        // Fails when a new body case is added without a round-trip sample.
        var seen = Set<String>()
        for (_, envelope) in everyBodyCase {
            guard let body = envelope.body else { continue }
            let kind: String
            switch body {
            case .hello: kind = "hello"
            case .helloReply: kind = "helloReply"
            case .ping: kind = "ping"
            case .pong: kind = "pong"
            case .cancel: kind = "cancel"
            case .goAway: kind = "goAway"
            case .error: kind = "error"
            case .addWorker: kind = "addWorker"
            case .addWorkerReply: kind = "addWorkerReply"
            case .listWorkers: kind = "listWorkers"
            case .listWorkersReply: kind = "listWorkersReply"
            case .getWorker: kind = "getWorker"
            case .getWorkerReply: kind = "getWorkerReply"
            case .updateWorker: kind = "updateWorker"
            case .updateWorkerReply: kind = "updateWorkerReply"
            case .removeWorker: kind = "removeWorker"
            case .removeWorkerReply: kind = "removeWorkerReply"
            case .listModels: kind = "listModels"
            case .listModelsReply: kind = "listModelsReply"
            case .health: kind = "health"
            case .healthReply: kind = "healthReply"
            case .generate: kind = "generate"
            case .generateChunk: kind = "generateChunk"
            case .generateResult: kind = "generateResult"
            }
            seen.insert(kind)
        }
        #expect(seen.count == 24)
    }

    @Test func presenceOfZeroValuedOptionalsSurvives() throws {
        let envelope = Wire.Envelope(streamID: 1, body: .addWorker(.init(priority: 0, cost: 0, bootstrapPort: 0, healthCheck: zeroHealthCheck)))
        guard case .addWorker(let request)? = try roundTrip(envelope).body else {
            Issue.record("wrong body")
            return
        }
        #expect(request.priority == 0)
        #expect(request.cost == 0)
        #expect(request.bootstrapPort == 0)
        #expect(request.healthCheck == zeroHealthCheck)
        #expect(request.healthCheck?.disabled == false)
        #expect(request.healthCheck?.endpoint == "")

        let absent = Wire.Envelope(streamID: 1, body: .addWorker(.init(healthCheck: Wire.HealthCheckSettings())))
        guard case .addWorker(let bare)? = try roundTrip(absent).body else {
            Issue.record("wrong body")
            return
        }
        #expect(bare.priority == nil)
        #expect(bare.cost == nil)
        #expect(bare.bootstrapPort == nil)
        #expect(bare.healthCheck == Wire.HealthCheckSettings())
        #expect(bare.healthCheck?.disabled == nil)

        let update = Wire.Envelope(streamID: 1, body: .updateWorker(.init(workerID: "w", labels: [:], apiKey: "")))
        guard case .updateWorker(let u)? = try roundTrip(update).body else {
            Issue.record("wrong body")
            return
        }
        #expect(u.labels == [:])
        #expect(u.apiKey == "")
        #expect(u.priority == nil)
        #expect(u.healthCheck == nil)

        let sampling = Wire.SamplingParams(maxTokens: 0, temperature: 0, topP: 0, topK: 0, seed: 0, frequencyPenalty: 0, presencePenalty: 0)
        guard case .generate(let g)? = try roundTrip(Wire.Envelope(streamID: 1, body: .generate(.init(input: .text(""), sampling: sampling)))).body else {
            Issue.record("wrong body")
            return
        }
        #expect(g.sampling == sampling)
        #expect(g.input == .text(""))
        #expect(g.sampling?.seed == 0)
    }

    @Test func unrecognizedEnumValuesSurvive() throws {
        let info = Wire.WorkerInfo(
            workerType: .unrecognized(99), runtimeType: .unrecognized(99),
            jobStatus: .init(jobType: .unrecognized(99), status: .unrecognized(99))
        )
        guard case .getWorkerReply(let reply)? = try roundTrip(Wire.Envelope(streamID: 2, body: .getWorkerReply(.init(worker: info)))).body else {
            Issue.record("wrong body")
            return
        }
        #expect(reply.worker?.workerType == .unrecognized(99))
        #expect(reply.worker?.workerType.rawValue == 99)
        #expect(reply.worker?.runtimeType == .unrecognized(99))
        #expect(reply.worker?.jobStatus?.jobType == .unrecognized(99))
        #expect(reply.worker?.jobStatus?.status == .unrecognized(99))
    }

    @Test func openEnumsMapRawValues() {
        #expect(Wire.WorkerType(rawValue: 2) == .prefill)
        #expect(Wire.WorkerType(rawValue: 4) == .unrecognized(4))
        #expect(Wire.RuntimeType(rawValue: 2) == .openai)
        #expect(Wire.JobType(rawValue: 3) == .removeWorker)
        #expect(Wire.JobState(rawValue: 0) == .unspecified)
        for raw: Int32 in [-7, 0, 1, 2, 3, 4, 99, .max, .min] {
            #expect(Wire.WorkerType(rawValue: raw).rawValue == raw)
            #expect(Wire.RuntimeType(rawValue: raw).rawValue == raw)
            #expect(Wire.JobType(rawValue: raw).rawValue == raw)
            #expect(Wire.JobState(rawValue: raw).rawValue == raw)
        }
    }

    @Test(arguments: stringFieldCases("ünï 中文 😀 \u{1} \u{7F}").map(\.field))
    func unicodeInEveryStringFieldRoundTrips(field: String) throws {
        let envelope = try #require(stringFieldCases("ünï 中文 😀 \u{1} \u{7F}").first { $0.field == field }?.envelope)
        #expect(try roundTrip(envelope) == envelope, "\(field)")
    }

    /// The C structs of a message are cut from slabs that grow from 1 KiB to 64 KiB;
    /// single allocations larger than a slab, and messages spanning many slabs, must
    /// come back intact.
    @Test func largeMessagesSpanningManySlabsRoundTrip() throws {
        let long = String(repeating: "abcdefghij", count: 300)  // 3,000 bytes: more than the first slab
        var workers: [Wire.WorkerInfo] = []
        for i in 0..<2_000 {
            var worker = fullWorker
            worker.id = "worker-\(i)"
            worker.url = "http://10.0.\(i / 250).\(i % 250):8000"
            worker.modelID = i % 100 == 0 ? long : "model-\(i % 7)"
            worker.metadata = ["n": String(i), "blob": i % 500 == 0 ? String(repeating: "x", count: 20_000) : "small"]
            workers.append(worker)
        }
        let envelope = Wire.Envelope(streamID: 3, body: .listWorkersReply(.init(workers: workers, total: 2_000, stats: .init(regularCount: 2_000))))
        #expect(try roundTrip(envelope) == envelope)
        let single = Wire.Envelope(streamID: 4, body: .error(.init(code: "INTERNAL", message: long, httpStatus: 500)))
        #expect(try roundTrip(single) == single)
    }

    @Test func emptyPayloadIsAnEmptyEnvelope() throws {
        #expect(try Wire.Envelope(serializedBytes: [UInt8]()) == Wire.Envelope(streamID: 0, body: nil))
        #expect(try Wire.Envelope(payload: ByteBuffer()) == Wire.Envelope(streamID: 0, body: nil))
        #expect(try Wire.Envelope(streamID: 0, body: nil).serializedBytes() == [])
    }

    @Test func mapsPackIdenticallyWhateverTheInsertionOrder() throws {
        let keys = (0..<40).map { String(format2($0)) }
        var forward: [String: String] = [:]
        for key in keys { forward[key] = "value-\(key)" }
        var backward: [String: String] = [:]
        backward.reserveCapacity(1_000)
        for key in keys.reversed() { backward[key] = "value-\(key)" }
        var churned: [String: String] = [:]
        for i in 0..<500 { churned["tmp\(i)"] = "x" }
        for key in keys.shuffled() { churned[key] = "value-\(key)" }
        for i in 0..<500 { churned["tmp\(i)"] = nil }
        #expect(forward == backward && backward == churned)

        func envelopes(_ map: [String: String]) -> [Wire.Envelope] {
            [
                Wire.Envelope(streamID: 1, body: .addWorker(.init(url: "u", labels: map))),
                Wire.Envelope(streamID: 1, body: .updateWorker(.init(workerID: "w", labels: map))),
                Wire.Envelope(streamID: 1, body: .getWorkerReply(.init(worker: .init(metadata: map, labels: map)))),
            ]
        }
        for ((a, b), c) in zip(zip(envelopes(forward), envelopes(backward)), envelopes(churned)) {
            let bytes = try a.serializedBytes()
            #expect(try b.serializedBytes() == bytes)
            #expect(try c.serializedBytes() == bytes)
            // Entries come out in key order.
            let positions = keys.sorted().map { firstIndex(of: Array("value-\($0)".utf8), in: bytes) ?? -1 }
            #expect(!positions.contains(-1))
            #expect(positions == positions.sorted())
            #expect(try Wire.Envelope(serializedBytes: bytes) == a)
        }
    }

    @Test func duplicateMapKeysOnTheWireLastWins() throws {
        // Two AddWorkerRequest.labels entries with the same key.
        let entry1 = Proto.bytesField(1, Array("k".utf8)) + Proto.bytesField(2, Array("first".utf8))
        let entry2 = Proto.bytesField(1, Array("k".utf8)) + Proto.bytesField(2, Array("second".utf8))
        let request = Proto.bytesField(5, entry1) + Proto.bytesField(5, entry2)
        let payload = Proto.varintField(1, 4) + Proto.bytesField(20, request)
        let envelope = try Wire.Envelope(serializedBytes: payload)
        #expect(envelope == Wire.Envelope(streamID: 4, body: .addWorker(.init(labels: ["k": "second"]))))
    }

    @Test func serializeIntoByteBufferMatchesBytes() throws {
        for (_, envelope) in everyBodyCase {
            var buffer = ByteBuffer(string: "prefix")
            let size = try envelope.serialize(into: &buffer)
            let bytes = try envelope.serializedBytes()
            #expect(size == bytes.count)
            #expect(buffer.readString(length: 6) == "prefix")
            #expect(Array(buffer.readableBytesView) == bytes)

            var array: [UInt8] = [1, 2, 3]
            #expect(try envelope.serialize(into: &array) == bytes.count)
            #expect(array == [1, 2, 3] + bytes)
        }
    }

    @Test func nonContiguousInputDecodes() throws {
        let envelope = everyBodyCase[0].envelope
        let bytes = try envelope.serializedBytes()
        #expect(try Wire.Envelope(serializedBytes: bytes.lazy.map { $0 }) == envelope)
        #expect(try Wire.Envelope(serializedBytes: bytes[...]) == envelope)
    }
}

private func format2(_ n: Int) -> String { n < 10 ? "key-0\(n)" : "key-\(n)" }
