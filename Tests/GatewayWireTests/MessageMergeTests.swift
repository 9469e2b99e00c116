import Testing
import GatewayWire

/// Protobuf's encoding rules: a non-repeated message field seen twice is the merge of
/// both (scalars: the last wins; repeated fields: concatenated; sub-messages: merged,
/// recursively), and concatenating two encoded messages encodes their merge. Google's
/// runtimes do this; protobuf-c 1.4 fails a split sub-message with an unset oneof and
/// keeps only the last piece of a oneof member, so the wire module merges first.
@Suite("Protobuf merge of split messages")
struct MessageMergeTests {
    static func bytes(_ body: Wire.Envelope.Body, stream: UInt64 = 0) throws -> [UInt8] {
        try Wire.Envelope(streamID: stream, body: body).serializedBytes()
    }

    @Test func aGenerateSentInTwoPiecesIsOneGenerate() throws {
        let first = try Self.bytes(.generate(.init(model: "m", input: .text("hi"))), stream: 3)
        let second = try Self.bytes(.generate(.init(sampling: .init(maxTokens: 8), stream: true, requestID: "r")))
        let envelope = try Wire.Envelope(serializedBytes: first + second)
        #expect(envelope == Wire.Envelope(streamID: 3, body: .generate(.init(
            model: "m", input: .text("hi"), sampling: .init(maxTokens: 8), stream: true, requestID: "r"))))
    }

    @Test func samplingSplitInTwoKeepsEveryField() throws {
        let first = try Self.bytes(.generate(.init(input: .text("x"), sampling: .init(temperature: 0.5, stop: ["a"]))), stream: 1)
        let second = try Self.bytes(.generate(.init(sampling: .init(maxTokens: 4, seed: 9, stop: ["b"], ignoreEOS: true))))
        let envelope = try Wire.Envelope(serializedBytes: first + second)
        #expect(envelope == Wire.Envelope(streamID: 1, body: .generate(.init(
            input: .text("x"),
            sampling: .init(maxTokens: 4, temperature: 0.5, seed: 9, stop: ["a", "b"], ignoreEOS: true)))))
    }

    @Test func scalarsAndStringsTakeTheLastValue() throws {
        let first = try Self.bytes(.generate(.init(model: "a", input: .text("one"), sampling: .init(maxTokens: 1))), stream: 1)
        let second = try Self.bytes(.generate(.init(model: "b", input: .text("two"), sampling: .init(maxTokens: 2))), stream: 2)
        #expect(try Wire.Envelope(serializedBytes: first + second) == Wire.Envelope(streamID: 2, body: .generate(.init(
            model: "b", input: .text("two"), sampling: .init(maxTokens: 2)))))
    }

    @Test func aSplitChatInputConcatenatesItsMessages() throws {
        let first = try Self.bytes(.generate(.init(input: .chat([.init(role: "system", content: "s")]))), stream: 5)
        let second = try Self.bytes(.generate(.init(input: .chat([.init(role: "user", content: "u")]))))
        #expect(try Wire.Envelope(serializedBytes: first + second) == Wire.Envelope(streamID: 5, body: .generate(.init(
            input: .chat([.init(role: "system", content: "s"), .init(role: "user", content: "u")])))))
    }

    @Test func anotherMemberOfTheOneofStartsOver() throws {
        // generate, then ping, then generate: the ping cleared the first generate, so only
        // the last piece is left (as in Google's runtimes).
        let first = try Self.bytes(.generate(.init(model: "lost", input: .text("lost"))), stream: 1)
        let ping = try Self.bytes(.ping(nonce: 7))
        let last = try Self.bytes(.generate(.init(input: .text("kept"))))
        #expect(try Wire.Envelope(serializedBytes: first + ping + last) == Wire.Envelope(streamID: 1, body: .generate(.init(input: .text("kept")))))
        // And the other way round: the last member wins.
        #expect(try Wire.Envelope(serializedBytes: first + ping) == Wire.Envelope(streamID: 1, body: .ping(nonce: 7)))
        // Input is a oneof too: text then chat is chat, chat then chat merges.
        let text = try Self.bytes(.generate(.init(input: .text("t"))))
        let chat = try Self.bytes(.generate(.init(input: .chat([.init(role: "user", content: "c")]))))
        #expect(try Wire.Envelope(serializedBytes: text + chat) == Wire.Envelope(streamID: 0, body: .generate(.init(
            input: .chat([.init(role: "user", content: "c")])))))
        #expect(try Wire.Envelope(serializedBytes: chat + text) == Wire.Envelope(streamID: 0, body: .generate(.init(input: .text("t")))))
    }

    @Test func aMessageSplitInThreeAtEveryDepthMerges() throws {
        let pieces: [Wire.Envelope.Body] = [
            .generate(.init(model: "m", sampling: .init(topK: 3))),
            .generate(.init(input: .chat([.init(role: "user")]), sampling: .init(topP: 0.9))),
            .generate(.init(input: .chat([.init(content: "c")]), sampling: .init(presencePenalty: 1))),
        ]
        var bytes: [UInt8] = []
        for piece in pieces { bytes += try Self.bytes(piece, stream: 9) }
        #expect(try Wire.Envelope(serializedBytes: bytes) == Wire.Envelope(streamID: 9, body: .generate(.init(
            model: "m", input: .chat([.init(role: "user"), .init(content: "c")]),
            sampling: .init(topP: 0.9, topK: 3, presencePenalty: 1)))))
    }

    @Test func workerManagementMessagesMergeToo() throws {
        let first = try Self.bytes(.addWorker(.init(url: "http://h:1", labels: ["a": "1"])), stream: 2)
        let second = try Self.bytes(.addWorker(.init(labels: ["b": "2"])))
        #expect(try Wire.Envelope(serializedBytes: first + second) == Wire.Envelope(streamID: 2, body: .addWorker(.init(
            url: "http://h:1", labels: ["a": "1", "b": "2"]))))
    }

    @Test func truncatedPiecesAreStillMalformed() throws {
        let whole = try Self.bytes(.generate(.init(input: .text("hello"))), stream: 1)
        let bytes = whole + whole.dropLast()
        #expect(throws: WireError.self) { try Wire.Envelope(serializedBytes: bytes) }
    }
}
