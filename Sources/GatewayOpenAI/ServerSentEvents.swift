import NIOCore

/// One server-sent event: its `data` (the `data:` lines joined with `\n`), and its
/// `event:` name and `id:` when it has them (Anthropic's and the Responses API's
/// streams name their events; OpenAI's chat and completion streams do not).
public struct ServerSentEvent: Sendable, Equatable {
    public var name: String?
    public var data: ByteBuffer
    public var id: String?

    public init(name: String? = nil, data: ByteBuffer, id: String? = nil) {
        self.name = name
        self.data = data
        self.id = id
    }

    /// An event holding `data` only.
    public init(data: some Sequence<UInt8>) {
        var buffer = ByteBuffer()
        buffer.writeBytes(data)
        self.init(data: buffer)
    }

    /// `data: [DONE]`, the end of an OpenAI stream.
    public static let done = ServerSentEvent(data: ByteBuffer(string: "[DONE]"))

    /// Whether this is `data: [DONE]`.
    public var isDone: Bool {
        data.readableBytes == 6 && data.readableBytesView.elementsEqual("[DONE]".utf8)
    }

    /// The event in the wire format, ending with its blank line. Data holding line
    /// breaks becomes several `data:` lines, so the reader joins them back.
    public func write(into out: inout ByteBuffer) {
        if let id {
            out.writeStaticString("id: ")
            out.writeString(id)
            out.writeStaticString("\n")
        }
        if let name {
            out.writeStaticString("event: ")
            out.writeString(name)
            out.writeStaticString("\n")
        }
        let view = data.readableBytesView
        if !view.contains(UInt8(ascii: "\n")) {
            out.writeStaticString("data: ")
            out.writeImmutableBuffer(data)
            out.writeStaticString("\n\n")
            return
        }
        for line in view.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            out.writeStaticString("data: ")
            out.writeBytes(line)
            out.writeStaticString("\n")
        }
        out.writeStaticString("\n")
    }

    /// The event in the wire format.
    public var encoded: ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(data.readableBytes + 16)
        write(into: &out)
        return out
    }
}

/// Splits a byte stream of server-sent events (the WHATWG event-stream format) into
/// events, as the bytes arrive.
///
/// Lines end with `\n`, `\r\n` or `\r`; a blank line ends an event; `data:` lines are
/// joined with `\n`; `event:` and `id:` are kept; comments (`:` lines), `retry:` and
/// unknown fields are dropped, and so is an event without data. Bytes of an unfinished
/// event are kept until the rest arrives. An event of one `data:` line that arrived in
/// one piece is handed over as a slice of the input (no copy).
///
/// The gateway decodes a worker's stream once, here; the REST door writes the events
/// back out, the binary door turns them into chunks, and the CLI reads the gateway's
/// own streams with it.
public struct EventStreamDecoder: Sendable {
    /// Input not yet ending in a complete line.
    private var pending = ByteBuffer()
    /// The event being read.
    private var data: ByteBuffer?
    private var name: String?
    private var id: String?
    /// The last byte seen was a `\r`: a `\n` right after it ends nothing more.
    private var afterCR = false

    public init() {}

    /// Feeds bytes; calls `onEvent` for every event they complete, in order.
    public mutating func feed(_ buffer: ByteBuffer, _ onEvent: (ServerSentEvent) throws -> Void) rethrows {
        var input: ByteBuffer
        if pending.readableBytes == 0 {
            input = buffer
        } else {
            pending.writeImmutableBuffer(buffer)
            input = pending
            pending = ByteBuffer()
        }
        while let (line, rest) = Self.nextLine(in: input, afterCR: &afterCR) {
            input = rest
            if let event = takeLine(line) { try onEvent(event) }
        }
        if input.readableBytes > 0 {
            // An incomplete line: kept (copied: the caller's buffer is not held on to).
            pending = ByteBuffer()
            pending.writeImmutableBuffer(input)
        }
    }

    /// The input ended: an event not yet closed by its blank line is handed over, since
    /// a worker that closes its stream without one still meant it.
    public mutating func finish() -> ServerSentEvent? {
        if pending.readableBytes > 0 {
            let line = pending
            pending = ByteBuffer()
            _ = takeLine(line)
        }
        return dispatch()
    }

    /// The first line of `input` (without its end) and what follows it; nil when no
    /// line end is in `input`.
    private static func nextLine(in input: ByteBuffer, afterCR: inout Bool) -> (ByteBuffer, ByteBuffer)? {
        var input = input
        if afterCR, input.readableBytes > 0 {
            afterCR = false
            if input.readableBytesView.first == UInt8(ascii: "\n") { input.moveReaderIndex(forwardBy: 1) }
        }
        let view = input.readableBytesView
        guard let end = view.firstIndex(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else { return nil }
        let length = end - view.startIndex
        let line = input.getSlice(at: input.readerIndex, length: length)!
        var rest = input
        rest.moveReaderIndex(forwardBy: length + 1)
        if view[end] == UInt8(ascii: "\r") {
            if rest.readableBytes > 0 {
                if rest.readableBytesView.first == UInt8(ascii: "\n") { rest.moveReaderIndex(forwardBy: 1) }
            } else {
                afterCR = true
            }
        }
        return (line, rest)
    }

    /// One line of the stream; the event it completes, if any.
    private mutating func takeLine(_ line: ByteBuffer) -> ServerSentEvent? {
        if line.readableBytes == 0 { return dispatch() }
        let view = line.readableBytesView
        if view.first == UInt8(ascii: ":") { return nil }
        let colon = view.firstIndex(of: UInt8(ascii: ":"))
        let fieldLength = (colon ?? view.endIndex) - view.startIndex
        var value = line
        if colon != nil {
            value.moveReaderIndex(forwardBy: fieldLength + 1)
            if value.readableBytesView.first == UInt8(ascii: " ") { value.moveReaderIndex(forwardBy: 1) }
        } else {
            value = ByteBuffer()
        }
        let field = view.prefix(fieldLength)
        if field.elementsEqual("data".utf8) {
            if data == nil {
                data = value
            } else {
                data!.writeStaticString("\n")
                data!.writeImmutableBuffer(value)
            }
        } else if field.elementsEqual("event".utf8) {
            name = String(buffer: value)
        } else if field.elementsEqual("id".utf8) {
            id = String(buffer: value)
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            data = nil
            name = nil
            id = nil
        }
        guard let data else { return nil }
        return ServerSentEvent(name: name, data: data, id: id)
    }
}
