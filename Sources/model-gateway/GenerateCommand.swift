import ArgumentParser
import GatewayWire

/// `model-gateway generate`: one generation through the gateway.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text through the gateway: tokens stream to stdout, usage goes to stderr."
    )

    @Option(help: "The model (default: the only model served).")
    var model: String?

    @Option(help: "The prompt text (a completion).")
    var prompt: String?

    @Option(help: "A chat message ROLE:CONTENT, e.g. user:Hello (repeatable; a chat completion).")
    var chat: [String] = []

    @Option(help: "Prompt token ids, comma-separated (a completion).")
    var tokenIds: String?

    @Option(help: "Most tokens to generate.")
    var maxTokens: UInt32?

    @Option(help: "Sampling temperature.")
    var temperature: Float?

    @Option(help: "Key for consistent-hash routing (X-SMG-Routing-Key).")
    var routingKey: String?

    @Flag(inversion: .prefixedNo, help: "Stream tokens as they arrive (default), or print the result as JSON.")
    var stream: Bool = true

    @OptionGroup var client: ClientOptions

    func validate() throws {
        _ = try makeRequest()
    }

    func makeRequest() throws -> Wire.GenerateRequest {
        let inputs = [prompt != nil, !chat.isEmpty, tokenIds != nil].filter { $0 }.count
        guard inputs == 1 else { throw ValidationError("give exactly one of --prompt, --chat or --token-ids") }
        let input: Wire.GenerateRequest.Input
        if let prompt {
            input = .text(prompt)
        } else if let tokenIds {
            let ids = tokenIds.split(separator: ",").map { UInt32($0.trimmingSpaces) }
            guard !ids.isEmpty, !ids.contains(nil) else { throw ValidationError("--token-ids takes numbers separated by commas, e.g. 1,2,3") }
            input = .tokenIDs(ids.map { $0! })
        } else {
            input = .chat(
                try chat.map { message in
                    guard let colon = message.firstIndex(of: ":"), colon != message.startIndex else {
                        throw ValidationError("--chat takes ROLE:CONTENT, e.g. user:Hello (got '\(message)')")
                    }
                    return Wire.ChatMessage(role: String(message[..<colon]), content: String(message[message.index(after: colon)...]))
                }
            )
        }
        let sampling = maxTokens == nil && temperature == nil ? nil : Wire.SamplingParams(maxTokens: maxTokens, temperature: temperature)
        return Wire.GenerateRequest(model: model ?? "", input: input, sampling: sampling, stream: stream, routingKey: routingKey ?? "")
    }

    func run() async throws {
        let request = try makeRequest()
        try await client.withBackend { backend in
            guard stream else {
                Terminal.printJSON(WireJSON.result(try await backend.generate(request)))
                return
            }
            var endsWithNewline = true
            let result = try await backend.generateStream(request) { text in
                Terminal.output(text)
                endsWithNewline = text.hasSuffix("\n")
            }
            if !endsWithNewline { Terminal.output("\n") }
            Terminal.error(Self.summary(result))
        }
    }

    /// The line after a streamed generation: why it stopped and what it cost.
    static func summary(_ result: Wire.GenerateResult) -> String {
        var parts = ["finish_reason: \(result.finishReason.isEmpty ? "unknown" : result.finishReason)"]
        if let usage = result.usage {
            parts.append("usage: \(usage.promptTokens) prompt + \(usage.completionTokens) completion = \(usage.totalTokens) tokens")
        }
        if !result.model.isEmpty { parts.append("model: \(result.model)") }
        if !result.workerID.isEmpty { parts.append("worker: \(result.workerID)") }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
