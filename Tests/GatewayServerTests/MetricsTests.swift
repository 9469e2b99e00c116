import Foundation
import GatewayClient
import GatewayCore
import GatewayJSON
import GatewayWire
import Logging
import NIOHTTP1
import SimWorker
import Synchronization
import Testing

@testable import GatewayServer

/// One scrape of `/metrics`, parsed into samples.
struct Scrape {
    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    let text: String
    let samples: [Sample]

    init(_ text: String) {
        self.text = text
        var samples: [Sample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...].replacingOccurrences(of: "+Inf", with: "inf"))
            else { continue }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples.append(Sample(name: String(series), labels: [:], value: value))
                continue
            }
            samples.append(Sample(name: String(series[..<brace]), labels: Self.labels(series[series.index(after: brace)..<series.index(before: series.endIndex)]), value: value))
        }
        self.samples = samples
    }

    /// `a="x",b="y\"z"` into a dictionary (escapes undone).
    static func labels(_ text: Substring) -> [String: String] {
        var labels: [String: String] = [:]
        var rest = text[...]
        while let equals = rest.firstIndex(of: "=") {
            let name = String(rest[..<equals]).trimmingCharacters(in: CharacterSet(charactersIn: ","))
            var index = rest.index(equals, offsetBy: 2)
            var value = ""
            while rest[index] != "\"" {
                if rest[index] == "\\" {
                    index = rest.index(after: index)
                    value.append(rest[index] == "n" ? "\n" : rest[index])
                } else {
                    value.append(rest[index])
                }
                index = rest.index(after: index)
            }
            labels[name] = value
            rest = rest[rest.index(after: index)...]
        }
        return labels
    }

    /// The value of the one sample named `name` whose labels include `labels`; nil when there is none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
        #expect(matching.count <= 1, "\(name) \(labels) matches \(matching.count) samples")
        return matching.first?.value
    }

    /// Every sample of `name`.
    func all(_ name: String) -> [Sample] { samples.filter { $0.name == name } }
}

extension TestGateway {
    func scrape() async throws -> Scrape {
        let response = try await get("/metrics")
        #expect(response.status == 200)
        #expect(response.headers.first(name: "content-type") == "text/plain; version=0.0.4; charset=utf-8")
        return Scrape(response.text)
    }

    /// Scrapes until `condition` holds (a request is recorded when its last byte is out,
    /// which may be just after the client has read it); returns that scrape.
    func scrape(until what: String, _ condition: @escaping (Scrape) -> Bool) async throws -> Scrape {
        var last: Scrape?
        try await eventually(what, timeout: .seconds(5)) {
            let scrape = try await scrape()
            last = scrape
            return condition(scrape)
        }
        return last!
    }
}

/// Keeps every log record (tests look for the per-request line).
struct CapturingLogHandler: LogHandler {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    final class Store: Sendable {
        let records = Mutex<[Record]>([])
        var all: [Record] { records.withLock { $0 } }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        store.records.withLock { $0.append(Record(level: event.level, message: event.message.description, metadata: merged.mapValues(\.description))) }
    }
}

@Suite("Metrics and request logs")
struct MetricsTests {
    static let route = "/v1/completions"

    @Test("Requests are counted by route, status and model; histograms count every one")
    func requestsCounted() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with({ $0.admission.maxConcurrentRequests = 4 }) { gw in
                let id = try #require(try await gw.addHealthyWorkers(urls).first)
                for _ in 0..<3 {
                    #expect(try await gw.complete().status == 200)
                }
                let labels = ["route": Self.route, "status_code": "200", "model": "sim-model"]
                let scrape = try await gw.scrape(until: "3 requests recorded") { $0.value("smg_http_requests_total", labels) == 3 }
                #expect(scrape.value("smg_http_request_duration_seconds_count", ["route": Self.route]) == 3)
                #expect(scrape.value("smg_http_request_duration_seconds_bucket", ["route": Self.route, "le": "+Inf"]) == 3)
                #expect(scrape.value("smg_http_time_to_first_byte_seconds_count", ["route": Self.route]) == 3)
                #expect((scrape.value("smg_http_request_duration_seconds_sum", ["route": Self.route]) ?? 0) > 0)
                #expect(scrape.value("smg_worker_request_duration_seconds_count", ["worker_id": id]) == 3)
                #expect(scrape.value("smg_worker_pool_size") == 1)
                #expect(scrape.value("smg_worker_health", ["worker_id": id]) == 1)
                #expect(scrape.value("smg_worker_requests_active", ["worker_id": id]) == 0)
                #expect(scrape.value("smg_worker_cb_state", ["worker_id": id]) == 0)
                #expect(scrape.value("smg_worker_cb_transitions_total", ["worker_id": id, "to": "open"]) == 0)
                #expect(scrape.value("smg_admission_max_concurrent") == 4)
                #expect(scrape.value("smg_admission_requests_running") == 0)
                #expect(scrape.value("smg_admission_queue_depth") == 0)
                #expect(scrape.value("smg_router_retries_total", ["route": Self.route]) == nil)
                // Control-plane routes are counted under their pattern, without a model.
                #expect(scrape.value("smg_http_requests_total", ["route": "/workers", "status_code": "202", "model": ""]) == 1)
                #expect((scrape.value("smg_http_requests_total", ["route": "/workers/{worker_id}", "status_code": "200", "model": ""]) ?? 0) >= 1)
                // Every family has its HELP and TYPE.
                #expect(scrape.text.contains("# TYPE smg_http_requests_total counter\n"))
                #expect(scrape.text.contains("# TYPE smg_http_request_duration_seconds histogram\n"))
                #expect(scrape.text.contains("# TYPE smg_worker_health gauge\n"))
            }
        }
    }

    @Test("Label values stay bounded: unknown models and paths are not labels")
    func boundedLabels() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                #expect(try await gw.complete(fields: #""model": "no-such-model-qzxa""#).status == 404)
                #expect(try await gw.get("/no/such/path/qzxb").status == 404)
                #expect(try await gw.get("/workers/not-a-uuid-qzxc").status == 400)
                let scrape = try await gw.scrape(until: "the 404 for the unknown path recorded") {
                    $0.value("smg_http_requests_total", ["route": "unmatched", "status_code": "404"]) == 1
                }
                #expect(scrape.value("smg_http_requests_total", ["route": Self.route, "status_code": "404", "model": "other"]) == 1)
                #expect(scrape.value("smg_http_requests_total", ["route": "/workers/{worker_id}", "status_code": "400"]) == 1)
                for raw in ["no-such-model-qzxa", "qzxb", "not-a-uuid-qzxc"] {
                    #expect(!scrape.text.contains(raw), "\(raw) leaked into a label")
                }
                let routes = Set(scrape.all("smg_http_requests_total").compactMap { $0.labels["route"] })
                #expect(routes.isSubset(of: Set(["unmatched", "/workers", "/workers/{worker_id}", Self.route])), "\(routes)")
            }
        }
    }

    @Test("A removed worker's series disappear from the next scrape")
    func removedWorkerSeries() async throws {
        try await withSimWorkers(2) { _, urls in
            try await TestGateway.with({ $0.routing.policy = .roundRobin }) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                for _ in 0..<4 {
                    #expect(try await gw.complete().status == 200)
                }
                let before = try await gw.scrape(until: "both workers served") { scrape in
                    ids.allSatisfy { scrape.value("smg_worker_request_duration_seconds_count", ["worker_id": $0]) == 2 }
                }
                for family in ["smg_worker_health", "smg_worker_cb_state", "smg_worker_requests_active"] {
                    #expect(before.value(family, ["worker_id": ids[0]]) != nil, "\(family) of the first worker")
                }
                #expect(try await gw.delete("/workers/\(ids[0])").status == 202)
                let after = try await gw.scrape(until: "the removed worker left the pool") { $0.value("smg_worker_pool_size") == 1 }
                let leftovers = after.text.split(separator: "\n").filter { $0.contains(ids[0]) }
                #expect(leftovers.isEmpty, "series of the removed worker: \(leftovers)")
                #expect(after.value("smg_worker_request_duration_seconds_count", ["worker_id": ids[1]]) == 2)
                #expect(after.value("smg_worker_health", ["worker_id": ids[1]]) == 1)
            }
        }
    }

    @Test("Retries, the breaker's state and its transitions are counted when a worker fails")
    func retriesAndBreaker() async throws {
        let store = CapturingLogHandler.Store()
        try await withSimWorkers(2) { workers, urls in
            try await TestGateway.with({
                $0.routing.policy = .roundRobin
                $0.circuitBreaker = .init(failureThreshold: 1, openDuration: .seconds(60))
                $0.healthCheck = HealthCheckConfig(timeout: .seconds(2), interval: .seconds(60), failureThreshold: 3, successThreshold: 2)
                $0.logLevel = .info
            }, logHandler: CapturingLogHandler(store: store)) { gw in
                let ids = try await gw.addHealthyWorkers(urls)
                workers[0].setFailureRate(1)
                for _ in 0..<4 {
                    #expect(try await gw.complete().status == 200)
                }
                let failed = workers[0].requestCount(path: Self.route)
                #expect(failed == 1, "the breaker opens after the first 500")
                let scrape = try await gw.scrape(until: "4 requests recorded") {
                    $0.value("smg_http_requests_total", ["route": Self.route, "status_code": "200", "model": "sim-model"]) == 4
                }
                #expect(scrape.value("smg_router_retries_total", ["route": Self.route]) == Double(failed))
                #expect(scrape.value("smg_worker_cb_state", ["worker_id": ids[0]]) == 1)
                #expect(scrape.value("smg_worker_cb_transitions_total", ["worker_id": ids[0], "to": "open"]) == 1)
                #expect(scrape.value("smg_worker_cb_state", ["worker_id": ids[1]]) == 0)
                #expect(scrape.value("smg_worker_cb_transitions_total", ["worker_id": ids[1], "to": "open"]) == 0)
                #expect(scrape.value("smg_worker_request_duration_seconds_count", ["worker_id": ids[0]]) == Double(failed))
                #expect(scrape.value("smg_worker_request_duration_seconds_count", ["worker_id": ids[1]]) == 4)
                // The retried request says so in its log line, and names the worker that answered.
                let lines = store.all.filter { $0.message == "request" && $0.metadata["route"] == Self.route }
                #expect(lines.count == 4)
                #expect(lines.filter { $0.metadata["retries"] == "1" }.count == failed)
                #expect(lines.allSatisfy { $0.metadata["worker_id"] == ids[1] && $0.metadata["status"] == "200" })
            }
        }
    }

    @Test("--prometheus-port serves the same text on its own listener")
    func prometheusListener() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with({ $0.metrics = .init(host: "127.0.0.1", port: 0) }) { gw in
                _ = try await gw.addHealthyWorkers(urls)
                #expect(try await gw.complete().status == 200)
                let labels = ["route": Self.route, "status_code": "200", "model": "sim-model"]
                _ = try await gw.scrape(until: "the request recorded") { $0.value("smg_http_requests_total", labels) == 1 }
                try await eventually("the prometheus listener is up") { gw.gateway.prometheusPort != nil }
                let port = try #require(gw.gateway.prometheusPort)
                #expect(port != gw.port)
                let separate = try await gw.send(.GET, to: "http://127.0.0.1:\(port)/metrics")
                let main = try await gw.get("/metrics")
                #expect(separate.status == 200)
                #expect(separate.headers.first(name: "content-type") == "text/plain; version=0.0.4; charset=utf-8")
                // The same text, except that the scrape on the REST port counts itself as in flight.
                func withoutActive(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("smg_http_requests_active ") } }
                #expect(withoutActive(separate.text) == withoutActive(main.text))
                #expect(Scrape(separate.text).value("smg_http_requests_active") == 0)
                #expect(Scrape(main.text).value("smg_http_requests_active") == 1)
                #expect(Scrape(separate.text).value("smg_http_requests_total", labels) == 1)
                // Only /metrics there.
                #expect(try await gw.send(.GET, to: "http://127.0.0.1:\(port)/workers").status == 404)
                #expect(try await gw.send(.POST, to: "http://127.0.0.1:\(port)/metrics", body: "{}").status == 405)
            }
        }
    }

    @Test("Binary connections, streams and generate calls are counted")
    func binaryProtocol() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                let port = try #require(gw.gateway.binaryPort)
                let client = try await GatewayClient.connect(host: "127.0.0.1", port: port)
                let result = try await client.generate(Wire.GenerateRequest(input: .text("hello"), requestID: "bin-req-1"))
                #expect(!result.workerID.isEmpty)
                let open = try await gw.scrape(until: "the generate call recorded") {
                    $0.value("smg_http_requests_total", ["route": "binary:generate", "status_code": "200", "model": "sim-model"]) == 1
                }
                #expect(open.value("smg_binary_connections_active") == 1)
                #expect(open.value("smg_binary_streams_total") == 1)
                #expect(open.value("smg_binary_streams_active") == 0)
                #expect(open.value("smg_http_request_duration_seconds_count", ["route": "binary:generate"]) == 1)
                #expect(open.value("smg_worker_request_duration_seconds_count", ["worker_id": result.workerID]) == 1)
                await client.close()
                _ = try await gw.scrape(until: "the connection closed") { $0.value("smg_binary_connections_active") == 0 }
            }
        }
    }

    @Test("One info line per inference request, with its id, worker, status, latency and retries; no API key anywhere")
    func requestLogLine() async throws {
        let secret = "sk-worker-secret-8472"
        let store = CapturingLogHandler.Store()
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with({ $0.logLevel = .info }, logHandler: CapturingLogHandler(store: store)) { gw in
                let id = try #require(try await gw.addHealthyWorkers(urls, extra: { _ in #""api_key": "\#(secret)""# }).first)
                let response = try await gw.complete(headers: [("X-Request-Id", "req-metrics-1")])
                #expect(response.status == 200)
                #expect(try await gw.get("/health").status == 200)
                try await eventually("the request line is logged") {
                    store.all.contains { $0.message == "request" && $0.metadata["request_id"] == "req-metrics-1" }
                }
                let lines = store.all.filter { $0.message == "request" && $0.metadata["request_id"] == "req-metrics-1" }
                #expect(lines.count == 1)
                let line = try #require(lines.first)
                #expect(line.level == .info)
                #expect(line.metadata["route"] == Self.route)
                #expect(line.metadata["model"] == "sim-model")
                #expect(line.metadata["worker_id"] == id)
                #expect(line.metadata["status"] == "200")
                #expect(line.metadata["retries"] == "0")
                #expect(Double(line.metadata["latency_ms"] ?? "") != nil, "\(line.metadata)")
                // Probes and scrapes stay out of the info log.
                let scrape = try await gw.scrape()
                #expect(!store.all.contains { $0.level >= .info && $0.metadata["route"] == "/health" })
                // The worker's key is sent to it, never shown.
                #expect(!scrape.text.contains(secret))
                for record in store.all {
                    #expect(!record.message.contains(secret) && !record.metadata.values.contains { $0.contains(secret) }, "\(record)")
                }
            }
        }
    }
}

