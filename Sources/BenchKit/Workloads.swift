import GatewayJSON

/// The inference route a replay sends to.
public enum ReplayRoute: String, Sendable, CaseIterable {
    /// `POST /v1/chat/completions` (messages; the engine applies its chat template).
    case chat
    /// `POST /v1/completions` (one prompt string).
    case completions
    /// `POST /generate` (SGLang's native route).
    case generate

    /// The request path.
    public var path: String {
        switch self {
        case .chat: "/v1/chat/completions"
        case .completions: "/v1/completions"
        case .generate: "/generate"
        }
    }
}

/// Where a multi-turn session names itself to the gateway.
public enum RoutingKeyMode: String, Sendable, CaseIterable {
    /// Nowhere: the gateway sees only the prompt.
    case none
    /// `X-SMG-Routing-Key: session-N`.
    case header
    /// The body's `user` field.
    case body
}

/// One request of a job, at a planned time.
public struct PlannedTurn: Sendable, Equatable {
    /// Seconds after the run's start when it is due.
    public var at: Double
    /// The user message (chat) or the prompt's new text.
    public var content: String
    /// Tokens to generate.
    public var outputTokens: Int
}

/// A sequence of requests that belong together: one request, or a multi-turn session
/// whose later turns re-send the history with the replies received.
public struct PlannedJob: Sendable, Equatable {
    /// Index in the plan.
    public var id: Int
    /// The session's routing key (`session-N`), for the `RoutingKeyMode`.
    public var sessionKey: String?
    /// The system prompt sent first, if any.
    public var system: String?
    /// The requests, in order; turn k is sent when due and once turn k-1 has ended.
    public var turns: [PlannedTurn]
}

/// A generated workload. Every plan is a pure function of its parameters and the seed.
public enum Workload: Sendable {
    /// Groups sharing a system prompt: each request is the system prompt of a group (drawn
    /// uniformly, or Zipf with `zipfAlpha` > 0) and one of the group's questions.
    case sharedPrefix(SharedPrefix)
    /// Sessions of several turns, each re-sending its whole history.
    case multiTurn(MultiTurn)
    /// Prompts that share nothing: the control a cache cannot help.
    case zeroReuse(ZeroReuse)
    /// Records of a Mooncake-style trace, replayed at their own times (scaled).
    case trace(records: [TraceRecord], timeScale: Double, blockTokens: Int)

    /// Shared-prefix parameters.
    public struct SharedPrefix: Sendable, Equatable {
        public var groups: Int
        public var promptsPerGroup: Int
        public var systemTokens: Int
        public var questionTokens: Int
        public var outputTokens: Int
        /// 0: groups drawn uniformly; otherwise Zipf over groups with this exponent.
        public var zipfAlpha: Double
        public var requests: Int

        public init(groups: Int, promptsPerGroup: Int, systemTokens: Int, questionTokens: Int, outputTokens: Int, zipfAlpha: Double, requests: Int) {
            self.groups = groups
            self.promptsPerGroup = promptsPerGroup
            self.systemTokens = systemTokens
            self.questionTokens = questionTokens
            self.outputTokens = outputTokens
            self.zipfAlpha = zipfAlpha
            self.requests = requests
        }

        /// Tokens of distinct prompt text: every system prompt and every question once.
        public var workingSetTokens: Int { groups * systemTokens + groups * promptsPerGroup * questionTokens }
    }

    /// Multi-turn parameters.
    public struct MultiTurn: Sendable, Equatable {
        public var sessions: Int
        public var turns: Int
        public var systemTokens: Int
        public var userTokens: Int
        public var outputTokens: Int
        /// Seconds between the due times of a session's turns.
        public var turnGap: Double

        public init(sessions: Int, turns: Int, systemTokens: Int, userTokens: Int, outputTokens: Int, turnGap: Double) {
            self.sessions = sessions
            self.turns = turns
            self.systemTokens = systemTokens
            self.userTokens = userTokens
            self.outputTokens = outputTokens
            self.turnGap = turnGap
        }

        /// Tokens of every session's full history (its last turn's prompt plus reply).
        public var workingSetTokens: Int { sessions * (systemTokens + turns * (userTokens + outputTokens)) }
    }

    /// Zero-reuse parameters.
    public struct ZeroReuse: Sendable, Equatable {
        public var requests: Int
        public var promptTokens: Int
        public var outputTokens: Int

        public init(requests: Int, promptTokens: Int, outputTokens: Int) {
            self.requests = requests
            self.promptTokens = promptTokens
            self.outputTokens = outputTokens
        }
    }
}

/// `count` words `prefix0 prefix1 …` (one token each for the sim's tokeniser).
public func words(_ prefix: String, _ count: Int) -> String {
    var out = ""
    out.reserveCapacity(count * (prefix.utf8.count + 5))
    for i in 0..<max(0, count) {
        if i > 0 { out += " " }
        out += prefix
        out += String(i)
    }
    return out
}

extension Workload {
    /// The jobs of this workload: arrivals are Poisson at `rate` requests a second
    /// (multi-turn: sessions arrive at `rate / turns`, their turns `turnGap` apart); a
    /// trace keeps its own timestamps.
    public func plan(rate: Double, seed: UInt64) -> [PlannedJob] {
        var random = SeededRandom(seed: seed)
        var jobs: [PlannedJob] = []
        switch self {
        case .sharedPrefix(let p):
            let zipf = ZipfSampler(count: max(1, p.groups), alpha: max(0, p.zipfAlpha))
            let systems = (0..<p.groups).map { words("g\($0)w", p.systemTokens) }
            var t = 0.0
            for id in 0..<p.requests {
                t += random.exponential(rate: rate)
                let group = zipf.sample(&random)
                let question = Int(random.next() % UInt64(max(1, p.promptsPerGroup)))
                jobs.append(
                    PlannedJob(
                        id: id, sessionKey: nil, system: systems[group],
                        turns: [PlannedTurn(at: t, content: words("q\(group)p\(question)w", p.questionTokens), outputTokens: p.outputTokens)]
                    )
                )
            }
        case .multiTurn(let m):
            var t = 0.0
            let sessionRate = rate / Double(max(1, m.turns))
            for id in 0..<m.sessions {
                t += random.exponential(rate: sessionRate)
                let turns = (0..<m.turns).map { k in
                    PlannedTurn(at: t + Double(k) * m.turnGap, content: words("s\(id)t\(k)w", m.userTokens), outputTokens: m.outputTokens)
                }
                jobs.append(
                    PlannedJob(id: id, sessionKey: "session-\(id)", system: m.systemTokens > 0 ? words("s\(id)sysw", m.systemTokens) : nil, turns: turns)
                )
            }
        case .zeroReuse(let z):
            var t = 0.0
            for id in 0..<z.requests {
                t += random.exponential(rate: rate)
                jobs.append(PlannedJob(id: id, sessionKey: nil, system: nil, turns: [PlannedTurn(at: t, content: words("z\(id)w", z.promptTokens), outputTokens: z.outputTokens)]))
            }
        case .trace(let records, let scale, let blockTokens):
            let origin = records.first?.timestampMillis ?? 0
            for (id, record) in records.enumerated() {
                let at = (record.timestampMillis - origin) / 1000 * scale
                jobs.append(
                    PlannedJob(
                        id: id, sessionKey: nil, system: nil,
                        turns: [PlannedTurn(at: at, content: record.prompt(blockTokens: blockTokens, index: id), outputTokens: max(1, record.outputLength))]
                    )
                )
            }
        }
        return jobs
    }
}

/// One turn's exchange, kept so the next turn re-sends it.
public struct TurnHistory: Sendable, Equatable {
    public var user: String
    public var assistant: String

    public init(user: String, assistant: String) {
        self.user = user
        self.assistant = assistant
    }
}

/// The body of a request: `route`'s shape, streamed with usage, `ignore_eos` so real
/// engines generate exactly `outputTokens`.
public func requestBody(
    route: ReplayRoute,
    model: String,
    system: String?,
    history: [TurnHistory],
    content: String,
    outputTokens: Int,
    user: String?
) -> [UInt8] {
    var w = JSONWriter(capacity: 256 + content.utf8.count + (system?.utf8.count ?? 0) + history.count * 1024)
    w.beginObject()
    switch route {
    case .chat:
        w.field("model", model)
        w.key("messages")
        w.beginArray()
        func message(_ role: String, _ text: String) {
            w.beginObject()
            w.field("role", role)
            w.field("content", text)
            w.endObject()
        }
        if let system { message("system", system) }
        for turn in history {
            message("user", turn.user)
            message("assistant", turn.assistant)
        }
        message("user", content)
        w.endArray()
    case .completions:
        w.field("model", model)
        w.field("prompt", flatPrompt(system: system, history: history, content: content))
    case .generate:
        w.field("model", model)
        w.field("text", flatPrompt(system: system, history: history, content: content))
        w.key("sampling_params")
        w.beginObject()
        w.field("max_new_tokens", outputTokens)
        w.field("ignore_eos", true)
        w.endObject()
        w.field("stream", true)
    }
    if route != .generate {
        // OpenAI's routes: the budget, and the usage chunk that carries the cached tokens.
        w.field("max_tokens", outputTokens)
        w.field("ignore_eos", true)
        w.field("stream", true)
        w.key("stream_options")
        w.beginObject()
        w.field("include_usage", true)
        w.endObject()
    }
    if let user { w.field("user", user) }
    w.endObject()
    return w.bytes
}

/// A history as one prompt: the parts joined by newlines.
public func flatPrompt(system: String?, history: [TurnHistory], content: String) -> String {
    var parts: [String] = []
    if let system { parts.append(system) }
    for turn in history {
        parts.append(turn.user)
        parts.append(turn.assistant)
    }
    parts.append(content)
    return parts.joined(separator: "\n")
}
