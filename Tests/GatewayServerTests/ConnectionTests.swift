import Foundation
import GatewayJSON
import NIOCore
import NIOHTTP1
import SimWorker
import Testing

@testable import GatewayServer
@testable import GatewayHTTP

/// How one HTTP/1.1 connection is served (``HTTPConnectionHandler``): pipelining, half-close,
/// `Connection: close`, body limits, malformed input and a client that goes away, seen
/// through raw sockets.
@Suite("HTTP connections", .timeLimit(.minutes(1)))
struct ConnectionTests {
    /// A completion request for `model`, tagged with `id` (echoed in `X-Request-Id`).
    static func completion(model: String, id: String, padding: Int = 0, extraHeaders: String = "") -> String {
        let body = #"{"model": "\#(model)", "prompt": "hi", "user": "\#(String(repeating: "p", count: padding))"}"#
        return "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: \(id)\r\n\(extraHeaders)"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// A slow worker (model "slow", 400 ms per answer) and a fast one (model "fast").
    static func withSlowAndFast(_ body: (TestGateway) async throws -> Void) async throws {
        try await withSimWorkers(2, { index, configuration in
            configuration.modelID = index == 0 ? "slow" : "fast"
            configuration.latency = index == 0 ? .milliseconds(400) : .zero
        }) { _, urls in
            try await TestGateway.with { gw in
                _ = try await gw.addHealthyWorkers(urls)
                try await body(gw)
            }
        }
    }

    /// Where each marker first appears in `text` (nil when missing).
    static func positions(of markers: [String], in text: String) -> [Int?] {
        let lowered = text.lowercased()
        return markers.map { marker in lowered.range(of: marker.lowercased()).map { lowered.distance(from: lowered.startIndex, to: $0.lowerBound) } }
    }

    static func statusLines(_ text: String) -> Int { text.components(separatedBy: "HTTP/1.1 ").count - 1 }

    @Test("Pipelined requests are answered in the order sent, a slow one holding back a fast one")
    func pipelinedInOrder() async throws {
        try await Self.withSlowAndFast { gw in
            let client = try await RawClient(port: gw.port)
            try await client.send(
                Self.completion(model: "slow", id: "first-slow") + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + Self.completion(model: "fast", id: "third-fast")
            )
            try await eventually("three answers arrive", timeout: .seconds(10)) { Self.statusLines(client.received) == 3 }
            let places = Self.positions(of: ["x-request-id: first-slow", "x-request-id: third-fast"], in: client.received)
            let first = try #require(places[0]), third = try #require(places[1])
            #expect(first < third)
            #expect(client.isOpen)
            await client.close()
        }
    }

    @Test("40 pipelined requests of 4 KiB each, more than is held before reading stops, are all answered in order")
    func manyPipelined() async throws {
        try await Self.withSlowAndFast { gw in
            let client = try await RawClient(port: gw.port)
            let count = 40
            var text = ""
            for index in 0..<count { text += Self.completion(model: index == 0 ? "slow" : "fast", id: "req-\(index)-end", padding: 4096) }
            #expect(text.utf8.count > HTTPConnectionHandler.maxHeldBytes)
            try await client.send(text)
            try await eventually("\(count) answers arrive", timeout: .seconds(20)) { Self.statusLines(client.received) == count }
            let places = Self.positions(of: (0..<count).map { "x-request-id: req-\($0)-end" }, in: client.received)
            let found = places.compactMap { $0 }
            #expect(found.count == count)
            #expect(found == found.sorted())
            await client.close()
        }
    }

    @Test("A client that half-closes after its request still gets the answer, then the connection closes")
    func halfClose() async throws {
        try await Self.withSlowAndFast { gw in
            let client = try await RawClient(port: gw.port)
            try await client.send(Self.completion(model: "slow", id: "half-closed"))
            try await client.channel.close(mode: .output)
            try await eventually("the connection is closed", timeout: .seconds(10)) { !client.isOpen }
            #expect(client.received.hasPrefix("HTTP/1.1 200"), "\(client.received.prefix(120))")
            #expect(client.received.lowercased().contains("x-request-id: half-closed"))
            #expect(client.received.contains("\"choices\""))
        }
    }

    @Test("Connection: close gets its answer, then the connection closes")
    func connectionClose() async throws {
        try await Self.withSlowAndFast { gw in
            let client = try await RawClient(port: gw.port)
            try await client.send(Self.completion(model: "fast", id: "closing", extraHeaders: "Connection: close\r\n"))
            try await eventually("the connection is closed", timeout: .seconds(10)) { !client.isOpen }
            #expect(client.received.hasPrefix("HTTP/1.1 200"), "\(client.received.prefix(120))")
            #expect(client.received.contains("\"choices\""))
        }
    }

    @Test("A body over the route's limit gets 413 and the connection serves the next request")
    func oversizedBodyKeepsConnection() async throws {
        try await TestGateway.with({ $0.http.maxControlBodyBytes = 1024 }) { gw in
            let client = try await RawClient(port: gw.port)
            let big = #"{"url": "http://127.0.0.1:1", "x": ""# + String(repeating: "a", count: 300_000) + #""}"#
            try await client.send(
                "POST /workers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(big.utf8.count)\r\n\r\n\(big)"
                    + "GET /readiness HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            try await eventually("two answers arrive", timeout: .seconds(10)) { Self.statusLines(client.received) == 2 }
            let statuses = client.received.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(statuses == ["413", "503"] || statuses == ["413", "200"], "\(statuses)")
            #expect(client.received.contains("PAYLOAD_TOO_LARGE"), "\(client.received.prefix(400))")
            #expect(client.isOpen)
            await client.close()
        }
    }

    @Test("Malformed input after a request in flight: that request is answered, then 400 and a close")
    func malformedAfterPipelined() async throws {
        try await Self.withSlowAndFast { gw in
            let client = try await RawClient(port: gw.port)
            try await client.send(Self.completion(model: "slow", id: "before-garbage") + "THIS IS NOT HTTP\r\n\r\n")
            try await eventually("the connection is closed", timeout: .seconds(10)) { !client.isOpen }
            #expect(client.received.hasPrefix("HTTP/1.1 200"), "\(client.received.prefix(120))")
            #expect(client.received.contains("\"choices\""))
            #expect(client.received.contains("HTTP/1.1 400"))
            #expect(try await gw.get("/health").status == 200)
        }
    }

    @Test("Answers carry Date and Server")
    func standardHeaders() async throws {
        try await TestGateway.with { gw in
            let response = try await gw.get("/health")
            #expect(response.headers.first(name: "server") == "model-gateway")
            let date = try #require(response.headers.first(name: "date"))
            #expect(date.hasSuffix(" GMT") && date.count == 29, "\(date)")
        }
    }

    @Test("A client that resets its connection cancels its call to the worker")
    func resetCancelsUpstreamCall() async throws {
        let silent = try await ScriptedWorker { _ in .silent }
        try await TestGateway.with({
            $0.routing.requestTimeout = .seconds(30)
            $0.retry.isEnabled = false
        }) { gw in
            let id = try await gw.addWorker(url: "http://127.0.0.1:\(silent.port)", extra: #""model_id": "m", "runtime": "openai", "disable_health_check": true"#)
            try await gw.waitUntilHealthy(id)
            let client = try await RawClient(port: gw.port)
            try await client.send(Self.completion(model: "m", id: "reset"))
            try await eventually("the call reaches the worker") { try await gw.worker(id)["load"] == .int(1) }
            // SO_LINGER 0: closing sends a reset, not a half-close (after which the client
            // could still want its answer).
            try await (client.channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            await client.close()
            // Without the cancellation both would wait for the 30 s deadline.
            try await eventually("the worker's load is given back", timeout: .seconds(5)) { try await gw.worker(id)["load"] == .int(0) }
            try await eventually("the connection to the worker is closed", timeout: .seconds(5)) { silent.closedConnections == 1 }
        }
        await silent.close()
    }
}
