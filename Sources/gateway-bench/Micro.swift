import Dispatch
import GatewayCore
import GatewayWire
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// This process's resident set in bytes (VmRSS).
func heapInUseBytes() -> Int {
    (procStatusKB(pid: getpid(), field: "VmRSS") ?? 0) * 1024
}

@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// One micro-benchmark's result: nanoseconds per operation over `runs` runs.
struct MicroResult {
    var name: String
    var medianNs: Double
    var minNs: Double
    var iterations: Int
    var runs: Int

    var json: JSON {
        .object([
            ("name", .string(name)), ("median_ns", .double(medianNs)), ("min_ns", .double(minNs)),
            ("iterations", .int(iterations)), ("runs", .int(runs)),
        ])
    }
}

final class MicroRunner {
    var results: [MicroResult] = []
    let runs: Int
    let targetRunNanos: UInt64

    init(runs: Int, targetRunMillis: Int) {
        self.runs = runs
        self.targetRunNanos = UInt64(targetRunMillis) * 1_000_000
    }

    /// Calibrates an iteration count to ~`targetRunNanos` per run, then reports the
    /// median and minimum of `runs` runs.
    func measure(_ name: String, _ body: (Int) -> Void) {
        var iterations = 1
        while true {
            let t0 = nowNanos()
            body(iterations)
            let elapsed = nowNanos() - t0
            if elapsed >= targetRunNanos / 4 || iterations >= 1 << 26 {
                iterations = max(1, Int(Double(iterations) * Double(targetRunNanos) / Double(max(elapsed, 1))))
                break
            }
            iterations *= 4
        }
        var perOp: [Double] = []
        for _ in 0..<runs {
            let t0 = nowNanos()
            body(iterations)
            perOp.append(Double(nowNanos() - t0) / Double(iterations))
        }
        perOp.sort()
        let result = MicroResult(name: name, medianNs: perOp[perOp.count / 2], minNs: perOp[0], iterations: iterations, runs: runs)
        results.append(result)
        let median = String((result.medianNs * 10).rounded() / 10)
        printErr("  \(name): \(median) ns/op")
    }
}

func makeCandidates(_ count: Int, model: String = "m") -> [RouteCandidate] {
    (0..<count).map { i in
        RouteCandidate(
            handle: WorkerHandle(id: .random()), url: try! WorkerURL("http://10.0.\(i / 250).\(i % 250 + 1):8000"), modelID: model,
            priority: 50, cost: 1, runtime: .sglang, apiKey: nil, maxLoad: nil
        )
    }
}

func sampleWorkerInfo(_ i: Int) -> Wire.WorkerInfo {
    Wire.WorkerInfo(
        id: WorkerID.random().description, url: "http://10.0.0.\(i % 250):8000", modelID: "sim-model", priority: 50, cost: 1,
        workerType: .regular, isHealthy: true, load: 3, connectionMode: "HTTP", runtimeType: .sglang,
        metadata: ["max_total_tokens": "4096", "served_model_name": "sim-model"]
    )
}

/// `gateway-bench micro`: frame and protobuf-c codecs, policies, registry.
func runMicroCommand(runs: Int, targetRunMillis: Int, only: String?) throws {
    let runner = MicroRunner(runs: runs, targetRunMillis: targetRunMillis)
    func enabled(_ group: String) -> Bool { only == nil || only == group }

    if enabled("wire") {
        printErr("wire (protobuf-c, frames):")
        let prompt = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 2)
        let envelopes: [(String, Wire.Envelope)] = [
            ("health_request", Wire.Envelope(streamID: 7, body: .health)),
            (
                "generate_request",
                Wire.Envelope(
                    streamID: 7,
                    body: .generate(.init(model: "sim-model", input: .text(prompt), sampling: .init(maxTokens: 16, temperature: 0.7)))
                )
            ),
            ("generate_chunk", Wire.Envelope(streamID: 7, body: .generateChunk(.init(text: " tok1 tok2", tokenIDs: [1001, 1002], index: 1)))),
            (
                "list_workers_reply_16",
                Wire.Envelope(
                    streamID: 7, body: .listWorkersReply(.init(workers: (0..<16).map(sampleWorkerInfo), total: 16, stats: .init(regularCount: 16)))
                )
            ),
        ]
        for (name, envelope) in envelopes {
            let bytes = try envelope.serializedBytes()
            runner.measure("protobuf_c_pack/\(name) (\(bytes.count) B)") { n in
                for _ in 0..<n { blackHole(try! envelope.serializedBytes()) }
            }
            runner.measure("protobuf_c_unpack/\(name)") { n in
                bytes.withUnsafeBytes { raw in
                    for _ in 0..<n { blackHole(try! Wire.Envelope(serializedBytes: raw)) }
                }
            }
            var buffer = ByteBufferAllocator().buffer(capacity: 4096)
            runner.measure("frame_encode/\(name)") { n in
                for _ in 0..<n {
                    buffer.clear()
                    try! Frame.write(envelope, into: &buffer)
                }
                blackHole(buffer)
            }
            let frame = try Frame.encode(envelope)
            runner.measure("frame_decode/\(name)") { n in
                for _ in 0..<n {
                    var input = frame
                    var decoder = FrameDecoder()
                    let payload = try! decoder.decode(buffer: &input)!
                    blackHole(try! Wire.Envelope(payload: payload))
                }
            }
        }
    }

    if enabled("policy") {
        printErr("policies (select, eligible = all workers):")
        for count in [16, 256, 4096] {
            let candidates = makeCandidates(count)
            let snapshot = RoutingSnapshot(version: 1, candidatesByModel: ["m": candidates], knownModels: ["m"])
            let keys = (0..<1024).map { "user-\($0)" }
            for name in PolicyName.allCases {
                let policy = name.makePolicy()
                if name == .cacheAware {
                    // 100k cached prefixes spread over the workers (one eligible at a time: no scan).
                    let setupStart = nowNanos()
                    for i in 0..<100_000 {
                        let text = Array("conversation \(i) system prompt: you are a helpful assistant; user: question \(i % 977)".utf8)
                        _ = policy.select([candidates[i % count]], all: candidates, model: "m", request: RoutingRequest(text: text), snapshot: snapshot)
                    }
                    printErr("  (cache_aware at \(count): 100k prefixes inserted in \(Double(nowNanos() - setupStart) / 1e6) ms)")
                    // Half the prompts extend a cached prefix, half are new.
                    let prompts = (0..<1024).map { i in
                        i % 2 == 0
                            ? Array("conversation \(i * 97) system prompt: you are a helpful assistant; user: question \((i * 97) % 977) and more".utf8)
                            : Array("fresh prompt \(i) that nobody has sent before, with some words".utf8)
                    }
                    var i = 0
                    runner.measure("policy_select/\(name.rawValue)/\(count)_workers/100k_prefixes") { n in
                        for _ in 0..<n {
                            blackHole(policy.select(candidates, all: candidates, model: "m", request: RoutingRequest(text: prompts[i & 1023]), snapshot: snapshot))
                            i &+= 1
                        }
                    }
                } else {
                    var i = 0
                    runner.measure("policy_select/\(name.rawValue)/\(count)_workers") { n in
                        for _ in 0..<n {
                            blackHole(policy.select(candidates, all: candidates, model: "m", request: RoutingRequest(key: keys[i & 1023]), snapshot: snapshot))
                            i &+= 1
                        }
                    }
                }
            }
        }
    }

    if enabled("registry") {
        printErr("worker handle (per request):")
        let handle = WorkerHandle(id: .random())
        let now = ContinuousClock.now
        runner.measure("worker_handle_breaker_allows") { n in
            for _ in 0..<n { blackHole(handle.breakerAllows(at: now)) }
        }
        runner.measure("worker_handle_record_success") { n in
            for _ in 0..<n { blackHole(handle.recordSuccess()) }
        }
        // What every attempt pays for its load and for watching the drain's cut signal.
        runner.measure("worker_handle_begin_end_request") { n in
            for _ in 0..<n {
                handle.beginRequest()
                handle.endRequest()
            }
        }
        runner.measure("worker_handle_cut_watch") { n in
            for _ in 0..<n { handle.onCut { _ in }.cancel() }
        }
        for threads in [2, 4] {
            runner.measure("worker_handle_cut_watch/\(threads)_threads_contended") { n in
                let per = max(1, n / threads)
                DispatchQueue.concurrentPerform(iterations: threads) { _ in
                    for _ in 0..<per { handle.onCut { _ in }.cancel() }
                }
            }
        }
        for threads in [2, 4] {
            runner.measure("worker_handle_breaker_allows_and_success/\(threads)_threads_contended") { n in
                let per = max(1, n / threads)
                DispatchQueue.concurrentPerform(iterations: threads) { _ in
                    for _ in 0..<per {
                        blackHole(handle.breakerAllows(at: now))
                        blackHole(handle.recordSuccess())
                    }
                }
            }
        }
        printErr("registry:")
        for count in [16, 256, 4096] {
            let heapBefore = heapInUseBytes()
            let registry = WorkerRegistry(wallClock: { 0 })
            var ids: [WorkerID] = []
            let t0 = nowNanos()
            for i in 0..<count {
                let spec = WorkerSpec(
                    url: try! WorkerURL("http://127.0.0.1:9/w\(i)"), modelID: "m", runtimeType: .sglang,
                    healthCheck: HealthCheckConfig(disabled: true)
                )
                let worker = registry.reserve(spec).worker
                registry.completeRegistration(worker.id, probe: WorkerProbeResult(modelID: "m", runtimeType: .sglang))
                ids.append(worker.id)
            }
            let registerNanos = nowNanos() - t0
            ids.reserveCapacity(0)
            let heapPerWorker = Double(heapInUseBytes() - heapBefore - count * MemoryLayout<WorkerID>.stride) / Double(count)
            printErr("  (\(count) workers registered in \(Double(registerNanos) / 1e6) ms; RSS growth \(Int(heapPerWorker)) B per worker, meaningful only with --only registry)")
            runner.results.append(MicroResult(name: "registry_register_all/\(count)_workers (ns per worker)", medianNs: Double(registerNanos) / Double(count), minNs: Double(registerNanos) / Double(count), iterations: count, runs: 1))
            let frozenIDs = ids
            let selector = WorkerSelector(registry: registry, policy: PolicyName.roundRobin.makePolicy())
            runner.measure("registry_lookup/\(count)_workers/1_thread") { n in
                for i in 0..<n { blackHole(registry.worker(frozenIDs[i % count])) }
            }
            runner.measure("registry_list_all/\(count)_workers") { n in
                for _ in 0..<n { blackHole(registry.workers()) }
            }
            runner.measure("selector_select_round_robin/\(count)_workers") { n in
                for _ in 0..<n { blackHole(selector.select(model: "m", request: RoutingRequest())) }
            }
            // Cache-aware picks from the available list: every worker's breaker is asked per request.
            let everyBreaker = WorkerSelector(registry: registry, policy: PolicyName.cacheAware.makePolicy())
            runner.measure("selector_select_cache_aware_all_breakers/\(count)_workers") { n in
                for _ in 0..<n { blackHole(everyBreaker.select(model: "m", request: RoutingRequest())) }
            }
            // Contention: every thread looks up workers and routes at once; ns per op
            // is wall time divided by all operations of all threads.
            for threads in [2, 4] {
                runner.measure("registry_lookup/\(count)_workers/\(threads)_threads_contended") { n in
                    let per = max(1, n / threads)
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        for i in 0..<per { blackHole(registry.worker(frozenIDs[(i &+ t &* 7919) % count])) }
                    }
                }
                runner.measure("selector_select_round_robin/\(count)_workers/\(threads)_threads_contended") { n in
                    let per = max(1, n / threads)
                    DispatchQueue.concurrentPerform(iterations: threads) { _ in
                        for _ in 0..<per { blackHole(selector.select(model: "m", request: RoutingRequest())) }
                    }
                }
            }
        }
    }

    let json = JSON.object([("runs", .int(runs)), ("micro", .array(runner.results.map(\.json)))])
    print(json.rendered)
}
