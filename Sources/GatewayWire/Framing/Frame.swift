import NIOCore

/// The binary protocol's framing: 1 flag byte, a 4-byte big-endian payload
/// length, then the payload (one protobuf `Envelope`).
public enum Frame {
    /// Bytes before the payload.
    public static let headerSize = 5
    /// Flag bit 0: the payload is compressed (not supported: refused).
    public static let compressedFlag: UInt8 = 0x01
    /// The default limit on a payload's length.
    public static let defaultMaxPayloadBytes = 4 * 1024 * 1024

    /// Appends one frame carrying `envelope` to `buffer`.
    public static func write(_ envelope: Wire.Envelope, into buffer: inout ByteBuffer) throws(WireError) {
        let headerIndex = buffer.writerIndex
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(0))
        let size: Int
        do {
            size = try envelope.serialize(into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: headerIndex)
            throw error
        }
        buffer.setInteger(UInt32(truncatingIfNeeded: size), at: headerIndex + 1)
    }

    /// One frame carrying `envelope`, in a new buffer.
    public static func encode(_ envelope: Wire.Envelope, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(WireError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        try write(envelope, into: &buffer)
        return buffer
    }

    /// Checks a frame header; returns the payload length. Throws for reserved or
    /// compressed flags and for a length over `maxPayloadBytes`, before any
    /// payload byte is read or stored.
    public static func validateHeader(flags: UInt8, length: UInt32, maxPayloadBytes: Int) throws(WireError) -> Int {
        if flags & compressedFlag != 0 {
            throw WireError(.compressedFrame, "compressed frames are not supported (flag byte 0x\(String(flags, radix: 16)))")
        }
        if flags != 0 {
            throw WireError(.reservedFlags, "reserved frame flag bits are set (flag byte 0x\(String(flags, radix: 16)))")
        }
        guard UInt64(length) <= UInt64(maxPayloadBytes) else {
            throw WireError(.frameTooLarge, "frame payload of \(length) bytes exceeds the limit of \(maxPayloadBytes) bytes")
        }
        return Int(length)
    }
}

extension ByteBuffer: SerializationTarget {
    public mutating func appendPacked(count: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Void) {
        guard count > 0 else { return }
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            write(raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return count
        }
    }
}

/// Splits a byte stream into frame payloads.
///
/// The length in a header is checked against the limit as soon as the 5 header
/// bytes are there, so an oversize frame is refused before its payload is
/// buffered. Yields each payload as a slice of the input (no copy).
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxPayloadBytes: Int

    public init(maxPayloadBytes: Int = Frame.defaultMaxPayloadBytes) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let flags = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        let payloadLength = try Frame.validateHeader(flags: flags, length: length, maxPayloadBytes: maxPayloadBytes)
        guard buffer.readableBytes >= Frame.headerSize + payloadLength else { return nil }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        return buffer.readSlice(length: payloadLength)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if seenEOF && buffer.readableBytes > 0 {
            throw WireError(.malformedPayload, "the stream ended inside a frame (\(buffer.readableBytes) bytes left)")
        }
        return nil
    }
}

/// Turns outbound `Wire.Envelope`s into frames.
public struct EnvelopeFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Wire.Envelope

    public init() {}

    public func encode(data: Wire.Envelope, out: inout ByteBuffer) throws {
        try Frame.write(data, into: &out)
    }
}

extension Wire.Envelope {
    /// Decodes an envelope from a frame payload.
    public init(payload: ByteBuffer) throws(WireError) {
        let result = payload.withUnsafeReadableBytes { raw in
            Result { () throws(WireError) in try Wire.Envelope(serializedBytes: raw) }
        }
        self = try result.get()
    }

    /// The `stream_id` of a payload that may not decode as a whole, so an error
    /// can still be answered on the right stream. Reads only top-level field 1.
    public static func peekStreamID(payload: ByteBuffer) -> UInt64? {
        var buffer = payload
        while buffer.readableBytes > 0 {
            guard let key = buffer.readVarint() else { return nil }
            let field = key >> 3
            switch key & 7 {
            case 0:
                guard let value = buffer.readVarint() else { return nil }
                if field == 1 { return value }
            case 1:
                guard buffer.readSlice(length: 8) != nil else { return nil }
            case 2:
                guard let length = buffer.readVarint(), length <= UInt64(buffer.readableBytes),
                    buffer.readSlice(length: Int(length)) != nil
                else { return nil }
            case 5:
                guard buffer.readSlice(length: 4) != nil else { return nil }
            default:
                return nil
            }
        }
        return nil
    }
}

extension ByteBuffer {
    fileprivate mutating func readVarint() -> UInt64? {
        var result: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = readInteger(as: UInt8.self) else { return nil }
            result |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return result }
        }
        return nil
    }
}
