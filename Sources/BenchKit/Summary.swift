import GatewayJSON

/// How one request ended, as the replayer measured it.
public struct RequestOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        /// A complete answer.
        case ok
        /// 503 (after the retries `Retry-After` allowed, when honoured).
        case unavailable
        /// Any other failure: transport, a non-2xx status, an error event, a cut stream.
        case failed(String)
    }

    public var status: Status
    /// Seconds from when it was due to the first streamed token.
    public var ttft: Double
    /// Seconds from when it was due to the last byte.
    public var e2e: Double
    /// Completion tokens the answer reported (or counted).
    public var outputTokens: Int
    /// Prompt tokens the engine reported cached, when it said.
    public var cachedTokens: Int?
    public var promptTokens: Int?
    /// The `X-Sim-Worker` header of the answer, if any.
    public var worker: String?
    /// 503 answers seen on the way (each retry's included).
    public var unavailableAnswers: Int
    /// The turn was sent after its due time because its session's previous turn had not ended.
    public var late: Bool

    public init(
        status: Status, ttft: Double, e2e: Double, outputTokens: Int, cachedTokens: Int? = nil, promptTokens: Int? = nil,
        worker: String? = nil, unavailableAnswers: Int = 0, late: Bool = false
    ) {
        self.status = status
        self.ttft = ttft
        self.e2e = e2e
        self.outputTokens = outputTokens
        self.cachedTokens = cachedTokens
        self.promptTokens = promptTokens
        self.worker = worker
        self.unavailableAnswers = unavailableAnswers
        self.late = late
    }

    /// Mean seconds between tokens after the first (0 for a one-token answer).
    public var interTokenLatency: Double {
        outputTokens > 1 ? max(0, e2e - ttft) / Double(outputTokens - 1) : 0
    }
}

/// The service-level objective of goodput: a request counts when it succeeded, its time to
/// first token is at most `ttft` and its mean inter-token latency at most `interToken`.
public struct SLO: Sendable, Equatable {
    public var ttft: Double
    public var interToken: Double

    public init(ttft: Double, interToken: Double) {
        self.ttft = ttft
        self.interToken = interToken
    }

    public func met(by outcome: RequestOutcome) -> Bool {
        outcome.status == .ok && outcome.ttft <= ttft && outcome.interTokenLatency <= interToken
    }
}

/// The percentile `p` (0...100) of `values` by nearest rank; 0 when empty.
public func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}

/// A run's figures: what the report prints and writes.
public struct ReplaySummary: Sendable, Equatable {
    public var label: String
    public var workload: String
    public var requests: Int
    public var succeeded: Int
    public var failed: Int
    public var unavailable: Int
    public var unavailableAnswers: Int
    public var lateTurns: Int
    /// Wall seconds from the first send to the last answer.
    public var seconds: Double
    public var ttftP50: Double
    public var ttftP99: Double
    public var e2eP50: Double
    public var e2eP99: Double
    public var itlP50: Double
    public var outputTokensPerSecond: Double
    public var goodput: Int
    public var goodputPerSecond: Double
    /// Δ hits / Δ queries over every worker's counters (nil without worker counters).
    public var hitRate: Double?
    /// Cached prompt tokens / prompt tokens as the answers reported them.
    public var reportedHitRate: Double?
    /// Requests each worker finished (its own counter), and from the answers' header.
    public var requestsPerWorker: [String: Int]
    public var requestsPerWorkerHeader: [String: Int]
    public var firstError: String?
    public var slo: SLO

    /// Error rate: failed plus 503 over all requests.
    public var errorRate: Double { requests > 0 ? Double(failed + unavailable) / Double(requests) : 0 }

    /// max / min of requests per worker (workers' counters, else the header); nil with fewer than one.
    public var workerImbalance: Double? {
        let counts = requestsPerWorker.isEmpty ? requestsPerWorkerHeader : requestsPerWorker
        guard let max = counts.values.max(), let min = counts.values.min(), !counts.isEmpty else { return nil }
        return min > 0 ? Double(max) / Double(min) : .infinity
    }

    public init(
        label: String, workload: String, outcomes: [RequestOutcome], seconds: Double, slo: SLO, counters: [WorkerCounterDelta]
    ) {
        self.label = label
        self.workload = workload
        self.slo = slo
        self.seconds = seconds
        requests = outcomes.count
        let ok = outcomes.filter { $0.status == .ok }
        succeeded = ok.count
        unavailable = outcomes.filter { $0.status == .unavailable }.count
        failed = requests - succeeded - unavailable
        unavailableAnswers = outcomes.reduce(0) { $0 + $1.unavailableAnswers }
        lateTurns = outcomes.filter(\.late).count
        ttftP50 = percentile(ok.map(\.ttft), 50)
        ttftP99 = percentile(ok.map(\.ttft), 99)
        e2eP50 = percentile(ok.map(\.e2e), 50)
        e2eP99 = percentile(ok.map(\.e2e), 99)
        itlP50 = percentile(ok.map(\.interTokenLatency), 50)
        let tokens = ok.reduce(0) { $0 + $1.outputTokens }
        outputTokensPerSecond = seconds > 0 ? Double(tokens) / seconds : 0
        goodput = outcomes.filter { slo.met(by: $0) }.count
        goodputPerSecond = seconds > 0 ? Double(goodput) / seconds : 0
        let queries = counters.reduce(0) { $0 + $1.prefixQueries }
        hitRate = counters.isEmpty || queries <= 0 ? nil : counters.reduce(0) { $0 + $1.prefixHits } / queries
        let reported = ok.compactMap { o in o.cachedTokens.flatMap { c in o.promptTokens.map { (c, $0) } } }
        let promptSum = reported.reduce(0) { $0 + $1.1 }
        reportedHitRate = promptSum > 0 ? Double(reported.reduce(0) { $0 + $1.0 }) / Double(promptSum) : nil
        var perWorker: [String: Int] = [:]
        for delta in counters { perWorker[delta.url] = Int(delta.requests.rounded()) }
        requestsPerWorker = perWorker
        var perHeader: [String: Int] = [:]
        for outcome in outcomes { if let worker = outcome.worker { perHeader[worker, default: 0] += 1 } }
        requestsPerWorkerHeader = perHeader
        firstError = outcomes.lazy.compactMap { if case .failed(let reason) = $0.status { reason } else { nil } }.first
    }

    /// One JSON object (keys in a fixed order), for tables built later.
    public var json: String {
        var w = JSONWriter(capacity: 1024)
        w.beginObject()
        w.field("label", label)
        w.field("workload", workload)
        w.field("requests", requests)
        w.field("succeeded", succeeded)
        w.field("failed", failed)
        w.field("unavailable_503", unavailable)
        w.field("answers_503", unavailableAnswers)
        w.field("late_turns", lateTurns)
        w.field("error_rate", rounded(errorRate))
        w.field("seconds", rounded(seconds))
        w.key("hit_rate")
        if let hitRate { w.double(rounded(hitRate)) } else { w.null() }
        w.key("reported_hit_rate")
        if let reportedHitRate { w.double(rounded(reportedHitRate)) } else { w.null() }
        w.field("ttft_p50_s", rounded(ttftP50))
        w.field("ttft_p99_s", rounded(ttftP99))
        w.field("e2e_p50_s", rounded(e2eP50))
        w.field("e2e_p99_s", rounded(e2eP99))
        w.field("itl_p50_s", rounded(itlP50))
        w.field("output_tokens_per_s", rounded(outputTokensPerSecond))
        w.field("goodput", goodput)
        w.field("goodput_per_s", rounded(goodputPerSecond))
        w.field("slo_ttft_s", slo.ttft)
        w.field("slo_itl_s", slo.interToken)
        w.key("worker_imbalance")
        if let imbalance = workerImbalance, imbalance.isFinite { w.double(rounded(imbalance)) } else { w.null() }
        w.key("requests_per_worker")
        w.beginObject()
        for (url, count) in requestsPerWorker.sorted(by: { $0.key < $1.key }) { w.field(url, count) }
        w.endObject()
        w.key("requests_per_worker_header")
        w.beginObject()
        for (name, count) in requestsPerWorkerHeader.sorted(by: { $0.key < $1.key }) { w.field(name, count) }
        w.endObject()
        w.field("first_error", firstError)
        w.endObject()
        return w.string
    }

    /// A few lines for people.
    public var table: String {
        func pct(_ v: Double?) -> String { v.map { String(format1(($0 * 1000).rounded() / 10)) + " %" } ?? "n/a" }
        func ms(_ v: Double) -> String { String(format1((v * 10_000).rounded() / 10)) + " ms" }
        var lines: [String] = []
        lines.append("\(label) [\(workload)]: \(requests) requests, \(succeeded) ok, \(failed) failed, \(unavailable) 503 (\(unavailableAnswers) answers), \(lateTurns) late turns, \(format1((seconds * 10).rounded() / 10)) s")
        lines.append("  hit rate (engines) \(pct(hitRate)), reported \(pct(reportedHitRate))")
        lines.append("  TTFT p50 \(ms(ttftP50)) p99 \(ms(ttftP99)); e2e p50 \(ms(e2eP50)) p99 \(ms(e2eP99)); ITL p50 \(ms(itlP50))")
        lines.append("  output \(format1(outputTokensPerSecond.rounded())) tok/s; goodput \(goodput) (\(format1((goodputPerSecond * 10).rounded() / 10))/s) under TTFT ≤ \(ms(slo.ttft)), ITL ≤ \(ms(slo.interToken)); errors \(pct(errorRate))")
        let imbalance = workerImbalance.map { $0.isFinite ? format1(($0 * 100).rounded() / 100) : "∞" } ?? "n/a"
        let counts = (requestsPerWorker.isEmpty ? requestsPerWorkerHeader : requestsPerWorker).sorted { $0.key < $1.key }.map { "\($0.value)" }.joined(separator: "/")
        lines.append("  requests per worker \(counts) (max/min \(imbalance))")
        if let firstError { lines.append("  first error: \(firstError)") }
        return lines.joined(separator: "\n")
    }

    private func rounded(_ v: Double) -> Double { v.isFinite ? (v * 10_000).rounded() / 10_000 : 0 }
}

/// `v` printed with at most one decimal's worth of noise removed.
func format1(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(v)
}
