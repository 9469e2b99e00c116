import GatewayJSON

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reply bodies that never change while a worker runs, written once per connection setup.
struct StaticReplies: Sendable {
    var serverInfo: [UInt8]
    var modelInfo: [UInt8]
    var models: [UInt8]

    /// The fixed `created` stamp of the `/v1/models` entry.
    static let modelCreated = 1_700_000_000

    init(name: String, configuration: SimWorker.Configuration, port: Int, bootstrapPort: Int?) {
        let model = configuration.modelID

        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.field("model_path", model)
        w.field("served_model_name", model)
        w.field("tokenizer_path", model)
        w.field("tp_size", 1)
        w.field("dp_size", 1)
        w.field("load_balance_method", "round_robin")
        w.field("disaggregation_mode", configuration.role == .regular ? "null" : configuration.role.rawValue)
        if let bootstrapPort { w.field("disaggregation_bootstrap_port", bootstrapPort) }
        w.field("sim_engine", configuration.engine.rawValue)
        if configuration.engine == .realistic {
            w.field("page_size", configuration.engineConfiguration.blockSize)
            w.field("max_running_requests", configuration.engineConfiguration.maxRunning)
        }
        w.field("version", "sim-0.1")
        w.field("max_total_num_tokens", configuration.engine == .realistic ? configuration.engineConfiguration.capacityTokens : 65536)
        w.field("max_req_input_len", 4096)
        w.field("context_length", 4096)
        w.field("host", configuration.host)
        w.field("port", port)
        w.field("sim_worker_name", name)
        w.endObject()
        serverInfo = w.bytes

        w = JSONWriter(capacity: 320)
        w.beginObject()
        w.field("model_path", model)
        w.field("tokenizer_path", model)
        w.field("is_generation", true)
        w.key("preferred_sampling_params")
        w.null()
        w.field("weight_version", "default")
        w.field("has_image_understanding", false)
        w.field("has_audio_understanding", false)
        w.field("model_type", "llama")
        w.key("architectures")
        w.beginArray()
        w.string("LlamaForCausalLM")
        w.endArray()
        w.endObject()
        modelInfo = w.bytes

        w = JSONWriter(capacity: 200)
        w.beginObject()
        w.field("object", "list")
        w.key("data")
        w.beginArray()
        w.beginObject()
        w.field("id", model)
        w.field("object", "model")
        w.field("created", Self.modelCreated)
        w.field("owned_by", "sim-worker")
        w.field("root", model)
        w.field("max_model_len", 4096)
        w.endObject()
        w.endArray()
        w.endObject()
        models = w.bytes
    }
}

/// Builders for the dynamic JSON bodies.
enum Replies {
    /// `{"error":{"message","type","code"}}` (OpenAI shape).
    static func error(_ message: String, type: String, code: Int) -> [UInt8] {
        var w = JSONWriter(capacity: 96 + message.utf8.count)
        w.beginObject()
        w.key("error")
        w.beginObject()
        w.field("message", message)
        w.field("type", type)
        w.field("code", code)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// `{"error":{"message","code"}}` (the llama.cpp shape used by `/health`).
    static func healthError(_ message: String) -> [UInt8] {
        var w = JSONWriter(capacity: 64)
        w.beginObject()
        w.key("error")
        w.beginObject()
        w.field("message", message)
        w.field("code", 503)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    static func load(inFlight: Int) -> [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.beginArray()
        w.beginObject()
        w.field("dp_rank", 0)
        w.field("num_reqs", inFlight)
        w.field("num_waiting_reqs", 0)
        w.field("num_tokens", inFlight * 16)
        w.endObject()
        w.endArray()
        return w.bytes
    }

    /// SGLang's `/get_load`: one entry per data-parallel rank (`num_reqs` running plus
    /// waiting, `num_tokens` KV in use plus the waiting prompts).
    static func load(engine load: EngineLoad) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.beginArray()
        w.beginObject()
        w.field("dp_rank", 0)
        w.field("num_reqs", load.running + load.waiting)
        w.field("num_waiting_reqs", load.waiting)
        w.field("num_tokens", load.usedTokens + load.waitingTokens)
        w.endObject()
        w.endArray()
        return w.bytes
    }

    /// SGLang's `/v1/loads` (`include=core`), the shape smg 1.x polls first.
    static func loads(engine load: EngineLoad, counters: EngineCounters, maxRunning: Int) -> [UInt8] {
        var w = JSONWriter(capacity: 384)
        w.beginObject()
        w.field("timestamp", "")
        w.field("dp_rank_count", 1)
        w.key("loads")
        w.beginArray()
        w.beginObject()
        w.field("dp_rank", 0)
        w.field("num_running_reqs", load.running)
        w.field("num_waiting_reqs", load.waiting)
        w.field("num_total_reqs", load.running + load.waiting)
        w.field("num_used_tokens", load.usedTokens)
        w.field("max_total_num_tokens", load.capacityTokens)
        w.field("token_usage", (load.kvUsage * 1e6).rounded() / 1e6)
        let queries = counters.prefixCacheQueries
        w.field("cache_hit_rate", queries > 0 ? (Double(counters.prefixCacheHits) / Double(queries) * 1e6).rounded() / 1e6 : 0)
        w.field("max_running_requests", maxRunning)
        w.endObject()
        w.endArray()
        w.endObject()
        return w.bytes
    }

    /// Prometheus text (format 0.0.4) with vLLM's names (and SGLang's for the load gauges).
    static func metrics(
        model: String,
        load: EngineLoad,
        counters: EngineCounters,
        pdOutcomes: [String: Int],
        role: SimWorker.Role
    ) -> [UInt8] {
        var out = ""
        out.reserveCapacity(3000)
        let labels = "{model_name=\"\(escapeLabel(model))\",engine=\"0\"}"
        func metric(_ name: String, _ type: String, _ help: String, _ value: Double, labels extra: String? = nil) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            let suffix = type == "counter" ? "_total" : ""
            out += name + suffix + (extra ?? labels) + " " + format(value) + "\n"
        }
        metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", Double(load.running))
        metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", Double(load.waiting))
        metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", load.kvUsage)
        metric("vllm:prefix_cache_queries", "counter", "Prefix cache queries, in terms of number of queried tokens.", Double(counters.prefixCacheQueries))
        metric("vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.", Double(counters.prefixCacheHits))
        metric("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", Double(counters.promptTokens))
        metric("vllm:generation_tokens", "counter", "Number of generation tokens processed.", Double(counters.generationTokens))
        out += "# HELP vllm:request_success Count of successfully processed requests.\n# TYPE vllm:request_success counter\n"
        out += "vllm:request_success_total{model_name=\"\(escapeLabel(model))\",engine=\"0\",finished_reason=\"length\"} \(counters.requestsFinished)\n"
        metric("sglang:num_running_reqs", "gauge", "The number of running requests.", Double(load.running))
        metric("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", Double(load.waiting))
        metric("sglang:token_usage", "gauge", "The token usage.", load.kvUsage)
        let hitRate = counters.prefixCacheQueries > 0 ? Double(counters.prefixCacheHits) / Double(counters.prefixCacheQueries) : 0
        metric("sglang:cache_hit_rate", "gauge", "The prefix cache hit rate.", hitRate)
        metric("sim:requests_aborted", "counter", "Requests cancelled before they finished.", Double(counters.requestsAborted))
        metric("sim:requests_rejected", "counter", "Requests that could never fit the KV cache.", Double(counters.requestsRejected))
        metric("sim:kv_transferred_tokens", "counter", "Prompt tokens whose KV came from a prefill worker.", Double(counters.transferredTokens))
        metric("sim:evicted_blocks", "counter", "Prefix cache blocks evicted.", Double(counters.evictedBlocks))
        metric("sim:cached_tokens", "gauge", "Tokens of cached prefixes (pinned or not).", Double(load.cachedTokens))
        if role != .regular {
            out += "# HELP sim:pd_handoffs KV hand-offs by outcome.\n# TYPE sim:pd_handoffs counter\n"
            for outcome in ["ok", "failed"] {
                out += "sim:pd_handoffs_total{role=\"\(role.rawValue)\",outcome=\"\(outcome)\"} \(pdOutcomes[outcome] ?? 0)\n"
            }
        }
        return Array(out.utf8)
    }

    private static func escapeLabel(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    private static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func unixTime() -> Int {
        Int(time(nil))
    }

    // MARK: SGLang /generate

    /// One `/generate` body: `tokens` generated so far (text is cumulative), final when
    /// `final` (finish_reason set), otherwise finish_reason null.
    static func generate(
        rid: String,
        tokens: Int,
        final: Bool,
        promptTokens: Int,
        e2eLatency: Double,
        worker: String,
        tag: String = "",
        cachedTokens: Int = 0,
        realisticIDs: Bool = false
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + tokens * (12 + tag.utf8.count))
        w.beginObject()
        w.field("text", SimWorker.text(tokens: 0..<tokens, tag: tag))
        w.key("output_ids")
        w.beginArray()
        for i in 0..<tokens { w.int(realisticIDs ? SimTokenizer.outputTokenID(i, tag: tag) : SimWorker.tokenID(i)) }
        w.endArray()
        w.key("meta_info")
        w.beginObject()
        w.field("id", rid)
        w.key("finish_reason")
        if final {
            w.beginObject()
            w.field("type", "length")
            w.field("length", tokens)
            w.endObject()
        } else {
            w.null()
        }
        w.field("prompt_tokens", promptTokens)
        w.field("completion_tokens", tokens)
        w.field("cached_tokens", cachedTokens)
        w.field("weight_version", "default")
        w.field("e2e_latency", (e2eLatency * 1_000_000).rounded() / 1_000_000)
        w.field("worker", worker)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    // MARK: OpenAI

    private static func usage(_ w: inout JSONWriter, prompt: Int, completion: Int, cached: Int? = nil) {
        w.key("usage")
        w.beginObject()
        w.field("prompt_tokens", prompt)
        w.field("completion_tokens", completion)
        w.field("total_tokens", prompt + completion)
        if let cached {
            w.key("prompt_tokens_details")
            w.beginObject()
            w.field("cached_tokens", cached)
            w.endObject()
        }
        w.endObject()
    }

    private static func header(_ w: inout JSONWriter, id: String, object: String, created: Int, model: String, worker: String) {
        w.field("id", id)
        w.field("object", object)
        w.field("created", created)
        w.field("model", model)
        w.field("system_fingerprint", worker)
    }

    /// A complete, non-streamed `/v1/completions` or `/v1/chat/completions` body.
    static func openAICompletion(
        chat: Bool,
        id: String,
        created: Int,
        model: String,
        worker: String,
        promptTokens: Int,
        tokens: Int,
        tag: String = "",
        cachedTokens: Int? = nil,
        kvTransferParams: [UInt8]? = nil
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 320 + tokens * (8 + tag.utf8.count))
        w.beginObject()
        header(&w, id: id, object: chat ? "chat.completion" : "text_completion", created: created, model: model, worker: worker)
        w.key("choices")
        w.beginArray()
        w.beginObject()
        w.field("index", 0)
        let text = SimWorker.text(tokens: 0..<tokens, tag: tag)
        if chat {
            w.key("message")
            w.beginObject()
            w.field("role", "assistant")
            w.field("content", text)
            w.endObject()
        } else {
            w.field("text", text)
        }
        w.key("logprobs")
        w.null()
        w.field("finish_reason", "length")
        w.endObject()
        w.endArray()
        usage(&w, prompt: promptTokens, completion: tokens, cached: cachedTokens)
        if let kvTransferParams {
            w.key("kv_transfer_params")
            w.raw(kvTransferParams)
        }
        w.endObject()
        return w.bytes
    }

    /// One streamed OpenAI chunk carrying tokens `range`; `final` sets finish_reason "length".
    static func openAIChunk(
        chat: Bool,
        id: String,
        created: Int,
        model: String,
        worker: String,
        range: Range<Int>,
        final: Bool,
        tag: String = ""
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + range.count * (8 + tag.utf8.count))
        w.beginObject()
        header(&w, id: id, object: chat ? "chat.completion.chunk" : "text_completion", created: created, model: model, worker: worker)
        w.key("choices")
        w.beginArray()
        w.beginObject()
        w.field("index", 0)
        // Token i > 0 carries its leading space, so deltas concatenate to the full text.
        let delta = SimWorker.text(tokens: range, tag: tag)
        if chat {
            w.key("delta")
            w.beginObject()
            if range.lowerBound == 0 { w.field("role", "assistant") }
            w.field("content", delta)
            w.endObject()
        } else {
            w.field("text", delta)
        }
        w.key("logprobs")
        w.null()
        w.key("finish_reason")
        if final { w.string("length") } else { w.null() }
        w.endObject()
        w.endArray()
        w.endObject()
        return w.bytes
    }

    /// The trailing usage chunk sent when `stream_options.include_usage` is true (choices empty).
    static func openAIUsageChunk(
        chat: Bool,
        id: String,
        created: Int,
        model: String,
        worker: String,
        promptTokens: Int,
        tokens: Int,
        cachedTokens: Int? = nil
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        header(&w, id: id, object: chat ? "chat.completion.chunk" : "text_completion", created: created, model: model, worker: worker)
        w.key("choices")
        w.beginArray()
        w.endArray()
        usage(&w, prompt: promptTokens, completion: tokens, cached: cachedTokens)
        w.endObject()
        return w.bytes
    }

    /// vLLM's NIXL connector answer to a prefill leg (`kv_transfer_params` of the reply).
    static func kvTransferParams(engineID: String, requestID: String, host: String, port: Int, promptTokens: Int, blockSize: Int) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("do_remote_prefill", true)
        w.field("do_remote_decode", false)
        w.key("remote_block_ids")
        w.beginArray()
        for i in 0..<(promptTokens / max(1, blockSize)) { w.int(i) }
        w.endArray()
        w.field("remote_engine_id", engineID)
        w.field("remote_request_id", requestID)
        w.field("remote_host", host)
        w.field("remote_port", port)
        w.field("tp_size", 1)
        w.endObject()
        return w.bytes
    }

    /// An SSE error event body (SGLang's shape, with OpenAI's type and code).
    static func streamError(_ message: String) -> [UInt8] {
        var w = JSONWriter(capacity: 96 + message.utf8.count)
        w.beginObject()
        w.key("error")
        w.beginObject()
        w.field("message", message)
        w.field("type", "server_error")
        w.field("code", 500)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    static func embeddings(_ request: EmbeddingRequest, worker: String) -> [UInt8] {
        var w = JSONWriter(capacity: 128 + request.inputs.count * 160)
        w.beginObject()
        w.field("object", "list")
        w.key("data")
        w.beginArray()
        var promptTokens = 0
        for (index, input) in request.inputs.enumerated() {
            promptTokens += input.tokens
            w.beginObject()
            w.field("object", "embedding")
            w.field("index", index)
            w.key("embedding")
            w.beginArray()
            for v in SimWorker.embedding(for: input.key) { w.double(v) }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.field("model", request.model)
        w.key("usage")
        w.beginObject()
        w.field("prompt_tokens", promptTokens)
        w.field("total_tokens", promptTokens)
        w.endObject()
        w.field("system_fingerprint", worker)
        w.endObject()
        return w.bytes
    }

    static func rerank(_ request: RerankRequest, worker: String) -> [UInt8] {
        let queryWords = Set(request.query.lowercased().split(whereSeparator: { $0.isWhitespace }))
        var scored = request.documents.enumerated().map { (index: $0.offset, score: SimWorker.relevance(queryWords: queryWords, document: $0.element)) }
        scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
        if let topN = request.topN, topN < scored.count { scored.removeSubrange(topN...) }
        var promptTokens = SimWorker.wordCount(request.query)
        for doc in request.documents { promptTokens += SimWorker.wordCount(doc) }

        var w = JSONWriter(capacity: 128 + scored.count * 96)
        w.beginObject()
        w.field("id", SimWorker.hexID("rerank-"))
        w.field("model", request.model)
        w.key("results")
        w.beginArray()
        for item in scored {
            w.beginObject()
            w.field("index", item.index)
            w.field("relevance_score", item.score)
            if request.returnDocuments {
                w.key("document")
                w.beginObject()
                w.field("text", request.documents[item.index])
                w.endObject()
            }
            w.endObject()
        }
        w.endArray()
        w.key("usage")
        w.beginObject()
        w.field("prompt_tokens", promptTokens)
        w.field("total_tokens", promptTokens)
        w.endObject()
        w.field("system_fingerprint", worker)
        w.endObject()
        return w.bytes
    }
}
