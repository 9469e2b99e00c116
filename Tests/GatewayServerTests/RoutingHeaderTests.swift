import GatewayCore
import GatewayJSON
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer

/// Request ids, credentials and trace context between client, gateway and worker.
@Suite("Routing headers")
struct RoutingHeaderTests {
    /// The value of header `name` (any case) the worker last received on `path`.
    static func forwarded(_ worker: SimWorker, _ name: String, path: String = "/v1/completions") -> String? {
        worker.lastRequestHeaders(path: path).first { $0.name.lowercased() == name.lowercased() }?.value
    }

    @Test("x-request-id: echoed from the client, taken from x-correlation-id, or generated; forwarded to the worker")
    func requestID() async throws {
        try await withSimWorkers(1) { workers, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)

                let given = try await gw.complete(headers: [("X-Request-Id", "client-req-42")])
                #expect(given.status == 200)
                #expect(given.headers.first(name: "x-request-id") == "client-req-42")
                #expect(Self.forwarded(workers[0], "x-request-id") == "client-req-42")

                let correlated = try await gw.complete(headers: [("X-Correlation-Id", "corr-7")])
                #expect(correlated.headers.first(name: "x-request-id") == "corr-7")
                #expect(Self.forwarded(workers[0], "x-request-id") == "corr-7")

                let both = try await gw.complete(headers: [("X-Correlation-Id", "corr-8"), ("X-Request-Id", "req-8")])
                #expect(both.headers.first(name: "x-request-id") == "req-8")
                #expect(Self.forwarded(workers[0], "x-request-id") == "req-8")

                let generated = try await gw.complete()
                let first = try #require(generated.headers.first(name: "x-request-id"))
                #expect(!first.isEmpty)
                #expect(Self.forwarded(workers[0], "x-request-id") == first)
                let second = try #require(try await gw.complete().headers.first(name: "x-request-id"))
                #expect(second != first)

                // Streams and the gateway's own errors carry it too.
                let stream = try await gw.stream(#"{"prompt": "hi", "stream": true}"#, headers: [("X-Request-Id", "stream-1")])
                #expect(stream.headers.first(name: "x-request-id") == "stream-1")
                let error = try await gw.request(.POST, "/v1/completions", body: "{", headers: [("X-Request-Id", "bad-1")])
                #expect(error.status == 400)
                #expect(error.headers.first(name: "x-request-id") == "bad-1")
            }
        }
    }

    @Test("Authorization: the worker's api_key as Bearer overrides the client's; without one the client's passes; traceparent forwarded")
    func credentialsAndTrace() async throws {
        try await withSimWorkers(2, { index, c in c.modelID = index == 0 ? "keyed" : "open" }) { workers, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls) { index in index == 0 ? #""api_key": "sk-worker-secret""# : "" }
                let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                let headers = [("Authorization", "Bearer client-token"), ("traceparent", trace), ("tracestate", "vendor=1")]

                let keyed = try await gw.complete(fields: #""model": "keyed""#, headers: headers)
                #expect(keyed.status == 200)
                #expect(keyed.simWorker == workers[0].name)
                #expect(Self.forwarded(workers[0], "authorization") == "Bearer sk-worker-secret")
                #expect(Self.forwarded(workers[0], "traceparent") == trace)
                #expect(Self.forwarded(workers[0], "tracestate") == "vendor=1")
                #expect(workers[0].lastRequestHeaders(path: "/v1/completions").filter { $0.name.lowercased() == "authorization" }.count == 1)

                let open = try await gw.complete(fields: #""model": "open""#, headers: headers)
                #expect(open.simWorker == workers[1].name)
                #expect(Self.forwarded(workers[1], "authorization") == "Bearer client-token")
                #expect(Self.forwarded(workers[1], "traceparent") == trace)

                // Nothing invented when the client sends none.
                _ = try await gw.complete(fields: #""model": "open""#)
                #expect(Self.forwarded(workers[1], "authorization") == nil)
                #expect(Self.forwarded(workers[1], "traceparent") == nil)
                // The key is also used on the health probes, and never shown.
                #expect(Self.forwarded(workers[0], "authorization", path: "/health") == "Bearer sk-worker-secret")
                #expect(!(try await gw.get("/workers").text.contains("sk-worker-secret")))
            }
        }
    }
}
