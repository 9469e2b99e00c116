import Testing
import NIOCore
import NIOEmbedded
import NIOTestUtils
import GatewayWire

/// A frame built by hand: flag byte, big-endian length, payload.
private func frameBytes(flags: UInt8 = 0, length: UInt32? = nil, _ payload: [UInt8]) -> [UInt8] {
    let n = length ?? UInt32(payload.count)
    return [flags, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + payload
}

private let samplePayloads: [[UInt8]] = [
    Array("hello".utf8),
    [],
    [0x00],
    Array(repeating: 0xAB, count: 300),
    Array("ünï 😀".utf8),
    [],
    Array(0...255),
]

private func makeChannel(maxPayloadBytes: Int = 1024) -> EmbeddedChannel {
    EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayloadBytes: maxPayloadBytes)))
}

/// Every payload the channel has produced so far.
private func drain(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    while let buffer = try channel.readInbound(as: ByteBuffer.self) {
        out.append(Array(buffer.readableBytesView))
    }
    return out
}

private func decodeError(_ body: () throws -> Void) -> WireError? {
    do {
        try body()
        return nil
    } catch let error as WireError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

@Suite("Frame codec")
struct FrameCodecTests {
    @Test func verifierAcceptsTheDecoder() throws {
        var pairs: [(ByteBuffer, [ByteBuffer])] = samplePayloads.map { payload in
            (ByteBuffer(bytes: frameBytes(payload)), [ByteBuffer(bytes: payload)])
        }
        // Inputs carrying several frames at once.
        pairs.append((ByteBuffer(bytes: frameBytes([1]) + frameBytes([]) + frameBytes([2, 3])), [ByteBuffer(bytes: [1]), ByteBuffer(), ByteBuffer(bytes: [2, 3])]))
        // Real envelopes.
        for (_, envelope) in everyBodyCase.prefix(12) {
            let payload = try envelope.serializedBytes()
            pairs.append((try Frame.encode(envelope), [ByteBuffer(bytes: payload)]))
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs, decoderFactory: { FrameDecoder(maxPayloadBytes: 4096) })
    }

    @Test func splitAtEveryOffsetYieldsTheSamePayloads() throws {
        let stream = samplePayloads.flatMap { frameBytes($0) }
        for offset in 0...stream.count {
            let channel = makeChannel()
            try channel.writeInbound(ByteBuffer(bytes: stream[..<offset]))
            try channel.writeInbound(ByteBuffer(bytes: stream[offset...]))
            #expect(try drain(channel) == samplePayloads, "split at \(offset)")
            #expect(try channel.finish().isClean)
        }
    }

    @Test func payloadsAreDeliveredAsSoonAsComplete() throws {
        let stream = samplePayloads.flatMap { frameBytes($0) }
        // Where each frame ends in the stream.
        var ends: [Int] = []
        var position = 0
        for payload in samplePayloads {
            position += Frame.headerSize + payload.count
            ends.append(position)
        }
        let channel = makeChannel()
        var received: [[UInt8]] = []
        for (index, byte) in stream.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            received += try drain(channel)
            let complete = ends.filter { $0 <= index + 1 }.count
            #expect(received.count == complete, "after byte \(index)")
        }
        #expect(received == samplePayloads)
        #expect(try channel.finish().isClean)
    }

    @Test func coalescedFramesAllDecode() throws {
        let channel = makeChannel()
        let stream = samplePayloads.flatMap { frameBytes($0) }
        try channel.writeInbound(ByteBuffer(bytes: stream + stream))
        #expect(try drain(channel) == samplePayloads + samplePayloads)
        #expect(try channel.finish().isClean)
    }

    @Test func envelopesThroughTheChannel() throws {
        let channel = makeChannel(maxPayloadBytes: Frame.defaultMaxPayloadBytes)
        var all = ByteBuffer()
        for (_, envelope) in everyBodyCase { try Frame.write(envelope, into: &all) }
        try channel.writeInbound(all)
        var decoded: [Wire.Envelope] = []
        while let payload = try channel.readInbound(as: ByteBuffer.self) {
            decoded.append(try Wire.Envelope(payload: payload))
        }
        #expect(decoded == everyBodyCase.map(\.envelope))
        #expect(try channel.finish().isClean)
    }

    @Test func oversizeHeaderIsRefusedBeforeThePayloadArrives() throws {
        let channel = makeChannel(maxPayloadBytes: 16)
        let header = frameBytes(length: 17, [])
        // Four header bytes: nothing to decide yet.
        try channel.writeInbound(ByteBuffer(bytes: header.prefix(4)))
        #expect(try drain(channel).isEmpty)
        let error = decodeError { try channel.writeInbound(ByteBuffer(bytes: header.suffix(1))) }
        #expect(error?.kind == .frameTooLarge)
        #expect(error?.isFatalToConnection == true)
        _ = try? channel.finish()
    }

    @Test func hugeAnnouncedLengthIsRefusedAtOnce() throws {
        let channel = makeChannel(maxPayloadBytes: Frame.defaultMaxPayloadBytes)
        let error = decodeError { try channel.writeInbound(ByteBuffer(bytes: frameBytes(length: UInt32.max, []))) }
        #expect(error?.kind == .frameTooLarge)
        _ = try? channel.finish()

        let atLimit = makeChannel(maxPayloadBytes: Frame.defaultMaxPayloadBytes)
        let justOver = decodeError {
            try atLimit.writeInbound(ByteBuffer(bytes: frameBytes(length: UInt32(Frame.defaultMaxPayloadBytes + 1), [])))
        }
        #expect(justOver?.kind == .frameTooLarge)
        _ = try? atLimit.finish()
    }

    @Test func lengthExactlyAtTheLimitIsAccepted() throws {
        let channel = makeChannel(maxPayloadBytes: 16)
        let payload = Array(UInt8(0)..<16)
        try channel.writeInbound(ByteBuffer(bytes: frameBytes(payload)))
        #expect(try drain(channel) == [payload])
        #expect(try channel.finish().isClean)
    }

    @Test(arguments: [UInt8(0x01), 0x03, 0x81, 0xFF])
    func compressedFlagIsRefused(flags: UInt8) throws {
        let channel = makeChannel()
        let error = decodeError { try channel.writeInbound(ByteBuffer(bytes: frameBytes(flags: flags, [1, 2, 3]))) }
        #expect(error?.kind == .compressedFrame)
        #expect(error?.isFatalToConnection == true)
        _ = try? channel.finish()
    }

    @Test(arguments: [UInt8(0x02), 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFE])
    func reservedFlagsAreRefused(flags: UInt8) throws {
        let channel = makeChannel()
        // Refused on the header alone, payload not needed.
        let error = decodeError { try channel.writeInbound(ByteBuffer(bytes: frameBytes(flags: flags, length: 100, []))) }
        #expect(error?.kind == .reservedFlags)
        #expect(error?.isFatalToConnection == true)
        _ = try? channel.finish()
    }

    @Test func badFrameAfterGoodOnesStillDeliversTheGoodOnes() throws {
        let channel = makeChannel()
        let stream = frameBytes([1]) + frameBytes([2]) + frameBytes(flags: 0x02, [3])
        let error = decodeError { try channel.writeInbound(ByteBuffer(bytes: stream)) }
        #expect(error?.kind == .reservedFlags)
        #expect(try drain(channel) == [[1], [2]])
        _ = try? channel.finish()
    }

    @Test func zeroLengthFrameIsLegal() throws {
        let channel = makeChannel()
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 0, 0]))
        let payload = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(payload.readableBytes == 0)
        #expect(try Wire.Envelope(payload: payload) == Wire.Envelope(streamID: 0, body: nil))
        #expect(try channel.finish().isClean)
    }

    @Test func validateHeader() throws {
        #expect(try Frame.validateHeader(flags: 0, length: 0, maxPayloadBytes: 0) == 0)
        #expect(try Frame.validateHeader(flags: 0, length: 10, maxPayloadBytes: 10) == 10)
        #expect(try Frame.validateHeader(flags: 0, length: .max, maxPayloadBytes: .max) == Int(UInt32.max))
        #expect(throws: WireError.self) { try Frame.validateHeader(flags: 0, length: 11, maxPayloadBytes: 10) }
        #expect(throws: WireError.self) { try Frame.validateHeader(flags: 1, length: 0, maxPayloadBytes: 10) }
        #expect(throws: WireError.self) { try Frame.validateHeader(flags: 4, length: 0, maxPayloadBytes: 10) }
    }

    @Test func decodeLastAtEOF() throws {
        var decoder = FrameDecoder(maxPayloadBytes: 100)
        var partial = ByteBuffer(bytes: frameBytes([1, 2, 3]).dropLast())
        #expect(try decoder.decodeLast(buffer: &partial, seenEOF: false) == nil)
        #expect(throws: WireError.self) { try decoder.decodeLast(buffer: &partial, seenEOF: true) }

        var complete = ByteBuffer(bytes: frameBytes([1, 2, 3]) + [0, 0])
        #expect(try decoder.decodeLast(buffer: &complete, seenEOF: true) == ByteBuffer(bytes: [1, 2, 3]))
        #expect(throws: WireError.self) { try decoder.decodeLast(buffer: &complete, seenEOF: true) }

        var empty = ByteBuffer()
        #expect(try decoder.decodeLast(buffer: &empty, seenEOF: true) == nil)
    }

    @Test func encodeWritesHeaderAndPayload() throws {
        for (_, envelope) in everyBodyCase {
            let payload = try envelope.serializedBytes()
            let frame = try Frame.encode(envelope)
            #expect(Array(frame.readableBytesView) == frameBytes(payload))
        }
    }

    @Test func writeAppendsFrames() throws {
        var buffer = ByteBuffer(bytes: [9, 9])
        let a = Wire.Envelope(streamID: 1, body: .ping(nonce: 7))
        let b = Wire.Envelope(streamID: 0, body: nil)
        try Frame.write(a, into: &buffer)
        try Frame.write(b, into: &buffer)
        #expect(Array(buffer.readableBytesView) == [9, 9] + frameBytes(try a.serializedBytes()) + frameBytes([]))
    }

    @Test func envelopeFrameEncoderMatchesFrameEncode() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(EnvelopeFrameEncoder()))
        for (name, envelope) in everyBodyCase {
            try channel.writeOutbound(envelope)
            let written = try #require(try channel.readOutbound(as: ByteBuffer.self), "\(name)")
            #expect(written == (try Frame.encode(envelope)), "\(name)")
        }
        #expect(try channel.finish().isClean)
    }

    @Test func encoderRefusesNUL() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(EnvelopeFrameEncoder()))
        let error = decodeError { try channel.writeOutbound(Wire.Envelope(streamID: 1, body: .hello(.init(apiKey: "a\0b")))) }
        #expect(error?.kind == .embeddedNUL)
        _ = try? channel.finish()
    }

    @Test func encoderOutputDecodes() throws {
        let encoder = EmbeddedChannel(handler: MessageToByteHandler(EnvelopeFrameEncoder()))
        let decoder = makeChannel(maxPayloadBytes: Frame.defaultMaxPayloadBytes)
        for (_, envelope) in everyBodyCase {
            try encoder.writeOutbound(envelope)
            while let bytes = try encoder.readOutbound(as: ByteBuffer.self) { try decoder.writeInbound(bytes) }
        }
        var decoded: [Wire.Envelope] = []
        while let payload = try decoder.readInbound(as: ByteBuffer.self) { decoded.append(try Wire.Envelope(payload: payload)) }
        #expect(decoded == everyBodyCase.map(\.envelope))
        #expect(try encoder.finish().isClean)
        #expect(try decoder.finish().isClean)
    }
}
