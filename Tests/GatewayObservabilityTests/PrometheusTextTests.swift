import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GatewayJSON
import Logging
import Testing

@testable import GatewayObservability

@Suite("Prometheus text format")
struct PrometheusTextTests {
    @Test("Numbers as Prometheus spells them")
    func numbers() {
        #expect(PrometheusText.format(1) == "1")
        #expect(PrometheusText.format(0) == "0")
        #expect(PrometheusText.format(-3) == "-3")
        #expect(PrometheusText.format(0.5) == "0.5")
        #expect(PrometheusText.format(0.0025) == "0.0025")
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.format(-.infinity) == "-Inf")
        #expect(PrometheusText.format(.nan) == "NaN")
        #expect(Double(PrometheusText.format(1e-7)) == 1e-7)
    }

    @Test("Names are checked against the grammar")
    func names() {
        #expect(PrometheusText.isValidMetricName("smg_http_requests_total"))
        #expect(PrometheusText.isValidMetricName("a:b_c9"))
        #expect(!PrometheusText.isValidMetricName("9abc"))
        #expect(!PrometheusText.isValidMetricName("a-b"))
        #expect(!PrometheusText.isValidMetricName(""))
        #expect(PrometheusText.isValidLabelName("worker_id"))
        #expect(!PrometheusText.isValidLabelName("__name"))
        #expect(!PrometheusText.isValidLabelName("a:b"))
    }

    @Test("Counters and gauges render with HELP, TYPE, escaped label values, sorted series")
    func countersAndGauges() {
        let registry = MetricsRegistry()
        let counter = registry.counter("test_events_total", help: "Events seen.\nSecond line \\ here.", labels: ["kind", "path"])
        counter.labels("b", "x").increment(by: 2)
        counter.labels("a", "quote\"back\\slash\nnewline").increment()
        let gauge = registry.gauge("test_level", help: "A level.")
        gauge.labels().set(2.5)
        gauge.labels().sub(1)
        #expect(
            registry.render() == """
                # HELP test_events_total Events seen.\\nSecond line \\\\ here.
                # TYPE test_events_total counter
                test_events_total{kind="a",path="quote\\"back\\\\slash\\nnewline"} 1
                test_events_total{kind="b",path="x"} 2
                # HELP test_level A level.
                # TYPE test_level gauge
                test_level 1.5

                """
        )
    }

    @Test("Histogram buckets are cumulative; +Inf and _count equal the observations; empty series stay out")
    func histogram() {
        let registry = MetricsRegistry()
        let family = registry.histogram("test_seconds", help: "Durations.", labels: ["route"], buckets: [0.1, 1, 10])
        let series = family.labels("/x")
        _ = family.labels("/never-observed")  // shown only once it has an observation
        for value in [0.05, 0.1, 0.5, 5, 50, .nan] { series.observe(value) }
        series.observe(Duration.milliseconds(250))
        #expect(series.count == 6)
        #expect(
            registry.render() == """
                # HELP test_seconds Durations.
                # TYPE test_seconds histogram
                test_seconds_bucket{route="/x",le="0.1"} 2
                test_seconds_bucket{route="/x",le="1"} 4
                test_seconds_bucket{route="/x",le="10"} 5
                test_seconds_bucket{route="/x",le="+Inf"} 6
                test_seconds_sum{route="/x"} 55.9
                test_seconds_count{route="/x"} 6

                """
        )
    }

    @Test("Removed series are gone; collectors add families at scrape time")
    func removalAndCollectors() {
        let registry = MetricsRegistry()
        let family = registry.counter("test_total", help: "T.", labels: ["worker_id"])
        family.labels("w1").increment()
        family.labels("w2").increment()
        family.table.removeAll { $0[0] == "w1" }
        registry.addCollector {
            var gauge = CollectedFamily(name: "test_pool", help: "P.", kind: .gauge)
            gauge.add(3)
            return [gauge]
        }
        let text = registry.render()
        #expect(!text.contains("w1"))
        #expect(text.contains("test_total{worker_id=\"w2\"} 1\n"))
        #expect(text.hasSuffix("# TYPE test_pool gauge\ntest_pool 3\n"))
    }

    @Test("Concurrent increments are never lost")
    func concurrentIncrements() async {
        let registry = MetricsRegistry()
        let counter = registry.counter("test_total", help: "T.").labels()
        let gauge = registry.gauge("test_gauge", help: "G.").labels()
        let histogram = registry.histogram("test_h", help: "H.", buckets: [1]).labels()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<1000 {
                        counter.increment()
                        gauge.add(0.5)
                        histogram.observe(0.5)
                    }
                }
            }
        }
        #expect(counter.value == 8000)
        #expect(gauge.value == 4000)
        #expect(histogram.count == 8000)
        #expect(histogram.sum == 4000)
    }
}

@Suite("Buffered log writer")
struct LogWriterTests {
    /// A pipe: the writer writes into one end, the test reads the other.
    static func pipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        #expect(Glibc.pipe(&fds) == 0)
        return (fds[0], fds[1])
    }

    static func read(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = Glibc.read(fd, &buffer, buffer.count)
        return String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
    }

    @Test("Entries are written in order by the writer, in swift-log's text layout")
    func textLines() {
        let (readEnd, writeEnd) = Self.pipe()
        defer { close(readEnd); close(writeEnd) }
        let writer = LogWriter(descriptor: writeEnd, format: .text)
        var handler = BufferedLogHandler(label: "model-gateway", writer: writer)
        handler.logLevel = .info
        let logger = Logger(label: "model-gateway", factory: { _ in handler })
        logger.info("request", metadata: ["status": .stringConvertible(200), "route": "/v1/completions"])
        logger.warning("second")
        logger.debug("not written")
        writer.flush()
        let lines = Self.read(readEnd).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains(" info model-gateway : route=/v1/completions status=200 [GatewayObservabilityTests] "))
        #expect(lines[0].hasSuffix("] request"))
        #expect(lines[1].contains(" warning model-gateway :"))
        #expect(lines[1].hasSuffix("] second"))
    }

    @Test("One JSON object per line with typed metadata")
    func jsonLineLayout() throws {
        let (readEnd, writeEnd) = Self.pipe()
        defer { close(readEnd); close(writeEnd) }
        let writer = LogWriter(descriptor: writeEnd, format: .json)
        var handler = BufferedLogHandler(label: "model-gateway", writer: writer)
        handler.logLevel = .info
        handler[metadataKey: "component"] = "proxy"
        let logger = Logger(label: "model-gateway", factory: { _ in handler })
        logger.info(
            "request \"quoted\"\nnext",
            metadata: ["status": .stringConvertible(200), "latency_ms": .stringConvertible(12.5), "request_id": "r-1", "aborted": .stringConvertible(true)]
        )
        logger.debug("not written at info")
        writer.flush()
        let written = Self.read(readEnd).split(separator: "\n", omittingEmptySubsequences: true)
        #expect(written.count == 1)
        let text = try #require(written.first)
        let json = try JSONParser.parse(Array(text.utf8))
        #expect(json["level"] == .string("info"))
        #expect(json["label"] == .string("model-gateway"))
        #expect(json["message"] == .string("request \"quoted\"\nnext"))
        #expect(json["metadata"]?["status"]?.intValue == 200)
        #expect(json["metadata"]?["latency_ms"]?.doubleValue == 12.5)
        #expect(json["metadata"]?["request_id"] == .string("r-1"))
        #expect(json["metadata"]?["component"] == .string("proxy"))
        #expect(json["metadata"]?["aborted"] == .bool(true))
        let timestamp = try #require(json["timestamp"]?.stringValue)
        #expect(timestamp.count == 24 && timestamp.hasSuffix("Z") && timestamp.contains("T"), "\(timestamp)")
    }

    @Test("JSON lines parse, with a millisecond UTC timestamp")
    func jsonLines() throws {
        let (readEnd, writeEnd) = Self.pipe()
        defer { close(readEnd); close(writeEnd) }
        let writer = LogWriter(descriptor: writeEnd, format: .json)
        let logger = Logger(label: "model-gateway", factory: { BufferedLogHandler(label: $0, writer: writer) })
        logger.info("request", metadata: ["latency_ms": .stringConvertible(1.5)])
        writer.flush()
        let json = try JSONParser.parse(Array(Self.read(readEnd).utf8))
        #expect(json["metadata"]?["latency_ms"]?.doubleValue == 1.5)
        #expect(json["timestamp"]?.stringValue?.count == 24)
    }

    @Test("A writer whose output is blocked never blocks the caller: past its capacity entries are dropped and counted, then reported")
    func blockedOutput() {
        let (readEnd, writeEnd) = Self.pipe()
        defer { close(readEnd); close(writeEnd) }
        // Never started and never flushed: nothing drains the buffer.
        let writer = LogWriter(descriptor: writeEnd, format: .text, capacity: 10)
        let logger = Logger(label: "model-gateway", factory: { BufferedLogHandler(label: $0, writer: writer) })
        for index in 0..<25 { logger.info("line \(index)") }
        #expect(writer.droppedCount == 15)
        writer.flush()
        let text = Self.read(readEnd)
        #expect(text.contains("15 log lines were dropped"))
        #expect(text.contains("line 9"))
        #expect(!text.contains("line 10"))
    }
}
