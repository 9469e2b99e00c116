import GatewayJSON
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler writing one JSON object per line:
/// `{"timestamp":"2026-11-29T09:16:33.123Z","level":"info","label":"model-gateway","message":"request","metadata":{…}}`.
///
/// Metadata values keep their type where swift-log lets them: integers, doubles
/// and booleans given as `.stringConvertible` become JSON numbers and booleans,
/// strings stay strings, arrays and dictionaries nest.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    private let label: String
    private let sink: @Sendable (String) -> Void

    /// Writes lines to standard error.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.init(label: label, metadataProvider: metadataProvider, sink: Self.standardError)
    }

    /// Hands each line (with its newline) to `sink` (tests capture them this way).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        sink(Self.line(timestamp: Self.timestamp(), level: event.level, label: label, message: event.message.description, metadata: merged))
    }

    /// One log line, newline included.
    static func line(timestamp: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.field("timestamp", timestamp)
        json.field("level", level.rawValue)
        json.field("label", label)
        json.field("message", message)
        json.key("metadata")
        json.beginObject()
        for key in metadata.keys.sorted() {
            json.key(key)
            write(metadata[key]!, to: &json)
        }
        json.endObject()
        json.endObject()
        return json.string + "\n"
    }

    private static func write(_ value: Logger.Metadata.Value, to json: inout JSONWriter) {
        switch value {
        case .string(let string):
            json.string(string)
        case .stringConvertible(let convertible):
            switch convertible {
            case let bool as Bool: json.bool(bool)
            case let int as Int: json.int(int)
            case let int as Int64: json.int(int)
            case let int as UInt64: json.int(int)
            case let int as UInt32: json.int(int)
            case let int as UInt: json.int(int)
            case let double as Double where double.isFinite: json.double(double)
            default: json.string(convertible.description)
            }
        case .array(let values):
            json.beginArray()
            for element in values { write(element, to: &json) }
            json.endArray()
        case .dictionary(let dictionary):
            json.beginObject()
            for key in dictionary.keys.sorted() {
                json.key(key)
                write(dictionary[key]!, to: &json)
            }
            json.endObject()
        }
    }

    /// Now, in UTC, as ISO 8601 with milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2) + "T" + pad(parts.tm_hour, 2) + ":"
            + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2) + "." + pad(Int32(now.tv_nsec / 1_000_000), 3) + "Z"
    }

    /// Lines from several threads never interleave: each is one `write` under a lock.
    private static let writeLock = Mutex(())

    @Sendable private static func standardError(_ line: String) {
        writeLock.withLock { _ in
            var line = line
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = systemWrite(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written <= 0 {
                        if written < 0 && errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }
}

/// `write(2)`, out of reach of `JSONLogHandler`'s own `write` members.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
