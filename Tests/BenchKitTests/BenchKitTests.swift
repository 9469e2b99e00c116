import BenchKit
import GatewayJSON
import Testing

@Suite("Workloads")
struct WorkloadTests {
    private let shared = Workload.sharedPrefix(
        .init(groups: 4, promptsPerGroup: 3, systemTokens: 32, questionTokens: 8, outputTokens: 5, zipfAlpha: 0, requests: 200)
    )

    @Test func theSameSeedGivesTheSamePlan() {
        let a = shared.plan(rate: 20, seed: 7)
        let b = shared.plan(rate: 20, seed: 7)
        let c = shared.plan(rate: 20, seed: 8)
        #expect(a == b)
        #expect(a != c)
        #expect(a.count == 200)
    }

    @Test func arrivalsArePoissonAtTheRate() {
        let plan = Workload.zeroReuse(.init(requests: 20_000, promptTokens: 4, outputTokens: 1)).plan(rate: 50, seed: 1)
        let times = plan.map { $0.turns[0].at }
        #expect(times == times.sorted())
        let mean = times.last! / Double(times.count)
        #expect(abs(mean - 0.02) < 0.001)
        // Exponential gaps: about e^-1 of them exceed the mean.
        var longer = 0
        for (a, b) in zip(times, times.dropFirst()) where b - a > 0.02 { longer += 1 }
        #expect(abs(Double(longer) / Double(times.count) - 0.3679) < 0.02)
    }

    @Test func sharedPrefixRequestsShareTheirGroupsSystemPrompt() {
        let plan = shared.plan(rate: 20, seed: 3)
        var systems = Set<String>()
        for job in plan {
            let system = try! #require(job.system)
            systems.insert(system)
            #expect(system.split(separator: " ").count == 32)
            #expect(job.turns[0].content.split(separator: " ").count == 8)
            // The question names its group: it belongs to the system prompt it came with.
            let group = system.split(separator: "w").first!.dropFirst()
            #expect(job.turns[0].content.hasPrefix("q\(group)p"))
        }
        #expect(systems.count == 4)
    }

    @Test func zipfSkewsTowardsTheFirstGroups() {
        let zipf = ZipfSampler(count: 10, alpha: 1.1)
        #expect(zipf.probability(0) > 3 * zipf.probability(9))
        var random = SeededRandom(seed: 5)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<50_000 { counts[zipf.sample(&random)] += 1 }
        #expect(abs(Double(counts[0]) / 50_000 - zipf.probability(0)) < 0.01)
        #expect(counts == counts.sorted(by: >) || counts[0] > counts[9] * 3)
        let uniform = ZipfSampler(count: 4, alpha: 0)
        #expect(abs(uniform.probability(2) - 0.25) < 1e-12)
    }

    @Test func multiTurnSessionsSpaceTheirTurns() {
        let plan = Workload.multiTurn(.init(sessions: 10, turns: 3, systemTokens: 16, userTokens: 4, outputTokens: 2, turnGap: 2)).plan(rate: 6, seed: 1)
        #expect(plan.count == 10)
        for job in plan {
            #expect(job.turns.count == 3)
            #expect(abs(job.turns[1].at - job.turns[0].at - 2) < 1e-9)
            #expect(job.sessionKey == "session-\(job.id)")
        }
    }

    @Test func chatBodiesResendTheHistory() throws {
        let body = requestBody(
            route: .chat, model: "m", system: "sys", history: [TurnHistory(user: "u1", assistant: "tok0 tok1")], content: "u2",
            outputTokens: 3, user: "session-1"
        )
        let json = try JSONParser.parse(body)
        let messages = try #require(json["messages"]?.arrayValue)
        #expect(messages.map { $0["role"]?.stringValue } == ["system", "user", "assistant", "user"])
        #expect(messages[2]["content"] == .string("tok0 tok1"))
        #expect(json["max_tokens"] == .int(3))
        #expect(json["stream"] == .bool(true))
        #expect(json["stream_options"]?["include_usage"] == .bool(true))
        #expect(json["user"] == .string("session-1"))

        let generate = try JSONParser.parse(
            requestBody(route: .generate, model: "m", system: "sys", history: [], content: "q", outputTokens: 4, user: nil)
        )
        #expect(generate["text"] == .string("sys\nq"))
        #expect(generate["sampling_params"]?["max_new_tokens"] == .int(4))
    }
}

@Suite("Traces")
struct TraceTests {
    @Test func mooncakeLinesParseAndEqualIDsGiveEqualBlocks() throws {
        let text = """
            {"timestamp": 27482, "input_length": 1100, "output_length": 12, "hash_ids": [46, 47, 48]}

            {"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [46, 99]}
            """
        let records = try parseTrace(text)
        #expect(records.map(\.timestampMillis) == [0, 27482])
        let a = records[1].prompt(blockTokens: 512, index: 0).split(separator: " ")
        let b = records[0].prompt(blockTokens: 512, index: 1).split(separator: " ")
        #expect(a.count == 1100)
        #expect(b.count == 600)
        #expect(a.prefix(512) == b.prefix(512))
        #expect(a[512] != b[512])
        let jobs = Workload.trace(records: records, timeScale: 0.5, blockTokens: 512).plan(rate: 1, seed: 1)
        #expect(jobs.map { $0.turns[0].at } == [0, 13.741])
        #expect(jobs[1].turns[0].outputTokens == 12)
    }

    @Test func badLinesSayWhere() {
        #expect(throws: TraceError.self) { try parseTrace(#"{"timestamp": 1, "output_length": 2}"#) }
        do {
            _ = try parseTrace("{\"timestamp\": 1, \"input_length\": 5, \"output_length\": 1}\nnot json")
            Issue.record("no error")
        } catch {
            #expect(error.line == 2)
        }
    }

    @Test func promptsLongerThanTheirIDsGetUniqueTails() {
        let record = TraceRecord(timestampMillis: 0, inputLength: 20, outputLength: 1, hashIDs: [1])
        let words = record.prompt(blockTokens: 16, index: 7).split(separator: " ")
        #expect(words.count == 20)
        #expect(words[15] == "h1w15")
        #expect(words[16] == "r7w0")
    }
}

@Suite("Prometheus and answers")
struct CountersTests {
    @Test func samplesAreSummedOverLabels() {
        let text = """
            # HELP vllm:prefix_cache_hits Prefix cache hits.
            # TYPE vllm:prefix_cache_hits counter
            vllm:prefix_cache_hits_total{model_name="m",engine="0"} 120
            vllm:prefix_cache_hits_total{model_name="m",engine="1"} 30
            vllm:prefix_cache_queries_total{model_name="m",engine="0"} 400
            vllm:request_success_total{finished_reason="length"} 7
            vllm:request_success_total{finished_reason="stop"} 2
            plain_metric 3.5
            broken{ 1
            """
        let samples = PrometheusSamples(text: text)
        #expect(samples["vllm:prefix_cache_hits_total"] == 150)
        #expect(samples["vllm:request_success_total"] == 9)
        #expect(samples["plain_metric"] == 3.5)
        #expect(samples["broken"] == nil)
        let before = PrometheusSamples(text: "vllm:prefix_cache_hits_total{} 50\nvllm:prefix_cache_queries_total{} 100")
        let delta = WorkerCounterDelta(url: "w", before: before, after: samples)
        #expect(delta.prefixHits == 100)
        #expect(delta.prefixQueries == 300)
        #expect(delta.requests == 9)
    }

    @Test func openAIAndSGLangStreamsAreRead() {
        let chat = """
            data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"tok0"}}]}

            data: {"choices":[{"index":0,"delta":{"content":" tok1"},"finish_reason":"length"}]}

            data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":32}}}

            data: [DONE]


            """
        let answer = StreamedAnswer(route: .chat, body: chat)
        #expect(answer.text == "tok0 tok1")
        #expect(answer.outputTokens == 2)
        #expect(answer.promptTokens == 40)
        #expect(answer.cachedTokens == 32)
        #expect(answer.complete)
        #expect(answer.error == nil)

        let sglang = """
            data: {"text":"tok0","meta_info":{"completion_tokens":1,"prompt_tokens":9,"cached_tokens":0}}

            data: {"text":"tok0 tok1 tok2","meta_info":{"completion_tokens":3,"prompt_tokens":9,"cached_tokens":0}}

            data: [DONE]

            """
        let generated = StreamedAnswer(route: .generate, body: sglang)
        #expect(generated.text == "tok0 tok1 tok2")
        #expect(generated.outputTokens == 3)

        let failed = StreamedAnswer(route: .completions, body: "data: {\"error\":{\"message\":\"worker died\"}}\n\ndata: [DONE]\n\n")
        #expect(failed.error == "worker died")
    }
}

@Suite("Summary")
struct SummaryTests {
    @Test func goodputCountsRequestsMeetingBothTargets() {
        let slo = SLO(ttft: 0.5, interToken: 0.05)
        let outcomes = [
            RequestOutcome(status: .ok, ttft: 0.2, e2e: 0.2 + 9 * 0.04, outputTokens: 10, cachedTokens: 50, promptTokens: 100, worker: "a"),
            RequestOutcome(status: .ok, ttft: 0.6, e2e: 0.7, outputTokens: 10, cachedTokens: 0, promptTokens: 100, worker: "b"), // TTFT missed
            RequestOutcome(status: .ok, ttft: 0.1, e2e: 0.1 + 9 * 0.06, outputTokens: 10, worker: "a"), // ITL missed
            RequestOutcome(status: .unavailable, ttft: 0.01, e2e: 0.01, outputTokens: 0, unavailableAnswers: 2),
            RequestOutcome(status: .failed("HTTP 500"), ttft: 0.1, e2e: 0.1, outputTokens: 0),
        ]
        let counters = [
            WorkerCounterDelta(url: "http://w1", prefixQueries: 300, prefixHits: 150, requests: 3, promptTokens: 300, generationTokens: 30),
            WorkerCounterDelta(url: "http://w2", prefixQueries: 100, prefixHits: 10, requests: 1, promptTokens: 100, generationTokens: 10),
        ]
        let summary = ReplaySummary(label: "x", workload: "w", outcomes: outcomes, seconds: 2, slo: slo, counters: counters)
        #expect(summary.goodput == 1)
        #expect(summary.goodputPerSecond == 0.5)
        #expect(summary.succeeded == 3)
        #expect(summary.unavailable == 1)
        #expect(summary.unavailableAnswers == 2)
        #expect(summary.failed == 1)
        #expect(summary.errorRate == 0.4)
        #expect(summary.hitRate == 160.0 / 400.0)
        #expect(summary.reportedHitRate == 0.25)
        #expect(summary.workerImbalance == 3)
        #expect(summary.requestsPerWorkerHeader == ["a": 2, "b": 1])
        #expect(summary.outputTokensPerSecond == 15)
        #expect(summary.firstError == "HTTP 500")
        let json = try! JSONParser.parse(summary.json)
        #expect(json["hit_rate"] == .double(0.4))
        #expect(json["goodput"] == .int(1))
        #expect(json["requests_per_worker"]?["http://w1"] == .int(3))
    }

    @Test func percentilesByNearestRank() {
        let values = (1...100).map(Double.init)
        #expect(percentile(values, 50) == 50)
        #expect(percentile(values, 99) == 99)
        #expect(percentile([], 50) == 0)
        #expect(percentile([3], 99) == 3)
    }
}
