/// Samples of a Prometheus text exposition: metric name to the sum of its series.
public struct PrometheusSamples: Sendable, Equatable {
    /// Sum over label sets, by sample name (`vllm:prefix_cache_hits_total`).
    public private(set) var sums: [String: Double] = [:]

    /// Parses text format 0.0.4; comment lines and malformed samples are skipped.
    public init(text: String) {
        for line in text.split(separator: "\n") {
            guard let first = line.first, first != "#" else { continue }
            var name = Substring(line)
            var rest = Substring("")
            if let brace = line.firstIndex(of: "{") {
                name = line[..<brace]
                guard let close = line[brace...].lastIndex(of: "}") else { continue }
                rest = line[line.index(after: close)...]
            } else if let space = line.firstIndex(of: " ") {
                name = line[..<space]
                rest = line[space...]
            } else {
                continue
            }
            let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
            guard let valueText = fields.first, let value = Double(valueText) else { continue }
            sums[String(name), default: 0] += value
        }
    }

    /// The summed value of `name`, or nil when absent.
    public subscript(name: String) -> Double? { sums[name] }
}

/// What one worker's counters moved by during a run.
public struct WorkerCounterDelta: Sendable, Equatable {
    public var url: String
    public var prefixQueries: Double
    public var prefixHits: Double
    public var requests: Double
    public var promptTokens: Double
    public var generationTokens: Double

    /// `after - before` for the counters the report uses (vLLM's names).
    public init(url: String, before: PrometheusSamples, after: PrometheusSamples) {
        func delta(_ name: String) -> Double { (after[name] ?? 0) - (before[name] ?? 0) }
        self.url = url
        prefixQueries = delta("vllm:prefix_cache_queries_total")
        prefixHits = delta("vllm:prefix_cache_hits_total")
        requests = delta("vllm:request_success_total")
        promptTokens = delta("vllm:prompt_tokens_total")
        generationTokens = delta("vllm:generation_tokens_total")
    }

    public init(url: String, prefixQueries: Double, prefixHits: Double, requests: Double, promptTokens: Double, generationTokens: Double) {
        self.url = url
        self.prefixQueries = prefixQueries
        self.prefixHits = prefixHits
        self.requests = requests
        self.promptTokens = promptTokens
        self.generationTokens = generationTokens
    }
}
