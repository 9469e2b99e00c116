import ArgumentParser

/// `model-gateway models`: the models served and their workers.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the models served, with their worker counts (GET /v1/models)."
    )

    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await client.withBackend { Terminal.printJSON(try await $0.listModels()) }
    }
}
