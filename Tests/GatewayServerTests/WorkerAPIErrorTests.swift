import GatewayCore
import GatewayJSON
import NIOHTTP1
import Testing

@testable import GatewayServer

/// Every bad input gets a JSON error with a status and a machine code.
@Suite("Worker API errors")
struct WorkerAPIErrorTests {
    static let validID = "3f2c6a1e-8d4b-4c1a-9e2f-0a1b2c3d4e5f"

    @Test(
        "Bad POST /workers bodies are refused with a clear error",
        arguments: [
            ("{not json", 400, "INVALID_JSON"),
            ("", 400, "INVALID_JSON"),
            ("[1, 2]", 400, "INVALID_JSON"),
            (#"{"url": "http://a:1",}"#, 400, "INVALID_JSON"),
            (#"{"url": "http://a:1", "url": "http://b:1"}"#, 400, "INVALID_JSON"),
            (#"{"url": "http://a:1", "labels": {"zone": "x", "zone": "y"}}"#, 400, "INVALID_JSON"),
            ("{}", 400, "MISSING_FIELD"),
            (#"{"url": null}"#, 400, "MISSING_FIELD"),
            (#"{"model_id": "m"}"#, 400, "MISSING_FIELD"),
            (#"{"url": 42}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "priority": "high"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "priority": -1}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "priority": 1.5}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "cost": "cheap"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "cost": -2}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "labels": ["a"]}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "labels": {"a": 1}}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "worker_type": "gpu"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "runtime": "tgi"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "bootstrap_port": 70000}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "disable_health_check": "yes"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "health_check_timeout_secs": 0}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "health_check_endpoint": "health"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "model_id": ""}"#, 400, "INVALID_FIELD"),
            // A NUL is refused in every stored string (the binary door could not serve it).
            (#"{"url": "http://h:1", "model_id": "a\u0000b"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "labels": {"zone": "a\u0000"}}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "labels": {"z\u0000": "a"}}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h:1", "api_key": "k\u0000"}"#, 400, "INVALID_FIELD"),
            (#"{"url": "http://h\u0000:1"}"#, 400, "INVALID_FIELD"),
            (#"{"url": ""}"#, 400, "MISSING_FIELD"),
            (#"{"url": "not a url"}"#, 400, "INVALID_URL"),
            (#"{"url": "ftp://host:21"}"#, 400, "INVALID_URL"),
            (#"{"url": "http://"}"#, 400, "INVALID_URL"),
            (#"{"url": "http://host:99999"}"#, 400, "INVALID_URL"),
            (#"{"url": "http://user:pw@host:1"}"#, 400, "INVALID_URL"),
            (#"{"url": "workerhost"}"#, 400, "INVALID_URL"),
        ]
    )
    func badAddBodies(body: String, status: Int, code: String) async throws {
        try await TestGateway.with { gw in
            let response = try await gw.post("/workers", body)
            #expect(response.status == status, "\(body) -> \(response.text)")
            #expect(response.errorCode == code, "\(body) -> \(response.text)")
            #expect(response.json["error"]?.stringValue?.isEmpty == false)
            #expect(response.headers.first(name: "Content-Type") == "application/json")
            #expect(try await gw.get("/workers").json["total"] == .int(0), "a refused body must not create a worker")
        }
    }

    @Test("Malformed ids answer 400 BAD_REQUEST on every method; unknown ids 404 WORKER_NOT_FOUND")
    func badIDs() async throws {
        try await TestGateway.with { gw in
            for raw in ["not-a-uuid", "3f2c6a1e-8d4b-4c1a-9e2f-0a1b2c3d4e5", "3f2c6a1e8d4b4c1a9e2f0a1b2c3d4e5f", "zzzzzzzz-8d4b-4c1a-9e2f-0a1b2c3d4e5f"] {
                for response in [
                    try await gw.get("/workers/\(raw)"),
                    try await gw.put("/workers/\(raw)", #"{"priority": 1}"#),
                    try await gw.delete("/workers/\(raw)"),
                ] {
                    #expect(response.status == 400, "\(raw): \(response.text)")
                    #expect(response.errorCode == "BAD_REQUEST")
                }
            }
            for response in [
                try await gw.get("/workers/\(Self.validID)"),
                try await gw.put("/workers/\(Self.validID)", #"{"priority": 1}"#),
                try await gw.delete("/workers/\(Self.validID)"),
            ] {
                #expect(response.status == 404)
                #expect(response.errorCode == "WORKER_NOT_FOUND")
            }
        }
    }

    @Test("Wrong methods answer 405 with Allow; unknown paths 404, both as JSON")
    func methodsAndPaths() async throws {
        try await TestGateway.with { gw in
            let cases: [(HTTPMethodName, String, String)] = [
                (.PATCH, "/workers", "GET, HEAD, POST"),
                (.DELETE, "/workers", "GET, HEAD, POST"),
                (.POST, "/workers/\(Self.validID)", "DELETE, GET, HEAD, PATCH, PUT"),
                (.POST, "/readiness", "GET, HEAD"),
            ]
            for (method, path, allow) in cases {
                let response = try await gw.request(method.nio, path)
                #expect(response.status == 405, "\(method) \(path)")
                #expect(response.headers.first(name: "Allow") == allow)
                #expect(response.errorCode == "METHOD_NOT_ALLOWED")
            }
            for path in ["/nope", "/workers/\(Self.validID)/extra", "/v1/nothing-here"] {
                let response = try await gw.get(path)
                #expect(response.status == 404, "\(path)")
                #expect(response.headers.first(name: "Content-Type") == "application/json")
                if path.hasPrefix("/v1/") {
                    #expect(response.json["error"]?["code"] == .string("not_found"))
                    #expect(response.json["error"]?["type"] == .string("not_found_error"))
                } else {
                    #expect(response.errorCode == "NOT_FOUND")
                }
            }
        }
    }

    @Test("A body over the limit is refused with 413")
    func oversizeBody() async throws {
        try await TestGateway.with({ $0.http.maxControlBodyBytes = 1024 }) { gw in
            let big = #"{"url": "http://h:1", "labels": {"k": ""# + String(repeating: "x", count: 4096) + #""}}"#
            let response = try await gw.post("/workers", big)
            #expect(response.status == 413)
            #expect(response.errorCode == "PAYLOAD_TOO_LARGE")
        }
    }

    @Test("PUT refuses fields that cannot change and empty updates")
    func badUpdates() async throws {
        try await withSimWorkers(1) { _, urls in
            try await TestGateway.with { gw in
                let id = try await gw.addWorker(url: urls[0])
                for body in [#"{"url": "http://other:1"}"#, #"{"model_id": "x"}"#, #"{"worker_type": "decode"}"#, "{}", #"{"unknown": 1}"#, #"{"priority": "x"}"#] {
                    let response = try await gw.put("/workers/\(id)", body)
                    #expect(response.status == 400, "\(body): \(response.text)")
                }
            }
        }
    }
}

/// HTTP method names for table-driven tests.
enum HTTPMethodName: String, CustomStringConvertible {
    case GET, POST, PUT, DELETE, PATCH

    var description: String { rawValue }
    var nio: NIOHTTP1.HTTPMethod { .init(rawValue: rawValue) }
}

