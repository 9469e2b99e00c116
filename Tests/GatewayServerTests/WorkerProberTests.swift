import GatewayCore
import GatewayJSON
import Testing

@testable import GatewayWorkers

@Suite("Worker prober: reading workers' answers")
struct WorkerProberTests {
    static func object(_ text: String) throws -> JSONObject {
        try #require(try JSONParser.parse(text).objectValue)
    }

    @Test("A model id with a NUL is refused, from either runtime; NUL metadata is dropped")
    func nulRefused() throws {
        #expect(throws: WorkerProber.ProbeFailure.self) {
            try WorkerProber.openAIResult(models: try Self.object(#"{"data": [{"id": "m\u0000x"}]}"#))
        }
        #expect(throws: WorkerProber.ProbeFailure.self) {
            try WorkerProber.sglangResult(serverInfo: try Self.object(#"{"model_id": "m\u0000"}"#), modelInfo: [:])
        }
        let ok = try WorkerProber.openAIResult(models: try Self.object(#"{"data": [{"id": "m", "owned_by": "a\u0000b"}]}"#))
        #expect(ok.modelID == "m")
        #expect(ok.metadata["owned_by"] == nil)
    }
}
