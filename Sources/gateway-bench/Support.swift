#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic nanoseconds (cheap: one vDSO call).
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Percentiles of a latency sample, in microseconds.
struct LatencySummary {
    var count = 0
    var mean = 0.0
    var p50 = 0.0
    var p90 = 0.0
    var p99 = 0.0
    var p999 = 0.0
    var max = 0.0

    init() {}

    init(nanos samples: [UInt64]) {
        guard !samples.isEmpty else { return }
        let sorted = samples.sorted()
        func pct(_ p: Double) -> Double {
            let index = Swift.min(sorted.count - 1, Swift.max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[index]) / 1000
        }
        count = sorted.count
        var total: Double = 0
        for s in sorted { total += Double(s) }
        mean = total / Double(sorted.count) / 1000
        p50 = pct(50)
        p90 = pct(90)
        p99 = pct(99)
        p999 = pct(99.9)
        max = Double(sorted.last!) / 1000
    }

    func json() -> JSON {
        .object([
            ("count", .int(count)), ("mean_us", .double(mean)), ("p50_us", .double(p50)), ("p90_us", .double(p90)),
            ("p99_us", .double(p99)), ("p999_us", .double(p999)), ("max_us", .double(max)),
        ])
    }
}

/// A minimal JSON value for printing results (keys keep their order).
indirect enum JSON {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    var rendered: String {
        var out = ""
        render(into: &out)
        return out
    }

    func render(into out: inout String) {
        switch self {
        case .int(let v): out += String(v)
        case .double(let v):
            if v.isFinite {
                out += String((v * 1000).rounded() / 1000)
            } else {
                out += "null"
            }
        case .string(let s): JSON.quote(s, into: &out)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.render(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(key, into: &out)
                out += ":"
                value.render(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// Reads `/proc/<pid>/status` fields (kB) such as VmRSS and VmHWM.
func procStatusKB(pid: Int32, field: String) -> Int? {
    guard let file = fopen("/proc/\(pid)/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix(field + ":") {
            let digits = text.dropFirst(field.count + 1).filter(\.isNumber)
            return Int(digits)
        }
    }
    return nil
}

/// utime + stime of a process, in seconds.
func procCPUSeconds(pid: Int32) -> Double? {
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 4096)
    guard fgets(&line, Int32(line.count), file) != nil else { return nil }
    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the comm field: state is field 3, utime 14, stime 15 (1-based) -> indices 11 and 12 here.
    guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
    return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func printErr(_ message: String) {
    var message = message + "\n"
    message.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
}
