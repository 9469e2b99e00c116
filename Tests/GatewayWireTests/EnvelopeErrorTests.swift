import Testing
import NIOCore
import GatewayWire

private func decodeError(_ bytes: [UInt8]) -> WireError? {
    do {
        let envelope = try Wire.Envelope(serializedBytes: bytes)
        Issue.record("decoded \(envelope) from \(bytes)")
        return nil
    } catch {
        return error
    }
}

private func encodeError(_ envelope: Wire.Envelope) -> WireError? {
    do {
        let bytes = try envelope.serializedBytes()
        Issue.record("encoded \(bytes.count) bytes")
        return nil
    } catch {
        return error
    }
}

/// Replaces the first byte of `marker` in `bytes` with `replacement` (lengths stay valid).
private func corrupt(_ bytes: [UInt8], marker: String, with replacement: [UInt8]) throws -> [UInt8] {
    let needle = Array(marker.utf8)
    let index = try #require(firstIndex(of: needle, in: bytes), "marker not found")
    var out = bytes
    out.replaceSubrange(index..<(index + replacement.count), with: replacement)
    return out
}

private let marker = "Qx7Zk"

@Suite("Envelope decoding and encoding errors")
struct EnvelopeErrorTests {
    @Test(arguments: [
        [0xFF] as [UInt8],
        [0xFF, 0xFF, 0xFF, 0xFF],
        [0x08],  // field 1 varint with no value
        [0x08, 0x80],  // unterminated varint
        [0x52, 0x05, 0x12, 0x01],  // Hello announced 5 bytes, 2 present
        [0x52, 0x03, 0x12, 0x05, 0x61],  // string longer than its message
        [0x0B],  // start-group wire type
        [0x0F],  // invalid wire type 7
        [0x00, 0x01],  // field number 0
        [0x0A, 0x01, 0x01],  // stream_id (varint) sent as length-delimited
        [0x52, 0x01, 0x08],  // Hello.protocol_version missing its value
        Array("this is not protobuf at all".utf8),
        [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // 11-byte varint
    ])
    func garbageIsMalformed(bytes: [UInt8]) throws {
        let error = try #require(decodeError(bytes))
        #expect(error.kind == .malformedPayload, "\(error)")
        #expect(!error.isFatalToConnection)
    }

    @Test func truncatedValidPayloadsAreMalformed() throws {
        let envelope = Wire.Envelope(streamID: 300, body: .hello(.init(protocolVersion: 1, apiKey: "key", clientName: "client")))
        let bytes = try envelope.serializedBytes()
        for cut in 1..<bytes.count {
            let prefix = Array(bytes[..<cut])
            do {
                let decoded = try Wire.Envelope(serializedBytes: prefix)
                // A prefix may end on a field boundary; then it is a valid, shorter message.
                #expect(decoded != envelope, "cut at \(cut)")
            } catch {
                #expect(error.kind == .malformedPayload, "cut at \(cut): \(error)")
            }
        }
    }

    @Test func handCraftedInvalidUTF8InHelloIsRejected() throws {
        // Envelope { hello (10) = Hello { api_key (2) = "\xFF" } }
        let hello = Proto.bytesField(2, [0xFF])
        let payload = Proto.varintField(1, 5) + Proto.bytesField(10, hello)
        #expect(payload == [0x08, 0x05, 0x52, 0x03, 0x12, 0x01, 0xFF])
        let error = try #require(decodeError(payload))
        #expect(error.kind == .invalidUTF8)
        #expect(!error.isFatalToConnection)
        #expect(error.description.contains("api_key"), "\(error)")
    }

    @Test(arguments: [
        [0xFF] as [UInt8],
        [0xC3],  // truncated
        [0xC0, 0xAF],  // overlong
        [0xED, 0xA0, 0x80],  // surrogate
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0x61, 0x80, 0x62],  // stray continuation byte
    ])
    func invalidUTF8SequencesAreRejected(bad: [UInt8]) throws {
        let payload = Proto.bytesField(10, Proto.bytesField(3, bad))
        let error = try #require(decodeError(payload))
        #expect(error.kind == .invalidUTF8)
    }

    @Test(arguments: stringFieldCases(marker).map(\.field))
    func invalidUTF8InEveryStringFieldIsRejected(field: String) throws {
        let envelope = try #require(stringFieldCases(marker).first { $0.field == field }?.envelope)
        let bytes = try envelope.serializedBytes()
        #expect(try Wire.Envelope(serializedBytes: bytes) == envelope)
        let bad = try corrupt(bytes, marker: marker, with: [0xFF])
        let error = try #require(decodeError(bad), "\(field)")
        #expect(error.kind == .invalidUTF8, "\(field): \(error)")
        // The stream can still be answered.
        #expect(Wire.Envelope.peekStreamID(payload: ByteBuffer(bytes: bad)) == 9)
    }

    @Test(arguments: stringFieldCases("ab\0cd").map(\.field))
    func embeddedNULInEveryStringFieldIsRefusedOnEncode(field: String) throws {
        let envelope = try #require(stringFieldCases("ab\0cd").first { $0.field == field }?.envelope)
        let error = try #require(encodeError(envelope), "\(field)")
        #expect(error.kind == .embeddedNUL, "\(field): \(error)")
        #expect(!error.isFatalToConnection)
    }

    @Test func embeddedNULVariants() throws {
        for s in ["\0", "\0abc", "abc\0", "a\0\0b"] {
            let error = try #require(encodeError(Wire.Envelope(streamID: 1, body: .hello(.init(apiKey: s)))))
            #expect(error.kind == .embeddedNUL)
            #expect(error.description.contains("api_key"))
        }
    }

    @Test func failedFrameWriteLeavesTheBufferUntouched() throws {
        var buffer = ByteBuffer(string: "earlier frame")
        let before = buffer
        #expect(throws: WireError.self) {
            try Frame.write(Wire.Envelope(streamID: 1, body: .error(.init(message: "x\0y"))), into: &buffer)
        }
        #expect(buffer == before)
        #expect(buffer.writerIndex == before.writerIndex)
        #expect(throws: WireError.self) { try Frame.encode(Wire.Envelope(streamID: 1, body: .goAway(.init(reason: "\0")))) }
    }

    @Test func unknownFieldsAreIgnored() throws {
        let envelope = Wire.Envelope(streamID: 77, body: .hello(.init(protocolVersion: 2, apiKey: "k", clientName: "c")))
        let bytes = try envelope.serializedBytes()
        let unknowns: [[UInt8]] = [
            Proto.varintField(1000, 1),
            Proto.varintField(1000, UInt64.max),
            Proto.bytesField(999, Array("future".utf8)),
            Proto.fixed64Field(5000, 0x0102_0304_0506_0708),
            Proto.fixed32Field(77, 0xDEAD_BEEF),
            Proto.varintField(536_870_911, 3),  // the largest field number
        ]
        for unknown in unknowns {
            #expect(try Wire.Envelope(serializedBytes: bytes + unknown) == envelope, "\(unknown) appended")
            #expect(try Wire.Envelope(serializedBytes: unknown + bytes) == envelope, "\(unknown) prepended")
        }
        #expect(Proto.varintField(1000, 1) == [0xC0, 0x3E, 0x01])

        // Unknown fields inside a nested message, too.
        let hello = Proto.varintField(1, 2) + Proto.bytesField(50, [1, 2, 3]) + Proto.bytesField(2, Array("k".utf8))
            + Proto.varintField(1000, 9) + Proto.bytesField(3, Array("c".utf8))
        let nested = Proto.varintField(1, 77) + Proto.bytesField(10, hello)
        #expect(try Wire.Envelope(serializedBytes: nested) == envelope)
    }

    @Test func unknownBodyKindDecodesAsNoBody() throws {
        // A body case added after this build (field 60), with stream id 12.
        let payload = Proto.varintField(1, 12) + Proto.bytesField(60, Proto.varintField(1, 1))
        #expect(try Wire.Envelope(serializedBytes: payload) == Wire.Envelope(streamID: 12, body: nil))
    }

    @Test func lastOneofMemberWins() throws {
        // Both ping and pong on the wire: protobuf keeps the last member of a oneof.
        let payload = Proto.bytesField(12, Proto.varintField(1, 1)) + Proto.bytesField(13, Proto.varintField(1, 2))
        #expect(try Wire.Envelope(serializedBytes: payload) == Wire.Envelope(streamID: 0, body: .pong(nonce: 2)))
    }

    @Test func errorKindsFatality() {
        #expect(WireError(.compressedFrame, "").isFatalToConnection)
        #expect(WireError(.reservedFlags, "").isFatalToConnection)
        #expect(WireError(.frameTooLarge, "").isFatalToConnection)
        #expect(!WireError(.malformedPayload, "").isFatalToConnection)
        #expect(!WireError(.invalidUTF8, "").isFatalToConnection)
        #expect(!WireError(.embeddedNUL, "").isFatalToConnection)
        #expect(WireError(.frameTooLarge, "detail text").description == "detail text")
    }
}

@Suite("peekStreamID")
struct PeekStreamIDTests {
    private func peek(_ bytes: [UInt8]) -> UInt64? { Wire.Envelope.peekStreamID(payload: ByteBuffer(bytes: bytes)) }

    @Test func validPayloads() throws {
        for (_, envelope) in everyBodyCase {
            let bytes = try envelope.serializedBytes()
            let expected: UInt64? = envelope.streamID == 0 ? nil : envelope.streamID
            #expect(peek(bytes) == expected, "\(envelope)")
        }
        #expect(peek(try Wire.Envelope(streamID: 1, body: .cancel).serializedBytes()) == 1)
        #expect(peek(try Wire.Envelope(streamID: .max, body: .cancel).serializedBytes()) == .max)
    }

    @Test func partiallyInvalidPayloads() throws {
        let streamID = Proto.varintField(1, 4242)
        // Invalid UTF-8 in the body.
        let badUTF8 = streamID + Proto.bytesField(10, Proto.bytesField(2, [0xFF]))
        #expect(peek(badUTF8) == 4242)
        #expect(decodeErrorKind(badUTF8) == .invalidUTF8)
        // A body whose length runs past the end.
        let truncated = streamID + [0x52, 0x7F, 0x12]
        #expect(peek(truncated) == 4242)
        #expect(decodeErrorKind(truncated) == .malformedPayload)
        // Garbage after the stream id.
        let garbage = streamID + [0xFF, 0xFF, 0xFF]
        #expect(peek(garbage) == 4242)
        #expect(decodeErrorKind(garbage) == .malformedPayload)
    }

    @Test func streamIDAfterOtherFields() {
        let before = Proto.bytesField(10, Proto.bytesField(2, Array("key".utf8))) + Proto.fixed64Field(900, 1)
            + Proto.fixed32Field(901, 2) + Proto.varintField(902, 3)
        #expect(peek(before + Proto.varintField(1, 99)) == 99)
    }

    @Test func noStreamID() {
        #expect(peek([]) == nil)
        #expect(peek(Proto.bytesField(13, Proto.varintField(1, 5))) == nil)
        #expect(peek([0xFF]) == nil)
        #expect(peek([0x08]) == nil)  // key with no value
        #expect(peek([0x52, 0x09, 0x00]) == nil)  // length past the end, before any stream id
        #expect(peek([0x0B, 0x08, 0x01]) == nil)  // group wire type: give up
        #expect(peek(Array(Proto.fixed64Field(2, 5).dropLast())) == nil)
        #expect(peek(Array(Proto.fixed32Field(2, 5).dropLast())) == nil)
        #expect(peek([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]) == nil)  // varint too long
    }

    private func decodeErrorKind(_ bytes: [UInt8]) -> WireError.Kind? {
        do {
            _ = try Wire.Envelope(serializedBytes: bytes)
            return nil
        } catch {
            return error.kind
        }
    }
}
