import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes log lines to a file descriptor from a thread of its own, so logging never
/// formats or blocks on the request path.
///
/// A logging call captures the time (one `clock_gettime`), the message and the metadata
/// and appends them to a bounded buffer under a short lock. Every `tick` the writer
/// thread takes what accumulated, formats it (the second of a timestamp once per tick)
/// and writes it with one `write(2)`. A slow or blocked descriptor stalls only that
/// thread: once `capacity` entries wait, further ones are dropped and counted, and the
/// count is logged when writing resumes.
public final class LogWriter: Sendable {
    /// How lines look.
    public enum Format: Sendable {
        /// swift-log's `StreamLogHandler` layout: `2026-11-29T09:16:33+0000 info label : key=value [source] message`.
        case text
        /// One JSON object per line (``JSONLogLine``'s layout).
        case json
    }

    struct Entry: Sendable {
        let seconds: Int
        let nanoseconds: Int
        let level: Logger.Level
        let label: String
        let message: String
        let metadata: Logger.Metadata
        let source: String
    }

    private struct Pending {
        var entries: [Entry] = []
        var dropped = 0
        var stopped = false
    }

    public let format: Format
    private let descriptor: Int32
    private let capacity: Int
    private let tick: Duration
    private let pending = Mutex(Pending())
    /// Serialises the formatting and writing of batches (the writer thread, or `flush`).
    private let writing = Mutex(())

    /// The process's writer to standard error, started on first use.
    public static let standardError: LogWriter = {
        let writer = LogWriter(descriptor: 2, format: .text)
        writer.start()
        return writer
    }()

    /// The process's JSON writer to standard error, started on first use.
    public static let standardErrorJSON: LogWriter = {
        let writer = LogWriter(descriptor: 2, format: .json)
        writer.start()
        return writer
    }()

    public init(descriptor: Int32, format: Format, capacity: Int = 65_536, tick: Duration = .milliseconds(10)) {
        self.descriptor = descriptor
        self.format = format
        self.capacity = max(capacity, 1)
        self.tick = tick
    }

    /// Starts the writer thread.
    public func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let created = pthread_create(
            &thread, nil,
            { argument in
                let writer = Unmanaged<LogWriter>.fromOpaque(argument!).takeRetainedValue()
                writer.run()
                return nil
            }, box.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            box.release()
        }
    }

    /// Entries dropped so far because the buffer was full.
    public var droppedCount: Int { pending.withLock { $0.dropped } }

    func append(_ entry: Entry) {
        pending.withLock { pending in
            if pending.entries.count >= capacity {
                pending.dropped += 1
            } else {
                pending.entries.append(entry)
            }
        }
    }

    /// Writes everything buffered now (at exit, and in tests).
    public func flush() {
        writing.withLock { _ in writeBatch() }
    }

    /// Stops the thread after a last flush.
    public func stop() {
        pending.withLock { $0.stopped = true }
        flush()
    }

    private func run() {
        let (seconds, attoseconds) = tick.components
        var interval = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        while true {
            var remaining = timespec()
            nanosleep(&interval, &remaining)
            let stopped = writing.withLock { _ in
                writeBatch()
                return pending.withLock { $0.stopped }
            }
            if stopped { return }
        }
    }

    /// Formats and writes what accumulated (under `writing`).
    private func writeBatch() {
        let (entries, dropped) = pending.withLock { pending -> ([Entry], Int) in
            let taken = pending.entries
            pending.entries.removeAll(keepingCapacity: true)
            let dropped = pending.dropped
            pending.dropped = 0
            return (taken, dropped)
        }
        guard !entries.isEmpty || dropped > 0 else { return }
        var out: [UInt8] = []
        out.reserveCapacity(entries.count * 200)
        var clock = TimestampCache()
        if dropped > 0 {
            let now = Self.now()
            let notice = Entry(
                seconds: now.seconds, nanoseconds: now.nanoseconds, level: .warning, label: entries.first?.label ?? "model-gateway",
                message: "\(dropped) log lines were dropped: the log output did not keep up", metadata: ["dropped": .stringConvertible(dropped)],
                source: "GatewayObservability"
            )
            format(notice, into: &out, clock: &clock)
        }
        for entry in entries { format(entry, into: &out, clock: &clock) }
        Self.writeAll(descriptor, out)
    }

    private func format(_ entry: Entry, into out: inout [UInt8], clock: inout TimestampCache) {
        switch format {
        case .json:
            let line = JSONLogLine.line(
                timestamp: clock.iso8601(seconds: entry.seconds, nanoseconds: entry.nanoseconds), level: entry.level, label: entry.label, message: entry.message, metadata: entry.metadata
            )
            out.append(contentsOf: line.utf8)
        case .text:
            out.append(contentsOf: clock.text(seconds: entry.seconds).utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: entry.level.rawValue.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: entry.label.utf8)
            out.append(contentsOf: " :".utf8)
            for key in entry.metadata.keys.sorted() {
                out.append(UInt8(ascii: " "))
                out.append(contentsOf: key.utf8)
                out.append(UInt8(ascii: "="))
                out.append(contentsOf: entry.metadata[key]!.description.utf8)
            }
            out.append(contentsOf: " [".utf8)
            out.append(contentsOf: entry.source.utf8)
            out.append(contentsOf: "] ".utf8)
            out.append(contentsOf: entry.message.utf8)
            out.append(UInt8(ascii: "\n"))
        }
    }

    /// The wall clock (one vDSO call).
    static func now() -> (seconds: Int, nanoseconds: Int) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int(now.tv_sec), Int(now.tv_nsec))
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    if written < 0 && errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// Formats timestamps of one batch, the date and time of a second only once.
struct TimestampCache {
    private var second = -1
    private var textPrefix = ""
    private var isoPrefix = ""

    private mutating func load(_ seconds: Int) {
        guard seconds != second else { return }
        second = seconds
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        let date = pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
        let clock = pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
        textPrefix = date + "T" + clock + "+0000"
        isoPrefix = date + "T" + clock + "."
    }

    /// `2026-11-29T09:16:33+0000` (swift-log's text layout, in UTC).
    mutating func text(seconds: Int) -> String {
        load(seconds)
        return textPrefix
    }

    /// `2026-11-29T09:16:33.123Z`.
    mutating func iso8601(seconds: Int, nanoseconds: Int) -> String {
        load(seconds)
        let millis = nanoseconds / 1_000_000
        return isoPrefix + (millis < 10 ? "00" : millis < 100 ? "0" : "") + String(millis) + "Z"
    }
}

/// A swift-log handler that hands every entry to a ``LogWriter``.
public struct BufferedLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    private let label: String
    private let writer: LogWriter

    public init(label: String, writer: LogWriter, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.writer = writer
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata {
            if merged.isEmpty { merged = explicit } else { merged.merge(explicit) { _, new in new } }
        }
        if let error = event.error { merged["error"] = .string("\(error)") }
        let now = LogWriter.now()
        writer.append(
            LogWriter.Entry(seconds: now.seconds, nanoseconds: now.nanoseconds, level: event.level, label: label, message: event.message.description, metadata: merged, source: event.source)
        )
    }
}
