import GatewayProto

// Swift <-> protobuf-c for envelope.proto, and the pack/unpack entry points.

extension Wire.Envelope {
    func make(in arena: Arena) throws(WireError) -> UnsafeMutablePointer<Modelgateway__V1__Envelope> {
        let m = arena.message(modelgateway__v1__envelope__init)
        m.pointee.stream_id = streamID
        guard let body else { return m }
        switch body {
        case .hello(let hello):
            let h = arena.message(modelgateway__v1__hello__init)
            h.pointee.protocol_version = hello.protocolVersion
            h.pointee.api_key = try arena.string(hello.apiKey, field: "Hello.api_key")
            h.pointee.client_name = try arena.string(hello.clientName, field: "Hello.client_name")
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_HELLO
            m.pointee.hello = h
        case .helloReply(let reply):
            let h = arena.message(modelgateway__v1__hello_reply__init)
            h.pointee.protocol_version = reply.protocolVersion
            h.pointee.server_name = try arena.string(reply.serverName, field: "HelloReply.server_name")
            h.pointee.max_frame_bytes = reply.maxFrameBytes
            h.pointee.max_concurrent_streams = reply.maxConcurrentStreams
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_HELLO_REPLY
            m.pointee.hello_reply = h
        case .ping(let nonce):
            let p = arena.message(modelgateway__v1__ping__init)
            p.pointee.nonce = nonce
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_PING
            m.pointee.ping = p
        case .pong(let nonce):
            let p = arena.message(modelgateway__v1__pong__init)
            p.pointee.nonce = nonce
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_PONG
            m.pointee.pong = p
        case .cancel:
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_CANCEL
            m.pointee.cancel = arena.message(modelgateway__v1__cancel__init)
        case .goAway(let goAway):
            let g = arena.message(modelgateway__v1__go_away__init)
            g.pointee.reason = try arena.string(goAway.reason, field: "GoAway.reason")
            g.pointee.last_stream_id = goAway.lastStreamID
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GO_AWAY
            m.pointee.go_away = g
        case .error(let error):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_ERROR
            m.pointee.error = try error.make(in: arena)
        case .addWorker(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_ADD_WORKER
            m.pointee.add_worker = try request.make(in: arena)
        case .addWorkerReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_ADD_WORKER_REPLY
            m.pointee.add_worker_reply = try reply.make(in: arena)
        case .listWorkers(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_LIST_WORKERS
            m.pointee.list_workers = try request.make(in: arena)
        case .listWorkersReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_LIST_WORKERS_REPLY
            m.pointee.list_workers_reply = try reply.make(in: arena)
        case .getWorker(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GET_WORKER
            m.pointee.get_worker = try request.make(in: arena)
        case .getWorkerReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GET_WORKER_REPLY
            m.pointee.get_worker_reply = try reply.make(in: arena)
        case .updateWorker(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_UPDATE_WORKER
            m.pointee.update_worker = try request.make(in: arena)
        case .updateWorkerReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_UPDATE_WORKER_REPLY
            m.pointee.update_worker_reply = try reply.makeUpdateReply(in: arena)
        case .removeWorker(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_REMOVE_WORKER
            m.pointee.remove_worker = try request.make(in: arena)
        case .removeWorkerReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_REMOVE_WORKER_REPLY
            m.pointee.remove_worker_reply = try reply.makeRemoveReply(in: arena)
        case .listModels:
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_LIST_MODELS
            m.pointee.list_models = arena.message(modelgateway__v1__list_models_request__init)
        case .listModelsReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_LIST_MODELS_REPLY
            m.pointee.list_models_reply = try reply.make(in: arena)
        case .health:
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_HEALTH
            m.pointee.health = arena.message(modelgateway__v1__health_request__init)
        case .healthReply(let reply):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_HEALTH_REPLY
            m.pointee.health_reply = try reply.make(in: arena)
        case .generate(let request):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE
            m.pointee.generate = try request.make(in: arena)
        case .generateChunk(let chunk):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE_CHUNK
            m.pointee.generate_chunk = try chunk.make(in: arena)
        case .generateResult(let result):
            m.pointee.body_case = MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE_RESULT
            m.pointee.generate_result = try result.make(in: arena)
        }
        return m
    }

    init(c m: UnsafePointer<Modelgateway__V1__Envelope>) throws(WireError) {
        let p = m.pointee
        let body: Body?
        // A oneof case with a NULL member cannot come out of unpack, but guard anyway.
        switch p.body_case {
        case MODELGATEWAY__V1__ENVELOPE__BODY_HELLO:
            body = try p.hello.map { (h) throws(WireError) in
                .hello(Wire.Hello(
                    protocolVersion: h.pointee.protocol_version,
                    apiKey: try CRead.string(h.pointee.api_key, field: "Hello.api_key"),
                    clientName: try CRead.string(h.pointee.client_name, field: "Hello.client_name")
                ))
            }
        case MODELGATEWAY__V1__ENVELOPE__BODY_HELLO_REPLY:
            body = try p.hello_reply.map { (h) throws(WireError) in
                .helloReply(Wire.HelloReply(
                    protocolVersion: h.pointee.protocol_version,
                    serverName: try CRead.string(h.pointee.server_name, field: "HelloReply.server_name"),
                    maxFrameBytes: h.pointee.max_frame_bytes,
                    maxConcurrentStreams: h.pointee.max_concurrent_streams
                ))
            }
        case MODELGATEWAY__V1__ENVELOPE__BODY_PING:
            body = p.ping.map { .ping(nonce: $0.pointee.nonce) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_PONG:
            body = p.pong.map { .pong(nonce: $0.pointee.nonce) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_CANCEL:
            body = .cancel
        case MODELGATEWAY__V1__ENVELOPE__BODY_GO_AWAY:
            body = try p.go_away.map { (g) throws(WireError) in
                .goAway(Wire.GoAway(
                    reason: try CRead.string(g.pointee.reason, field: "GoAway.reason"),
                    lastStreamID: g.pointee.last_stream_id
                ))
            }
        case MODELGATEWAY__V1__ENVELOPE__BODY_ERROR:
            body = try p.error.map { (e) throws(WireError) in .error(try Wire.CallError(c: e)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_ADD_WORKER:
            body = try p.add_worker.map { (r) throws(WireError) in .addWorker(try Wire.AddWorkerRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_ADD_WORKER_REPLY:
            body = try p.add_worker_reply.map { (r) throws(WireError) in .addWorkerReply(try Wire.AddWorkerReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_LIST_WORKERS:
            body = try p.list_workers.map { (r) throws(WireError) in .listWorkers(try Wire.ListWorkersRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_LIST_WORKERS_REPLY:
            body = try p.list_workers_reply.map { (r) throws(WireError) in .listWorkersReply(try Wire.ListWorkersReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_GET_WORKER:
            body = try p.get_worker.map { (r) throws(WireError) in .getWorker(try Wire.GetWorkerRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_GET_WORKER_REPLY:
            body = try p.get_worker_reply.map { (r) throws(WireError) in .getWorkerReply(try Wire.GetWorkerReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_UPDATE_WORKER:
            body = try p.update_worker.map { (r) throws(WireError) in .updateWorker(try Wire.UpdateWorkerRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_UPDATE_WORKER_REPLY:
            body = try p.update_worker_reply.map { (r) throws(WireError) in .updateWorkerReply(try Wire.AcceptedReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_REMOVE_WORKER:
            body = try p.remove_worker.map { (r) throws(WireError) in .removeWorker(try Wire.RemoveWorkerRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_REMOVE_WORKER_REPLY:
            body = try p.remove_worker_reply.map { (r) throws(WireError) in .removeWorkerReply(try Wire.AcceptedReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_LIST_MODELS:
            body = .listModels
        case MODELGATEWAY__V1__ENVELOPE__BODY_LIST_MODELS_REPLY:
            body = try p.list_models_reply.map { (r) throws(WireError) in .listModelsReply(try Wire.ListModelsReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_HEALTH:
            body = .health
        case MODELGATEWAY__V1__ENVELOPE__BODY_HEALTH_REPLY:
            body = try p.health_reply.map { (r) throws(WireError) in .healthReply(try Wire.HealthReply(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE:
            body = try p.generate.map { (r) throws(WireError) in .generate(try Wire.GenerateRequest(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE_CHUNK:
            body = try p.generate_chunk.map { (r) throws(WireError) in .generateChunk(try Wire.GenerateChunk(c: r)) }
        case MODELGATEWAY__V1__ENVELOPE__BODY_GENERATE_RESULT:
            body = try p.generate_result.map { (r) throws(WireError) in .generateResult(try Wire.GenerateResult(c: r)) }
        default:
            // NOT_SET, or a case added to the proto after this build.
            body = nil
        }
        self.init(streamID: p.stream_id, body: body)
    }
}

extension Wire.Envelope {
    /// The protobuf encoding of this envelope, appended to `buffer`.
    ///
    /// Packs straight into the buffer's storage: one allocation for the bytes,
    /// the arena's scratch for the C structs, all freed before returning.
    public func serialize(into buffer: inout some SerializationTarget) throws(WireError) -> Int {
        let arena = Arena()
        let message = try make(in: arena)
        let size = modelgateway__v1__envelope__get_packed_size(message)
        buffer.appendPacked(count: size) { destination in
            _ = modelgateway__v1__envelope__pack(message, destination)
        }
        return size
    }

    /// The protobuf encoding of this envelope.
    public func serializedBytes() throws(WireError) -> [UInt8] {
        var bytes: [UInt8] = []
        _ = try serialize(into: &bytes)
        return bytes
    }

    /// Decodes an envelope from its protobuf encoding.
    ///
    /// Throws `malformedPayload` for bytes that are not an Envelope and
    /// `invalidUTF8` for a string that is not UTF-8, `embeddedNUL` for a string
    /// holding a 0x00 byte (protobuf-c would cut it there). Unknown fields are ignored;
    /// an unknown body kind gives `body == nil`.
    public init(serializedBytes bytes: UnsafeRawBufferPointer) throws(WireError) {
        // A message field sent in pieces is merged first (protobuf-c would lose or refuse it).
        if let merged = withUnsafePointer(to: modelgateway__v1__envelope__descriptor, { MessageMerge.merged(bytes, descriptor: $0) }) {
            let result: Result<Wire.Envelope, WireError> = merged.withUnsafeBytes { raw in
                Result { () throws(WireError) in try Wire.Envelope(unmerged: raw) }
            }
            self = try result.get()
            return
        }
        try self.init(unmerged: bytes)
    }

    private init(unmerged bytes: UnsafeRawBufferPointer) throws(WireError) {
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        // unpack wants a non-NULL pointer even for an empty (legal) message.
        var empty: UInt8 = 0
        let unpacked: UnsafeMutablePointer<Modelgateway__V1__Envelope>? = withUnsafeMutablePointer(to: &empty) { emptyPointer in
            modelgateway__v1__envelope__unpack(nil, bytes.count, base ?? UnsafePointer(emptyPointer))
        }
        guard let unpacked else {
            throw WireError(.malformedPayload, "the payload is not a valid Envelope message (\(bytes.count) bytes)")
        }
        defer { modelgateway__v1__envelope__free_unpacked(unpacked, nil) }
        if let field = withUnsafePointer(to: modelgateway__v1__envelope__descriptor, {
            StringScan.fieldWithNUL(in: bytes, descriptor: $0)
        }) {
            throw WireError(.embeddedNUL, "string field \(field) holds a NUL byte, which this protocol does not carry")
        }
        try self.init(c: unpacked)
    }

    public init(serializedBytes bytes: some Collection<UInt8>) throws(WireError) {
        let result: Result<Wire.Envelope, WireError> =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(WireError) in try Wire.Envelope(serializedBytes: UnsafeRawBufferPointer(buffer)) }
            } ?? Array(bytes).withUnsafeBytes { raw in
                Result { () throws(WireError) in try Wire.Envelope(serializedBytes: raw) }
            }
        self = try result.get()
    }
}

/// Something packed protobuf bytes can be appended to (a byte array or a NIO ByteBuffer).
public protocol SerializationTarget {
    /// Appends `count` bytes written by `write` into uninitialised storage.
    mutating func appendPacked(count: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Void)
}

extension Array: SerializationTarget where Element == UInt8 {
    public mutating func appendPacked(count: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Void) {
        let start = self.count
        append(contentsOf: repeatElement(0, count: count))
        guard count > 0 else { return }
        withUnsafeMutableBufferPointer { buffer in write(buffer.baseAddress! + start) }
    }
}
