import Foundation
import Testing
import NIOCore
import NIOEmbedded
import GatewayWire

// Golden vectors: the exact frame bytes (5-byte header + Envelope payload) of one
// representative envelope per body kind, committed as lowercase hex, one single line
// per file, in Tests/GatewayWireTests/Vectors/<kind>.hex (<kind> is the proto field
// name of the Envelope body: add_worker.hex, generate_result.hex, ...).
//
// They pin the wire format: any change to the proto, to protobuf-c or to the Swift
// conversions that changes a single byte fails here. The same files are checked by
// the Python conformance suite (conformance/vectors.py), which builds the same values
// with Google's protobuf runtime and requires the same bytes, so they are the
// cross-language contract.
//
// The values are deterministic: maps (packed sorted by key), optional fields present
// with zero values and absent, negative int32, 64-bit varints, packed repeated
// fields, non-ASCII strings. No map holds an empty key or value: protobuf-c omits
// such an entry field while other runtimes write it, so those bytes would not be
// canonical across languages (both decode them the same; the live suite covers it).
//
// To change the wire format on purpose, regenerate and review the diff:
//
//     REGENERATE_VECTORS=1 swift test --filter GoldenVectorTests
//
// Without REGENERATE_VECTORS=1 a difference FAILS and nothing is written.

/// Where the vector files live, found from this source file (no bundle resources).
private let vectorDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()
    .appendingPathComponent("Vectors", isDirectory: true)

private let regenerating = ProcessInfo.processInfo.environment["REGENERATE_VECTORS"] == "1"

/// The proto field name of a body case (exhaustive: a new case does not compile until named here).
func protoKindName(_ body: Wire.Envelope.Body) -> String {
    switch body {
    case .hello: "hello"
    case .helloReply: "hello_reply"
    case .ping: "ping"
    case .pong: "pong"
    case .cancel: "cancel"
    case .goAway: "go_away"
    case .error: "error"
    case .addWorker: "add_worker"
    case .addWorkerReply: "add_worker_reply"
    case .listWorkers: "list_workers"
    case .listWorkersReply: "list_workers_reply"
    case .getWorker: "get_worker"
    case .getWorkerReply: "get_worker_reply"
    case .updateWorker: "update_worker"
    case .updateWorkerReply: "update_worker_reply"
    case .removeWorker: "remove_worker"
    case .removeWorkerReply: "remove_worker_reply"
    case .listModels: "list_models"
    case .listModelsReply: "list_models_reply"
    case .health: "health"
    case .healthReply: "health_reply"
    case .generate: "generate"
    case .generateChunk: "generate_chunk"
    case .generateResult: "generate_result"
    }
}

private let goldenWorkerID = "3f2b8c1e-9a47-4d2e-b6f1-0c5d7e8a9b10"

private let goldenWorker = Wire.WorkerInfo(
    id: goldenWorkerID,
    url: "http://10.0.0.7:30000",
    modelID: "qwen/Qwen2.5-7B-Instruct",
    priority: 80,
    cost: 1.75,
    workerType: .prefill,
    isHealthy: true,
    load: 1 << 40,
    connectionMode: "HTTP",
    runtimeType: .sglang,
    bootstrapPort: 0,
    metadata: ["max_total_tokens": "8192", "version": "0.4.1", "ünï": "cødé 😀"],
    jobStatus: Wire.JobStatus(jobType: .updateWorker, workerURL: "http://10.0.0.7:30000", status: .processing, message: "probing…", timestamp: 1_700_000_123),
    labels: ["gpu": "h100", "zone": "eu-west-1b", "ключ": "значение"],
    healthCheck: Wire.HealthCheckSettings(timeoutSecs: 5, intervalSecs: 60, failureThreshold: 3, successThreshold: 2, endpoint: "/health", disabled: false),
    hasAPIKey: true,
    circuitBreaker: "closed",
    maxLoad: 256
)

/// One envelope per body kind, named by the proto field of the body: the golden values.
/// conformance/vectors.py builds the same values in Python; change both together.
let goldenVectors: [(name: String, envelope: Wire.Envelope)] = [
    ("hello", Wire.Envelope(streamID: 0, body: .hello(.init(protocolVersion: 1, apiKey: "sk-tëst-🔑", clientName: "conformance/1.0 (日本語)")))),
    ("hello_reply", Wire.Envelope(streamID: 0, body: .helloReply(.init(
        protocolVersion: 1, serverName: "model-gateway ✓", maxFrameBytes: 4_194_304, maxConcurrentStreams: 100
    )))),
    ("ping", Wire.Envelope(streamID: 0, body: .ping(nonce: 0x0123_4567_89AB_CDEF))),
    ("pong", Wire.Envelope(streamID: 0, body: .pong(nonce: .max))),
    ("cancel", Wire.Envelope(streamID: 7, body: .cancel)),
    ("go_away", Wire.Envelope(streamID: 0, body: .goAway(.init(reason: "server shutting down — bye", lastStreamID: 4_294_967_297)))),
    ("error", Wire.Envelope(streamID: 300, body: .error(.init(code: "WORKER_NOT_FOUND", message: "worker 'ünï' not found", httpStatus: 404)))),
    ("add_worker", Wire.Envelope(streamID: 1, body: .addWorker(.init(
        url: "http://10.0.0.7:30000", modelID: "qwen/Qwen2.5-7B-Instruct", priority: 0, cost: 2.5,
        labels: ["zone": "eu-west-1b", "gpu": "a100", "ключ": "значение", "tier": "gold"],
        workerType: .decode, runtimeType: .openai, bootstrapPort: 8998, apiKey: "sk-worker", disableHealthCheck: true,
        healthCheck: .init(timeoutSecs: 5, intervalSecs: 0, failureThreshold: 3, successThreshold: nil, endpoint: "/health", disabled: false),
        maxLoad: 64
    )))),
    ("add_worker_reply", Wire.Envelope(streamID: 1, body: .addWorkerReply(.init(
        status: "accepted", workerID: goldenWorkerID, url: "http://10.0.0.7:30000", location: "/workers/\(goldenWorkerID)",
        message: "Worker addition queued for background processing"
    )))),
    ("list_workers", Wire.Envelope(streamID: 2, body: .listWorkers(.init()))),
    ("list_workers_reply", Wire.Envelope(streamID: 3, body: .listWorkersReply(.init(
        workers: [
            goldenWorker,
            Wire.WorkerInfo(
                id: "w2", url: "http://[::1]:9000", modelID: "sim-model", priority: 50, cost: -0.25, workerType: .regular,
                isHealthy: false, load: 0, connectionMode: "HTTP", runtimeType: .unrecognized(7)
            ),
        ],
        total: 2, stats: .init(prefillCount: 1, decodeCount: 0, regularCount: 1)
    )))),
    ("get_worker", Wire.Envelope(streamID: 4, body: .getWorker(.init(workerID: goldenWorkerID)))),
    ("get_worker_reply", Wire.Envelope(streamID: 5, body: .getWorkerReply(.init(worker: goldenWorker)))),
    ("update_worker", Wire.Envelope(streamID: 6, body: .updateWorker(.init(
        workerID: goldenWorkerID, priority: 42, cost: nil, labels: ["zone": "b", "new": "yes"], apiKey: "",
        healthCheck: .init(intervalSecs: 10, disabled: true), maxLoad: 0
    )))),
    ("update_worker_reply", Wire.Envelope(streamID: 6, body: .updateWorkerReply(.init(
        status: "accepted", workerID: goldenWorkerID, message: "Worker update applied"
    )))),
    ("remove_worker", Wire.Envelope(streamID: 8, body: .removeWorker(.init(workerID: goldenWorkerID)))),
    ("remove_worker_reply", Wire.Envelope(streamID: 8, body: .removeWorkerReply(.init(
        status: "accepted", workerID: goldenWorkerID, message: "Worker removal queued"
    )))),
    ("list_models", Wire.Envelope(streamID: 9, body: .listModels)),
    ("list_models_reply", Wire.Envelope(streamID: 10, body: .listModelsReply(.init(models: [
        .init(id: "sim-model", workerCount: 2, healthyWorkerCount: 1),
        .init(id: "模型-ünï", workerCount: 1, healthyWorkerCount: 0),
    ])))),
    ("health", Wire.Envelope(streamID: 11, body: .health)),
    ("health_reply", Wire.Envelope(streamID: 11, body: .healthReply(.init(status: "ok", healthyWorkers: 2, totalWorkers: 3)))),
    ("generate", Wire.Envelope(streamID: 12, body: .generate(.init(
        model: "sim-model",
        input: .chat([
            .init(role: "system", content: "You are terse.", name: ""),
            .init(role: "user", content: "Grüße 👋", name: "alice"),
        ]),
        sampling: .init(
            maxTokens: 16, temperature: 0.75, topP: 0.5, topK: -1, seed: 42, stop: ["\n\n", "END"],
            frequencyPenalty: 0, presencePenalty: -1.5, ignoreEOS: true
        ),
        stream: true, routingKey: "user-1234", requestID: "req-ü-1"
    )))),
    ("generate_chunk", Wire.Envelope(streamID: 12, body: .generateChunk(.init(
        text: " tok3 ✨", tokenIDs: [1, 127, 128, 300, 65535, .max], index: 3
    )))),
    ("generate_result", Wire.Envelope(streamID: 12, body: .generateResult(.init(
        text: "Hello, wörld! 🌍", tokenIDs: [15496, 11], finishReason: "length",
        usage: .init(promptTokens: 12, completionTokens: 4, totalTokens: 16),
        model: "sim-model", workerID: goldenWorkerID, requestID: "req-ü-1"
    )))),
]

private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

private struct VectorFileError: Error, CustomStringConvertible {
    let description: String
}

/// The bytes of a vector file: one line of lowercase hex (a trailing newline is allowed).
private func unhex(_ text: String, file: String) throws -> [UInt8] {
    let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
    let chars = Array(trimmed.utf8)
    guard chars.count % 2 == 0 else { throw VectorFileError(description: "\(file): odd number of hex digits") }
    func value(_ c: UInt8) throws -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: throw VectorFileError(description: "\(file): not one line of lowercase hex (byte 0x\(String(c, radix: 16)))")
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var index = 0
    while index < chars.count {
        out.append(try value(chars[index]) << 4 | value(chars[index + 1]))
        index += 2
    }
    return out
}

/// The committed frame bytes of vector `name`, or nil when the file does not exist.
private func committedFrame(_ name: String) throws -> [UInt8]? {
    let url = vectorDirectory.appendingPathComponent("\(name).hex")
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    return try unhex(try String(contentsOf: url, encoding: .utf8), file: "Vectors/\(name).hex")
}

/// The frame of `envelope`, as `Frame.encode` makes it.
private func frame(_ envelope: Wire.Envelope) throws -> [UInt8] {
    Array(try Frame.encode(envelope).readableBytesView)
}

@Suite("Golden vectors")
struct GoldenVectorTests {
    @Test func oneVectorPerBodyKind() {
        let names = goldenVectors.map(\.name)
        #expect(Set(names).count == names.count, "duplicate vector names")
        #expect(names.count == 24, "Wire.Envelope.Body has 24 cases; every one needs a vector")
        for (name, envelope) in goldenVectors {
            guard let body = envelope.body else {
                Issue.record("\(name): a vector needs a body")
                continue
            }
            #expect(protoKindName(body) == name, "vector \(name) holds a \(protoKindName(body)) body")
        }
    }

    @Test func theVectorDirectoryHoldsExactlyTheVectors() throws {
        if regenerating { try FileManager.default.createDirectory(at: vectorDirectory, withIntermediateDirectories: true) }
        let files = try FileManager.default.contentsOfDirectory(atPath: vectorDirectory.path).filter { !$0.hasPrefix(".") }.sorted()
        let expected = goldenVectors.map { "\($0.name).hex" }.sorted()
        #expect(Set(files).subtracting(expected).isEmpty, "stray files in \(vectorDirectory.path): \(Set(files).subtracting(expected).sorted())")
        // While regenerating, the per-vector tests are writing the files concurrently.
        if !regenerating {
            #expect(files == expected, "missing files in \(vectorDirectory.path): \(Set(expected).subtracting(files).sorted())")
        }
    }

    /// Encoding the value gives the committed bytes exactly; the committed bytes decode to the value.
    @Test(arguments: goldenVectors.map(\.name))
    func vectorMatchesItsValue(name: String) throws {
        let envelope = try #require(goldenVectors.first { $0.name == name }?.envelope)
        let encoded = try frame(envelope)
        let path = "Tests/GatewayWireTests/Vectors/\(name).hex"

        var committed = try committedFrame(name)
        if regenerating && committed != encoded {
            try FileManager.default.createDirectory(at: vectorDirectory, withIntermediateDirectories: true)
            try (hex(encoded) + "\n").write(to: vectorDirectory.appendingPathComponent("\(name).hex"), atomically: true, encoding: .utf8)
            print("golden vectors: wrote \(path) (\(encoded.count) bytes)")
            committed = encoded
        }
        guard let committed else {
            Issue.record("\(path) is missing; create it with REGENERATE_VECTORS=1 swift test --filter GoldenVectorTests")
            return
        }

        // 1. The Swift encoder produces the committed bytes, byte for byte.
        if committed != encoded {
            let firstDifference = Array(zip(committed, encoded)).firstIndex { $0 != $1 } ?? min(committed.count, encoded.count)
            Issue.record("""
                \(path): encoding differs from the committed frame at byte \(firstDifference) \
                (committed \(committed.count) bytes, encoded \(encoded.count)).
                committed: \(hex(committed))
                encoded:   \(hex(encoded))
                If the wire format change is intended: REGENERATE_VECTORS=1 swift test --filter GoldenVectorTests, review, commit.
                """)
        }

        // 2. The committed frame is well formed: no flags, the length is the payload's.
        try #require(committed.count >= Frame.headerSize, "\(path) is shorter than a frame header")
        #expect(committed[0] == 0, "\(path): flag byte \(committed[0])")
        let length = committed[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(Int(length) == committed.count - Frame.headerSize, "\(path): header length \(length), payload \(committed.count - 5) bytes")

        // 3. The committed bytes decode, through the frame decoder, to the value.
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayloadBytes: Frame.defaultMaxPayloadBytes)))
        try channel.writeInbound(ByteBuffer(bytes: committed))
        let payload = try #require(try channel.readInbound(as: ByteBuffer.self), "\(path): the frame decoder yielded nothing")
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "\(path): more than one frame")
        #expect(try channel.finish().isClean)
        let decoded = try Wire.Envelope(payload: payload)
        #expect(decoded == envelope, "\(path) decodes to \(decoded)")

        // 4. And re-encode to the same bytes (canonical form).
        #expect(try frame(decoded) == committed, "\(path): decode + encode is not the identity")
    }

    /// All vectors back to back decode as a stream of frames (what a peer sends on one connection).
    @Test func allVectorsAsOneByteStream() throws {
        var stream: [UInt8] = []
        for (name, _) in goldenVectors {
            stream += try #require(try committedFrame(name), "Vectors/\(name).hex is missing")
        }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayloadBytes: Frame.defaultMaxPayloadBytes)))
        // Uneven pieces, so frames straddle reads.
        var offset = 0
        var step = 1
        while offset < stream.count {
            let end = min(stream.count, offset + step)
            try channel.writeInbound(ByteBuffer(bytes: stream[offset..<end]))
            offset = end
            step = step * 3 % 97 + 1
        }
        var decoded: [Wire.Envelope] = []
        while let payload = try channel.readInbound(as: ByteBuffer.self) {
            decoded.append(try Wire.Envelope(payload: payload))
        }
        #expect(decoded == goldenVectors.map(\.envelope))
        #expect(try channel.finish().isClean)
    }
}

/// Strings on the wire that the C structs cannot represent faithfully.
///
/// protobuf-c stores a decoded string as a NUL-terminated `char *` without its length,
/// so a string field holding a 0x00 byte comes out cut at the NUL, and the bytes after
/// it are never UTF-8 validated (`CRead.string` uses `String(validatingCString:)`).
/// The encoder refuses NUL (`WireError.embeddedNUL`); the decoder must refuse it too
/// (a payload error → MALFORMED_PAYLOAD on that stream) instead of silently handing
/// the server a different value.
@Suite("Wire strings with NUL bytes")
struct WireNULDecodingTests {
    /// Envelope{stream_id: 5, get_worker: GetWorkerRequest{worker_id: <bytes>}}
    private func getWorker(_ workerID: [UInt8]) -> [UInt8] {
        Proto.varintField(1, 5) + Proto.bytesField(24, Proto.bytesField(1, workerID))
    }

    @Test func embeddedNULIsRefusedNotTruncated() throws {
        let payload = getWorker(Array("abc".utf8) + [0x00] + Array("def".utf8))
        do {
            let decoded = try Wire.Envelope(serializedBytes: payload)
            Issue.record("""
                a worker_id of \"abc\\0def\" (7 bytes) decoded as \(decoded.body.map { "\($0)" } ?? "nil"): \
                the string was silently truncated at the NUL. Expected a WireError (.embeddedNUL or .malformedPayload).
                """)
        } catch {
            #expect(error.kind == .embeddedNUL || error.kind == .malformedPayload || error.kind == .invalidUTF8, "\(error)")
        }
    }

    @Test func invalidUTF8AfterANULIsRefused() throws {
        // "ok\0\xFF": not UTF-8 (0xFF never is); docs/binary-protocol.md promises MALFORMED_PAYLOAD.
        let payload = getWorker(Array("ok".utf8) + [0x00, 0xFF])
        do {
            let decoded = try Wire.Envelope(serializedBytes: payload)
            Issue.record("a worker_id of \"ok\\0\\xFF\" (invalid UTF-8) decoded as \(decoded.body.map { "\($0)" } ?? "nil")")
        } catch {
            #expect(error.kind == .invalidUTF8 || error.kind == .embeddedNUL || error.kind == .malformedPayload, "\(error)")
        }
    }
}
