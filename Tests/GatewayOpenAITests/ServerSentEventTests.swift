import GatewayOpenAI
import NIOCore
import Testing

@Suite("Server-sent events")
struct ServerSentEventTests {
    static func decode(_ pieces: [String], finish: Bool = true) -> [ServerSentEvent] {
        var decoder = EventStreamDecoder()
        var events: [ServerSentEvent] = []
        for piece in pieces { decoder.feed(ByteBuffer(string: piece)) { events.append($0) } }
        if finish, let last = decoder.finish() { events.append(last) }
        return events
    }

    static func data(_ events: [ServerSentEvent]) -> [String] { events.map { String(buffer: $0.data) } }

    @Test("Events end with a blank line in any of the three line endings; data lines join with \\n")
    func lineEndings() {
        let stream = "data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d1\ndata: d2\n\n"
        #expect(Self.data(Self.decode([stream])) == ["a", "b", "c", "d1\nd2"])
    }

    @Test("Split at every byte, the stream decodes to the same events (CR LF split across reads included)")
    func byteByByte() {
        let stream = "event: message_start\ndata: {\"x\":1}\r\n\r\n: comment\ndata:[DONE]\r\n\r\nid: 7\ndata: last\n\n"
        let whole = Self.decode([stream])
        let split = Self.decode(stream.map { String($0) })
        #expect(whole == split)
        #expect(Self.data(whole) == [#"{"x":1}"#, "[DONE]", "last"])
        #expect(whole[0].name == "message_start")
        #expect(whole[1].isDone)
        #expect(whole[2].id == "7")
    }

    @Test("Comments, retry and unknown fields are dropped; an event without data is not dispatched")
    func ignored() {
        #expect(Self.decode([": ping\n\nretry: 5\nfoo: bar\n\nevent: x\n\n"]).isEmpty)
    }

    @Test("A stream that ends without its blank line still hands over its last event")
    func unterminated() {
        #expect(Self.data(Self.decode(["data: a\n\ndata: tail"])) == ["a", "tail"])
        #expect(Self.data(Self.decode(["data: a\n\ndata: tail"], finish: false)) == ["a"])
    }

    @Test("Encoding writes names and ids, splits multi-line data, and round-trips")
    func encoding() {
        let event = ServerSentEvent(name: "delta", data: ByteBuffer(string: "one\ntwo"), id: "3")
        #expect(String(buffer: event.encoded) == "id: 3\nevent: delta\ndata: one\ndata: two\n\n")
        #expect(Self.decode([String(buffer: event.encoded)]) == [event])
        #expect(String(buffer: ServerSentEvent.done.encoded) == "data: [DONE]\n\n")
    }
}
