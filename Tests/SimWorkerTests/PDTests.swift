import AsyncHTTPClient
import GatewayJSON
import NIOHTTP1
import NIOCore
@testable import SimWorker
import Testing

/// A prefill worker and a decode worker in this process, with clients.
private func withPair(
    prefillFigures: EngineConfiguration = quickFigures,
    runtime: SimWorker.Runtime = .sglang,
    bootstrapTimeout: Duration = .seconds(5),
    _ body: (_ prefill: SimWorker, _ p: TestClient, _ decode: SimWorker, _ d: TestClient) async throws -> Void
) async throws {
    try await withWorker(realistic(name: "prefill", runtime: runtime, role: .prefill, figures: prefillFigures, bootstrapTimeout: bootstrapTimeout)) { prefill, p in
        try await withWorker(realistic(name: "decode", runtime: runtime, role: .decode, bootstrapTimeout: bootstrapTimeout)) { decode, d in
            try await body(prefill, p, decode, d)
        }
    }
}

private func bootstrapFields(_ prefill: SimWorker, room: UInt64) -> String {
    #""bootstrap_host":"127.0.0.1","bootstrap_port":\#(prefill.bootstrapPort ?? 0),"bootstrap_room":\#(room)"#
}

private func times(_ worker: SimWorker, _ room: String, _ kind: SimWorker.PDEvent.Kind) -> UInt64? {
    worker.pdEvents(room: room).first { $0.kind == kind }?.at
}

@Suite("Prefill/decode hand-off", .timeLimit(.minutes(1)))
struct PDTests {
    @Test func sameRoomReachesBothLegsWhichOverlap() async throws {
        try await withPair { prefill, p, decode, d in
            let prompt = systemPrompt(64)
            let room: UInt64 = 7_301_234_567_890_123_456
            let fields = bootstrapFields(prefill, room: room)
            async let prefillReply = p.post("/generate", #"{"text":"\#(prompt)","sampling_params":{"max_new_tokens":8},\#(fields)}"#)
            async let decodeReply = d.post("/generate", #"{"text":"\#(prompt)","sampling_params":{"max_new_tokens":8},\#(fields)}"#)
            let (pr, dr) = try await (prefillReply, decodeReply)
            #expect(pr.status == 200)
            #expect(dr.status == 200)
            let key = String(room)
            #expect(pr.headers.first(name: "X-Sim-Bootstrap-Room") == key)
            #expect(dr.headers.first(name: "X-Sim-Bootstrap-Room") == key)
            // The client gets the decode's tokens; the prefill leg computes one.
            let decoded = try dr.json()
            #expect(decoded["text"] == .string(SimWorker.generatedText(tokenCount: 8)))
            #expect(decoded["meta_info"]?["cached_tokens"] == .int(64))
            #expect(try pr.json()["meta_info"]?["completion_tokens"] == .int(1))

            // Both legs saw the room; each started before the other answered.
            let pStart = try #require(times(prefill, key, .started))
            let pEnd = try #require(times(prefill, key, .answered))
            let dStart = try #require(times(decode, key, .started))
            let dKV = try #require(times(decode, key, .kvReady))
            let dEnd = try #require(times(decode, key, .answered))
            #expect(pStart < dEnd && dStart < pEnd)
            let pKV = try #require(times(prefill, key, .kvReady))
            #expect(pKV <= dKV)
            #expect(decode.engineSnapshot?.counters.transferredTokens == 64)
            #expect(decode.engineSnapshot?.counters.prefillSteps == 0)
            #expect(prefill.engineSnapshot?.counters.prefixCacheQueries == 64)

            let metrics = try await p.get("/metrics").body
            #expect(metrics.contains(#"sim:pd_handoffs_total{role="prefill",outcome="ok"} 1"#))
            let dMetrics = try await d.get("/metrics").body
            #expect(dMetrics.contains(#"sim:pd_handoffs_total{role="decode",outcome="ok"} 1"#))
            #expect(sample(dMetrics, "sim:kv_transferred_tokens_total") == 64)
        }
    }

    @Test func decodeArrivingFirstWaitsForThePrefill() async throws {
        try await withPair { prefill, p, decode, d in
            let room: UInt64 = 42
            let fields = bootstrapFields(prefill, room: room)
            async let decodeReply = d.post("/v1/completions", #"{"prompt":"hello there","max_tokens":3,"stream":true,\#(fields)}"#)
            #expect(try await eventually { decode.pdEvents(room: "42").contains { $0.kind == .started } })
            #expect(decode.pdEvents(room: "42").allSatisfy { $0.kind != .kvReady })
            let pr = try await p.post("/v1/completions", #"{"prompt":"hello there","max_tokens":3,\#(fields)}"#)
            #expect(pr.status == 200)
            let dr = try await decodeReply
            #expect(dr.events.last == "[DONE]")
            #expect(!dr.body.contains("\"error\""))
            let decodeKV = try #require(times(decode, "42", .kvReady))
            let prefillKV = try #require(times(prefill, "42", .kvReady))
            #expect(decodeKV >= prefillKV)
        }
    }

    @Test func aCancelledPrefillFailsTheDecodeWithAnErrorEvent() async throws {
        var slow = quickFigures
        slow.prefillOverheadMicros = 20_000_000
        try await withPair(prefillFigures: slow) { prefill, p, decode, d in
            let fields = bootstrapFields(prefill, room: 9)
            async let decodeReply = d.post("/generate", #"{"text":"a b c","stream":true,"sampling_params":{"max_new_tokens":4},\#(fields)}"#)
            let body = #"{"text":"a b c","sampling_params":{"max_new_tokens":4},\#(fields)}"#
            let request = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            try await withRawConnection(port: p.port, write: request) { _ throws in
                let prefillStarted = try await eventually { prefill.pdEvents(room: "9").contains { $0.kind == .started } }
                let decodeWaits = try await eventually { prefill.bootstrap?.hasDecode("9") == true }
                #expect(prefillStarted && decodeWaits)
            }
            // The prefill's client went away mid-prefill: the decode's stream ends in an error.
            let dr = try await decodeReply
            #expect(dr.status == 200)
            let error = try JSONParser.parse(try #require(dr.events.first { $0.contains("\"error\"") }))
            #expect(error["error"]?["message"]?.stringValue?.contains("cancelled") == true)
            #expect(dr.events.last == "[DONE]")
            #expect(try await eventually { decode.pdEvents(room: "9").contains { $0.kind == .failed } })
            #expect(prefill.pdEvents(room: "9").contains { $0.kind == .failed })
            #expect(prefill.engineSnapshot?.counters.requestsAborted == 1)
        }
    }

    @Test func aPrefillWorkerThatDiesFailsTheDecode() async throws {
        var slow = quickFigures
        slow.prefillOverheadMicros = 20_000_000
        let prefill = SimWorker(configuration: realistic(name: "prefill", role: .prefill, figures: slow))
        let port = try await prefill.start()
        let p = TestClient(port: port)
        try await withWorker(realistic(name: "decode", role: .decode)) { decode, d in
            let fields = bootstrapFields(prefill, room: 11)
            async let decodeReply = d.post("/generate", #"{"text":"a b","sampling_params":{"max_new_tokens":4},\#(fields)}"#)
            async let prefillReply = p.post("/generate", #"{"text":"a b","sampling_params":{"max_new_tokens":4},\#(fields)}"#)
            #expect(try await eventually { decode.pdEvents(room: "11").contains { $0.kind == .started } })
            #expect(try await eventually { prefill.pdEvents(room: "11").contains { $0.kind == .started } })
            try await prefill.shutdown()
            let dr = try await decodeReply
            #expect(dr.status == 500)
            #expect(dr.body.contains("KV transfer failed: room 11"))
            #expect(decode.pdEvents(room: "11").last?.kind == .failed)
            _ = try? await prefillReply
        }
        try await p.http.shutdown()
    }

    @Test func aDecodeThatGoesAwayCancelsThePrefillsWait() async throws {
        var slow = quickFigures
        // Long enough for the decode to connect and leave before the prefill is computed.
        slow.prefillOverheadMicros = 2_000_000
        // The hand-off timeout far beyond the prefill: on a loaded machine the decode's
        // departure must be what ends the wait, never the clock.
        try await withPair(prefillFigures: slow, bootstrapTimeout: .seconds(40)) { prefill, p, decode, d in
            let fields = bootstrapFields(prefill, room: 5)
            let body = #"{"text":"x y z","sampling_params":{"max_new_tokens":4},\#(fields)}"#
            async let prefillReply = p.post("/generate", body)
            let request = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            try await withRawConnection(port: d.port, write: request) { _ throws in
                // Both legs must be in before the decode leaves: a decode that came and went
                // before its prefill arrived leaves nothing to cancel (the prefill then waits
                // for a decode until the timeout, as a real one would).
                let bothIn = try await eventually(timeout: .seconds(20)) {
                    prefill.bootstrap?.hasDecode("5") == true && prefill.pdEvents(room: "5").contains { $0.kind == .started }
                }
                #expect(bothIn)
            }
            let pr = try await prefillReply
            #expect(pr.status == 500)
            #expect(pr.body.contains("went away"))
            #expect(prefill.pdEvents(room: "5").last?.kind == .failed)
            #expect(try await eventually { decode.pdEvents(room: "5").contains { $0.kind == .failed } })
        }
    }

    @Test func aPrefillNobodyTakesTimesOut() async throws {
        try await withPair(bootstrapTimeout: .milliseconds(300)) { prefill, p, _, _ in
            let pr = try await p.post("/generate", #"{"text":"q","sampling_params":{"max_new_tokens":2},\#(bootstrapFields(prefill, room: 3))}"#)
            #expect(pr.status == 500)
            #expect(pr.body.contains("in time"))
        }
    }

    @Test func batchedInputWaitsForEveryRoom() async throws {
        try await withPair { prefill, p, decode, d in
            let port = prefill.bootstrapPort ?? 0
            let fields = #""bootstrap_host":["127.0.0.1","127.0.0.1"],"bootstrap_port":[\#(port),\#(port)],"bootstrap_room":[101,102]"#
            let body = #"{"text":["one two","three four"],"sampling_params":{"max_new_tokens":2},\#(fields)}"#
            async let pr = p.post("/generate", body)
            async let dr = d.post("/generate", body)
            let (a, b) = try await (pr, dr)
            #expect(a.status == 200 && b.status == 200)
            #expect(b.headers.first(name: "X-Sim-Bootstrap-Room") == "101,102")
            for room in ["101", "102"] {
                #expect(times(prefill, room, .answered) != nil)
                #expect(times(decode, room, .kvReady) != nil)
            }
        }
    }

    @Test func aDecodeWithoutBootstrapFieldsIsRefused() async throws {
        try await withWorker(realistic(role: .decode)) { _, client in
            let reply = try await client.post("/generate", #"{"text":"q"}"#)
            #expect(reply.status == 400)
            #expect(reply.body.contains("bootstrap_room"))
        }
    }

    @Test func vllmStylePairTransfersTheKV() async throws {
        try await withPair(runtime: .openai) { prefill, p, decode, d in
            let prompt = systemPrompt(48)
            let first = try await p.post(
                "/v1/completions", #"{"prompt":"\#(prompt)","max_tokens":1,"kv_transfer_params":{"do_remote_decode":true,"do_remote_prefill":false}}"#
            )
            #expect(first.status == 200)
            let params = try #require(try first.json()["kv_transfer_params"])
            #expect(params["do_remote_prefill"] == .bool(true))
            #expect(params["do_remote_decode"] == .bool(false))
            #expect(params["remote_host"] == .string("127.0.0.1"))
            #expect(params["remote_port"] == .int(Int64(prefill.bootstrapPort ?? -1)))
            #expect(params["remote_engine_id"] == .string("prefill"))
            #expect(params["remote_block_ids"]?.arrayValue?.count == 3)
            #expect(params["tp_size"] == .int(1))
            let requestID = try #require(params["remote_request_id"]?.stringValue)

            var writer = JSONWriter()
            writer.value(params)
            let second = try await d.post(
                "/v1/completions", #"{"prompt":"\#(prompt)","max_tokens":5,"kv_transfer_params":\#(writer.string)}"#
            )
            #expect(second.status == 200)
            let usage = try #require(try second.json()["usage"])
            #expect(usage["prompt_tokens_details"]?["cached_tokens"] == .int(48))
            #expect(usage["completion_tokens"] == .int(5))
            #expect(times(decode, requestID, .kvReady) != nil)
            #expect(decode.engineSnapshot?.counters.transferredTokens == 48)

            // The KV was taken: a second pull of the same id fails on the decode side.
            let again = try await d.post("/v1/completions", #"{"prompt":"\#(prompt)","max_tokens":5,"kv_transfer_params":\#(writer.string)}"#)
            #expect(again.status == 500)
            #expect(decode.pdEvents(room: requestID).last?.kind == .failed)
        }
    }
}

@Suite("Bootstrap rooms")
struct BootstrapRoomsTests {
    @Test func readyThenWaitSendsKVAndAckCompletes() {
        var rooms = BootstrapRooms(timeoutNanos: 1_000)
        rooms.prefillStarted("r")
        #expect(rooms.prefillReady("r", tokens: 10, waitsForAck: true, now: 0).isEmpty)
        #expect(rooms.decodeWaits("r", connection: 1, now: 1) == [.sendKV(1, key: "r", tokens: 10)])
        #expect(rooms.decodeAcked("r", connection: 1) == [.prefillDone(key: "r", failure: nil), .close(1)])
        #expect(rooms.count == 0)
    }

    @Test func waitThenReadySendsKV() {
        var rooms = BootstrapRooms(timeoutNanos: 1_000)
        #expect(rooms.decodeWaits("r", connection: 1, now: 0).isEmpty)
        #expect(rooms.prefillReady("r", tokens: 3, waitsForAck: false, now: 1) == [.sendKV(1, key: "r", tokens: 3)])
        #expect(rooms.decodeAcked("r", connection: 1) == [.close(1)])
    }

    @Test func failedPrefillErrorsTheWaitingDecodeAndLaterOnes() {
        var rooms = BootstrapRooms(timeoutNanos: 1_000)
        _ = rooms.decodeWaits("r", connection: 1, now: 0)
        #expect(rooms.prefillFailed("r", reason: "gone", now: 1) == [.sendError(1, key: "r", reason: "gone")])
        #expect(rooms.prefillFailed("s", reason: "boom", now: 1).isEmpty)
        #expect(rooms.decodeWaits("s", connection: 2, now: 2) == [.sendError(2, key: "s", reason: "boom")])
    }

    @Test func decodeGoneBeforeOrAfterReadyFailsThePrefill() {
        var rooms = BootstrapRooms(timeoutNanos: 1_000)
        rooms.prefillStarted("r")
        _ = rooms.decodeWaits("r", connection: 1, now: 0)
        #expect(rooms.decodeClosed(1).isEmpty)
        #expect(rooms.prefillReady("r", tokens: 1, waitsForAck: true, now: 1) == [.prefillDone(key: "r", failure: "the decode of room r went away")])

        _ = rooms.prefillReady("s", tokens: 1, waitsForAck: true, now: 1)
        #expect(rooms.decodeWaits("s", connection: 2, now: 2) == [.sendKV(2, key: "s", tokens: 1)])
        #expect(rooms.decodeClosed(2) == [.prefillDone(key: "s", failure: "the decode of room s went away")])
    }

    @Test func readyKVExpires() {
        var rooms = BootstrapRooms(timeoutNanos: 100)
        _ = rooms.prefillReady("r", tokens: 1, waitsForAck: true, now: 0)
        #expect(rooms.expire(now: 50).isEmpty)
        #expect(rooms.expire(now: 100) == [.prefillDone(key: "r", failure: "no decode took the KV of room r in time")])
        #expect(rooms.count == 0)
    }

    @Test func aSecondDecodeForARoomIsRefused() {
        var rooms = BootstrapRooms(timeoutNanos: 100)
        _ = rooms.decodeWaits("r", connection: 1, now: 0)
        #expect(rooms.decodeWaits("r", connection: 2, now: 0) == [.sendError(2, key: "r", reason: "room r already has a decode")])
    }
}
