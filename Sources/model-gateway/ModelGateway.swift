import ArgumentParser

@main
struct ModelGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-gateway",
        abstract: "A gateway in front of a fleet of LLM inference workers (SGLang, vLLM, llama.cpp, any OpenAI-compatible server).",
        subcommands: [Serve.self, Demo.self, WorkersCommand.self, ModelsCommand.self, GenerateCommand.self],
        defaultSubcommand: Serve.self
    )
}
