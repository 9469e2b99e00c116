import GatewayClient
import GatewayWire
import NIOHTTP1

struct ScaleOptions {
    var host = "127.0.0.1"
    var port = 30000
    var binaryPort = 30001
    var pid: Int32?
    var counts = [1000, 10000]
    var repeats = 10
    var registrationConnections = 16
}

/// `gateway-bench scale …`: registers workers (health checks off, model and runtime
/// given, so no probing) and times `GET /workers` and the binary `ListWorkers`.
func runScaleCommand(_ options: ScaleOptions) async throws {
    let client = try await GatewayClient.connect(host: options.host, port: options.binaryPort, clientName: "gateway-bench-scale")
    let host = "\(options.host):\(options.port)"
    var connections: [HTTPConnection] = []
    for _ in 0..<options.registrationConnections {
        connections.append(try await HTTPConnection.connect(host: options.host, port: options.port))
    }
    let listConnection = try await HTTPConnection.connect(host: options.host, port: options.port)
    let listRequest = HTTPRequestTemplate(method: .GET, path: "/workers", host: host, body: nil)

    // Idle baseline, after a few calls so lazily built state exists.
    for _ in 0..<5 {
        _ = try await listConnection.send(listRequest)
        _ = try await client.listWorkers()
    }
    let baseline = options.pid.flatMap { procStatusKB(pid: $0, field: "VmRSS") }

    var results: [JSON] = []
    var registered = try await Int(client.health().totalWorkers)
    for target in options.counts where target > registered {
        let from = registered
        let start = nowNanos()
        let pool = connections
        let n = pool.count
        let failures = await withTaskGroup(of: Int.self) { group in
            for c in 0..<n {
                group.addTask {
                    var failed = 0
                    var i = from + c
                    while i < target {
                        let body =
                            "{\"url\":\"http://127.0.0.1:9/w\(i)\",\"model_id\":\"scale-model\",\"runtime_type\":\"sglang\",\"disable_health_check\":true}"
                        let request = HTTPRequestTemplate(method: .POST, path: "/workers", host: host, body: body)
                        do {
                            let result = try await pool[c].send(request)
                            if result.status != 202 { failed += 1 }
                        } catch {
                            failed += 1
                        }
                        i += n
                    }
                    return failed
                }
            }
            var total = 0
            for await f in group { total += f }
            return total
        }
        let accepted = nowNanos()
        // Wait until every add job has finished (all healthy).
        var healthy = 0
        let waitDeadline = nowNanos() + 120_000_000_000
        while nowNanos() < waitDeadline {
            healthy = Int(try await client.health().healthyWorkers)
            if healthy >= target { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let ready = nowNanos()
        registered = target

        var restTimes: [UInt64] = []
        var bodyBytes = 0
        for _ in 0..<options.repeats {
            let t0 = nowNanos()
            let result = try await listConnection.send(listRequest)
            restTimes.append(nowNanos() - t0)
            bodyBytes = result.bodyBytes
        }
        var binaryTimes: [UInt64] = []
        var listed = 0
        for _ in 0..<options.repeats {
            let t0 = nowNanos()
            let reply = try await client.listWorkers()
            binaryTimes.append(nowNanos() - t0)
            listed = reply.workers.count
        }
        let rss = options.pid.flatMap { procStatusKB(pid: $0, field: "VmRSS") }
        let hwm = options.pid.flatMap { procStatusKB(pid: $0, field: "VmHWM") }
        var fields: [(String, JSON)] = [
            ("workers", .int(target)),
            ("registration_failures", .int(failures)),
            ("healthy", .int(healthy)),
            ("register_accept_s", .double(Double(accepted - start) / 1e9)),
            ("register_ready_s", .double(Double(ready - start) / 1e9)),
            ("get_workers", LatencySummary(nanos: restTimes).json()),
            ("get_workers_body_bytes", .int(bodyBytes)),
            ("binary_list_workers", LatencySummary(nanos: binaryTimes).json()),
            ("binary_listed", .int(listed)),
        ]
        if let rss, let baseline {
            fields.append(("rss_kb", .int(rss)))
            fields.append(("baseline_rss_kb", .int(baseline)))
            fields.append(("bytes_per_worker", .double(Double(rss - baseline) * 1024 / Double(target))))
        }
        if let hwm { fields.append(("vmhwm_kb", .int(hwm))) }
        results.append(.object(fields))
        printErr("scale: \(target) workers registered in \(Double(ready - start) / 1e9) s")
    }
    for connection in connections { await connection.close() }
    await listConnection.close()
    await client.close()
    var out: [(String, JSON)] = [("scale", .array(results))]
    if let baseline { out.append(("idle_rss_kb", .int(baseline))) }
    print(JSON.object(out).rendered)
}
