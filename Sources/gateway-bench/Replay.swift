import BenchKit
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct ReplayOptions: Sendable {
    var baseURL = "http://127.0.0.1:30000"
    var route = ReplayRoute.chat
    var model = "sim-model"
    var workload: Workload = .zeroReuse(.init(requests: 100, promptTokens: 256, outputTokens: 32))
    var workloadName = "zero-reuse"
    var rate = 10.0
    var seed: UInt64 = 42
    var duration = 60.0
    var drain = 60.0
    var routingKey = RoutingKeyMode.none
    var workerURLs: [String] = []
    var slo = SLO(ttft: 1.0, interToken: 0.1)
    var honorRetryAfter = false
    var maxRetries = 3
    var maxInFlight = 4096
    var timeout = 120.0
    var label = ""
    var jsonOut: String?
}

/// Counts requests in flight across tasks (the open loop's bound).
private final class InFlight: Sendable {
    private let count = Atomic<Int>(0)
    func enter(limit: Int) -> Bool {
        let n = count.wrappingAdd(1, ordering: .relaxed).newValue
        if n > limit {
            count.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }
    func leave() { count.wrappingSubtract(1, ordering: .relaxed) }
}

/// `gateway-bench replay`: sends the plan open-loop (each job when due, a session's turns in
/// order), then prints the summary (table on stderr, JSON on stdout, appended to --json-out).
func runReplayCommand(_ options: ReplayOptions) async throws {
    let base = try LoopbackURL(options.baseURL)
    let workers = try options.workerURLs.map { try LoopbackURL($0) }
    let plan = options.workload.plan(rate: options.rate, seed: options.seed)
        .filter { ($0.turns.first?.at ?? 0) <= options.duration }
    guard !plan.isEmpty else { throw HTTPClientFailure(description: "the plan is empty (rate, duration or trace too small)") }
    let total = plan.reduce(0) { $0 + $1.turns.count }
    printErr("replay \(options.label): \(options.workloadName), \(plan.count) jobs, \(total) requests to \(options.baseURL)\(options.route.path)")

    let client = ReplayHTTPClient(host: base.host, port: base.port)
    let scrapers = workers.map { ReplayHTTPClient(host: $0.host, port: $0.port) }
    let before = await scrape(scrapers)

    let start = nowNanos()
    let inFlight = InFlight()
    let deadline = start + UInt64((options.duration + options.drain) * 1e9)
    var outcomes: [RequestOutcome] = []
    outcomes.reserveCapacity(total)
    await withTaskGroup(of: [RequestOutcome].self) { group in
        for job in plan {
            group.addTask {
                await runJob(job, options: options, client: client, start: start, deadline: deadline, inFlight: inFlight)
            }
        }
        for await results in group { outcomes += results }
    }
    let end = nowNanos()
    let after = await scrape(scrapers)
    await client.close()
    for scraper in scrapers { await scraper.close() }

    var deltas: [WorkerCounterDelta] = []
    for (index, url) in options.workerURLs.enumerated() {
        if let b = before[index], let a = after[index] { deltas.append(WorkerCounterDelta(url: url, before: b, after: a)) }
    }
    let summary = ReplaySummary(
        label: options.label, workload: options.workloadName, outcomes: outcomes, seconds: Double(end - start) / 1e9,
        slo: options.slo, counters: deltas
    )
    printErr(summary.table)
    let line = summary.json
    print(line)
    if let path = options.jsonOut, let file = fopen(path, "a") {
        fputs(line + "\n", file)
        fclose(file)
    }
}

private func scrape(_ clients: [ReplayHTTPClient]) async -> [PrometheusSamples?] {
    var out: [PrometheusSamples?] = []
    for client in clients {
        let answer = try? await client.send(method: .GET, path: "/metrics", body: nil, timeout: .seconds(10))
        out.append(answer.flatMap { $0.status == 200 ? PrometheusSamples(text: $0.body) : nil })
    }
    return out
}

private func runJob(
    _ job: PlannedJob, options: ReplayOptions, client: ReplayHTTPClient, start: UInt64, deadline: UInt64, inFlight: InFlight
) async -> [RequestOutcome] {
    var history: [TurnHistory] = []
    var outcomes: [RequestOutcome] = []
    for turn in job.turns {
        let due = start + UInt64(turn.at * 1e9)
        var now = nowNanos()
        if due > now {
            try? await Task.sleep(for: .nanoseconds(due - now))
            now = nowNanos()
        }
        let late = now > due + 50_000_000
        if now >= deadline {
            outcomes.append(RequestOutcome(status: .failed("not sent before the end of the run"), ttft: 0, e2e: 0, outputTokens: 0, late: late))
            continue
        }
        // A late turn is timed from when it could be sent (its previous turn's end), not
        // from its plan: the lateness is reported apart.
        let sentAt = late ? now : due
        var headers: [(String, String)] = []
        var user: String?
        if let key = job.sessionKey {
            switch options.routingKey {
            case .header: headers.append(("X-SMG-Routing-Key", key))
            case .body: user = key
            case .none: break
            }
        }
        let body = requestBody(
            route: options.route, model: options.model, system: job.system, history: history, content: turn.content,
            outputTokens: turn.outputTokens, user: user
        )
        guard inFlight.enter(limit: options.maxInFlight) else {
            outcomes.append(RequestOutcome(status: .failed("client in-flight limit (\(options.maxInFlight)) reached"), ttft: 0, e2e: 0, outputTokens: 0, late: late))
            continue
        }
        var (outcome, text) = await send(body: body, headers: headers, options: options, client: client, sentAt: sentAt, deadline: deadline)
        inFlight.leave()
        outcome.late = late
        outcomes.append(outcome)
        // The next turn re-sends the reply as received (empty when it failed).
        history.append(TurnHistory(user: turn.content, assistant: text))
    }
    return outcomes
}

/// Sends one request (again after a 503 when `Retry-After` is honoured); the outcome and
/// the reply's text.
private func send(
    body: [UInt8], headers: [(String, String)], options: ReplayOptions, client: ReplayHTTPClient, sentAt: UInt64, deadline: UInt64
) async -> (RequestOutcome, String) {
    var unavailable = 0
    var attempt = 0
    while true {
        attempt += 1
        let remaining = deadline > nowNanos() ? Double(deadline - nowNanos()) / 1e9 : 0
        let timeout = max(0.001, min(options.timeout, remaining))
        let answer: ReplayAnswer
        do {
            answer = try await client.send(method: .POST, path: options.route.path, headers: headers, body: body, timeout: .nanoseconds(Int64(timeout * 1e9)))
        } catch {
            let e2e = Double(nowNanos() - sentAt) / 1e9
            return (RequestOutcome(status: .failed("\(error)"), ttft: e2e, e2e: e2e, outputTokens: 0, unavailableAnswers: unavailable), "")
        }
        let e2e = Double(answer.endAt - sentAt) / 1e9
        let worker = answer.headers.first(name: "X-Sim-Worker")
        if answer.status == 503 {
            unavailable += 1
            if options.honorRetryAfter, attempt <= options.maxRetries {
                let wait = min(10, max(0, answer.headers.first(name: "Retry-After").flatMap(Double.init) ?? 1))
                if nowNanos() + UInt64(wait * 1e9) < deadline {
                    try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
                    continue
                }
            }
            return (RequestOutcome(status: .unavailable, ttft: e2e, e2e: e2e, outputTokens: 0, worker: worker, unavailableAnswers: unavailable), "")
        }
        guard (200..<300).contains(answer.status) else {
            let outcome = RequestOutcome(
                status: .failed("HTTP \(answer.status): \(answer.body.prefix(160))"), ttft: e2e, e2e: e2e, outputTokens: 0, worker: worker,
                unavailableAnswers: unavailable
            )
            return (outcome, "")
        }
        let parsed = StreamedAnswer(route: options.route, body: answer.body)
        let ttft = Double((answer.firstBodyAt ?? answer.endAt) - sentAt) / 1e9
        if let error = parsed.error {
            let outcome = RequestOutcome(
                status: .failed("error event: \(error)"), ttft: ttft, e2e: e2e, outputTokens: parsed.outputTokens, worker: worker,
                unavailableAnswers: unavailable
            )
            return (outcome, "")
        }
        guard parsed.complete else {
            let outcome = RequestOutcome(
                status: .failed("stream ended without [DONE]"), ttft: ttft, e2e: e2e, outputTokens: parsed.outputTokens, worker: worker,
                unavailableAnswers: unavailable
            )
            return (outcome, "")
        }
        let outcome = RequestOutcome(
            status: .ok, ttft: ttft, e2e: e2e, outputTokens: parsed.outputTokens, cachedTokens: parsed.cachedTokens,
            promptTokens: parsed.promptTokens, worker: worker, unavailableAnswers: unavailable
        )
        return (outcome, parsed.text)
    }
}
