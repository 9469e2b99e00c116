import ArgumentParser
import GatewayServer
import Logging
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway: REST API on --port, workers from --worker-urls and POST /workers."
    )

    @OptionGroup var options: ServeOptions

    func run() async throws {
        MemoryTuning.apply()
        let configuration = try options.makeConfiguration()
        bootstrapLogging(level: configuration.logLevel, json: options.logJson)
        let logger = Logger(label: "model-gateway")
        if configuration.auth.adminAPIKey == nil {
            logger.notice("no --admin-api-key: worker management (REST /workers, binary worker calls) is accepted from loopback clients only")
        }
        let gateway = try Gateway(configuration: configuration, logger: logger)
        do {
            try await gateway.run(gracefulShutdownSignals: [.sigterm, .sigint]) { port in
                logger.info("model-gateway listening", metadata: ["address": "http://\(configuration.http.host):\(port)"])
            }
        } catch let error as Gateway.StartupError {
            throw ValidationError(error.description)
        }
    }
}
