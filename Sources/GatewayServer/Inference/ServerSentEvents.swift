import NIOCore

/// Splits a byte stream of server-sent events into the `data` of each event.
///
/// Events end with a blank line (`\n\n` or `\r\n\r\n`); an event's `data:` lines
/// are joined with `\n`; other fields (`event:`, `id:`, comments) are dropped.
/// Bytes of an unfinished event are kept until the rest arrives. The CLI's `--rest`
/// mode reads the gateway's streams with it too.
public struct ServerSentEventParser {
    private var pending: [UInt8] = []

    public init() {}

    /// Feeds bytes; returns the data of every event they complete.
    public mutating func feed(_ buffer: ByteBuffer) -> [String] {
        pending.append(contentsOf: buffer.readableBytesView)
        var events: [String] = []
        var start = 0
        var index = 0
        while index < pending.count {
            // A blank line: "\n\n", or "\n\r\n" as in "\r\n\r\n".
            if pending[index] == UInt8(ascii: "\n") {
                var end = index + 1
                if end < pending.count, pending[end] == UInt8(ascii: "\r") { end += 1 }
                if end < pending.count, pending[end] == UInt8(ascii: "\n") {
                    if let data = Self.data(of: pending[start..<index]) { events.append(data) }
                    start = end + 1
                    index = start
                    continue
                }
            }
            index += 1
        }
        pending.removeFirst(start)
        return events
    }

    private static func data(of event: ArraySlice<UInt8>) -> String? {
        var lines: [String] = []
        for rawLine in event.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            guard line.starts(with: "data:".utf8) else { continue }
            line = line.dropFirst(5)
            if line.first == UInt8(ascii: " ") { line = line.dropFirst() }
            lines.append(String(decoding: line, as: UTF8.self))
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }
}

enum ServerSentEvent {
    /// One `data:` event.
    static func data(_ payload: some Sequence<UInt8>) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("data: ")
        buffer.writeBytes(Array(payload))
        buffer.writeString("\n\n")
        return buffer
    }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")
}
