import Testing
import GatewayCore

private let now: Int64 = 1_700_000_000

private func makeRegistry() -> WorkerRegistry {
    WorkerRegistry(wallClock: { now })
}

private func spec(_ url: String, modelID: String? = nil, runtime: RuntimeType? = nil, healthCheck: HealthCheckConfig = HealthCheckConfig()) throws -> WorkerSpec {
    WorkerSpec(url: try WorkerURL(url), modelID: modelID, runtimeType: runtime, healthCheck: healthCheck)
}

private let probe = WorkerProbeResult(modelID: "meta-llama/Llama-3.1-8B", runtimeType: .sglang, metadata: ["max_total_tokens": "8192"])

/// Registers `url` and completes its registration: a ready, healthy worker.
@discardableResult
private func addReady(_ registry: WorkerRegistry, _ url: String, healthCheck: HealthCheckConfig = HealthCheckConfig()) throws -> Worker {
    let id = registry.reserve(try spec(url, healthCheck: healthCheck)).worker.id
    return try #require(registry.completeRegistration(id, probe: probe))
}

@Suite("WorkerRegistry")
struct WorkerRegistryTests {
    @Test func reserveCreatesAPendingWorker() throws {
        let registry = makeRegistry()
        let reservation = registry.reserve(try spec("http://10.0.0.1:8000"))
        guard case .created(let worker) = reservation else {
            Issue.record("expected .created, got \(reservation)")
            return
        }
        #expect(reservation.needsJob)
        #expect(worker.phase == .registering)
        #expect(!worker.isHealthy)
        #expect(!worker.isRoutable)
        #expect(worker.modelID == Worker.unknownModelID)
        #expect(worker.runtimeType == nil)
        #expect(worker.metadata.isEmpty)
        #expect(worker.url.description == "http://10.0.0.1:8000")
        let job = try #require(worker.job)
        #expect(job.jobType == .addWorker)
        #expect(job.state == .pending)
        #expect(job.workerURL == "http://10.0.0.1:8000")
        #expect(job.timestamp == now)
        #expect(!job.message.isEmpty)
        #expect(registry.worker(worker.id) == worker)
        #expect(registry.count == 1)
    }

    @Test func reserveKeepsGivenModelAndRuntime() throws {
        let registry = makeRegistry()
        let worker = registry.reserve(try spec("http://h:1", modelID: "m", runtime: .openai)).worker
        #expect(worker.modelID == "m")
        #expect(worker.runtimeType == .openai)
    }

    @Test func sameURLInAnySpellingGivesTheSameID() throws {
        let registry = makeRegistry()
        let first = registry.reserve(try spec("http://worker:8000"))
        #expect(first.needsJob)
        for spelling in ["HTTP://WORKER:8000", "worker:8000", "http://worker:8000/", "Worker:8000//"] {
            let again = registry.reserve(try spec(spelling))
            guard case .existing(let worker) = again else {
                Issue.record("\(spelling): expected .existing, got \(again)")
                continue
            }
            #expect(!again.needsJob)
            #expect(worker.id == first.worker.id)
        }
        #expect(registry.count == 1)
        #expect(registry.worker(url: try WorkerURL("worker:8000/"))?.id == first.worker.id)
    }

    @Test func reserveOfAReadyWorkerIsExisting() throws {
        let registry = makeRegistry()
        let ready = try addReady(registry, "http://w:1")
        let again = registry.reserve(try spec("http://w:1"))
        #expect(again == .existing(ready))
    }

    @Test func differentURLsGetDifferentIDs() throws {
        let registry = makeRegistry()
        let urls = ["http://a:1", "http://a:2", "https://a:1", "http://b:1", "http://a:1/v1"]
        let ids = try urls.map { registry.reserve(try spec($0)).worker.id }
        #expect(Set(ids).count == urls.count)
        #expect(registry.count == urls.count)
    }

    @Test func concurrentReservesOfTheSameURLsGiveOneIDEach() async throws {
        let registry = makeRegistry()
        let spellings: [@Sendable (Int) -> String] = [
            { "http://host-\($0):8000" },
            { "HTTP://HOST-\($0):8000/" },
            { "host-\($0):8000" },
            { "http://Host-\($0):8000//" },
        ]
        let results = await withTaskGroup(of: (Int, WorkerRegistry.Reservation).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let n = i % 50
                    let url = try! WorkerURL(spellings[(i / 50) % spellings.count](n))
                    return (n, registry.reserve(WorkerSpec(url: url)))
                }
            }
            var all: [(Int, WorkerRegistry.Reservation)] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 200)
        var idsByURL: [Int: Set<WorkerID>] = [:]
        var created = 0
        for (n, reservation) in results {
            idsByURL[n, default: []].insert(reservation.worker.id)
            if case .created = reservation { created += 1 }
        }
        #expect(created == 50)
        #expect(idsByURL.count == 50)
        #expect(idsByURL.values.allSatisfy { $0.count == 1 })
        #expect(Set(idsByURL.values.compactMap(\.first)).count == 50)
        #expect(registry.count == 50)
        #expect(registry.workers().count == 50)
        #expect(Set(registry.workers().map(\.id)).count == 50)
        // Listing order is sequence order.
        let sequences = registry.workers().map(\.sequence)
        #expect(sequences == sequences.sorted())
        #expect(Set(sequences).count == 50)
    }

    @Test func listingOrderIsRegistrationOrderAndStable() throws {
        let registry = makeRegistry()
        let names = ["a", "b", "c", "d"]
        let ids = try names.map { registry.reserve(try spec("http://\($0):1")).worker.id }
        #expect(registry.workers().map(\.id) == ids)

        // State changes do not reorder.
        registry.completeRegistration(ids[2], probe: probe)
        registry.failRegistration(ids[0], message: "down")
        #expect(registry.workers().map(\.id) == ids)

        #expect(registry.remove(ids[1]) != nil)
        let e = registry.reserve(try spec("http://e:1")).worker.id
        #expect(registry.workers().map(\.id) == [ids[0], ids[2], ids[3], e])
        #expect(registry.workers().map(\.id) == registry.workers().map(\.id))

        // A re-added URL is new and goes last; a retried failure keeps its place.
        let b2 = registry.reserve(try spec("http://b:1")).worker.id
        #expect(registry.reserve(try spec("http://a:1")).worker.id == ids[0])
        #expect(registry.workers().map(\.id) == [ids[0], ids[2], ids[3], e, b2])
        let sequences = registry.workers().map(\.sequence)
        #expect(sequences == sequences.sorted())
    }

    @Test func completeRegistration() throws {
        let registry = makeRegistry()
        let id = registry.reserve(try spec("http://w:1")).worker.id
        let worker = try #require(registry.completeRegistration(id, probe: probe))
        #expect(worker.phase == .ready)
        #expect(worker.isHealthy)
        #expect(worker.isRoutable)
        #expect(worker.job == nil)
        #expect(worker.modelID == probe.modelID)
        #expect(worker.runtimeType == .sglang)
        #expect(worker.metadata == probe.metadata)
        #expect(registry.worker(id) == worker)
        // Only once.
        #expect(registry.completeRegistration(id, probe: probe) == nil)
    }

    @Test func completeRegistrationKeepsOperatorGivenFields() throws {
        let registry = makeRegistry()
        let id = registry.reserve(try spec("http://w:1", modelID: "given", runtime: .openai)).worker.id
        let worker = try #require(registry.completeRegistration(id, probe: probe))
        #expect(worker.modelID == "given")
        #expect(worker.runtimeType == .openai)
    }

    @Test func completeRegistrationOfARemovedWorkerIsDropped() throws {
        let registry = makeRegistry()
        let id = registry.reserve(try spec("http://w:1")).worker.id
        #expect(registry.remove(id) != nil)
        #expect(registry.completeRegistration(id, probe: probe) == nil)
        #expect(registry.worker(id) == nil)
        #expect(registry.count == 0)
        #expect(registry.completeRegistration(WorkerID.random(), probe: probe) == nil)
    }

    @Test func updateRegistration() throws {
        let registry = makeRegistry()
        let id = registry.reserve(try spec("http://w:1")).worker.id
        #expect(registry.updateRegistration(id, state: .processing, message: "probing /server_info"))
        let job = try #require(registry.worker(id)?.job)
        #expect(job.state == .processing)
        #expect(job.message == "probing /server_info")
        #expect(job.workerURL == "http://w:1")
        registry.completeRegistration(id, probe: probe)
        #expect(!registry.updateRegistration(id, state: .processing, message: "late"))
        #expect(registry.worker(id)?.job == nil)
        #expect(!registry.updateRegistration(WorkerID.random(), state: .pending, message: "x"))
    }

    @Test func failRegistrationThenReserveRetriesWithTheSameID() throws {
        let registry = makeRegistry()
        let created = registry.reserve(try spec("http://w:1")).worker
        #expect(registry.failRegistration(created.id, message: "connection refused after 30s"))
        let failed = try #require(registry.worker(created.id))
        #expect(failed.phase == .failed)
        #expect(!failed.isHealthy)
        #expect(!failed.isRoutable)
        #expect(failed.job?.state == .failed)
        #expect(failed.job?.message == "connection refused after 30s")
        #expect(registry.workers().map(\.id) == [created.id])
        // Failing twice is refused.
        #expect(!registry.failRegistration(created.id, message: "again"))

        let retried = registry.reserve(try spec("W:1/", modelID: "new-model"))
        guard case .retried(let worker) = retried else {
            Issue.record("expected .retried, got \(retried)")
            return
        }
        #expect(retried.needsJob)
        #expect(worker.id == created.id)
        #expect(worker.sequence == created.sequence)
        #expect(worker.phase == .registering)
        #expect(worker.modelID == "new-model")
        #expect(worker.job?.state == .pending)
        #expect(registry.count == 1)
        // The retried registration can complete.
        #expect(registry.completeRegistration(created.id, probe: probe)?.phase == .ready)
    }

    @Test func removeForgetsTheWorkerAndItsURL() throws {
        let registry = makeRegistry()
        let first = try addReady(registry, "http://w:1")
        let removed = try #require(registry.remove(first.id))
        #expect(removed.id == first.id)
        #expect(registry.worker(first.id) == nil)
        #expect(registry.worker(url: try WorkerURL("http://w:1")) == nil)
        #expect(registry.count == 0)
        #expect(registry.workers().isEmpty)
        #expect(registry.routableWorkers().isEmpty)
        #expect(!registry.hasRoutableWorker)
        #expect(registry.remove(first.id) == nil)

        let again = registry.reserve(try spec("HTTP://W:1"))
        guard case .created(let worker) = again else {
            Issue.record("expected .created, got \(again)")
            return
        }
        #expect(worker.id != first.id)
        #expect(worker.sequence > first.sequence)
    }

    @Test func operationsOnARemovedWorkerDoNothing() throws {
        let registry = makeRegistry()
        let worker = try addReady(registry, "http://w:1")
        registry.remove(worker.id).map { _ in () }
        #expect(registry.recordProbe(worker.id, succeeded: false).checks == nil)
        #expect(registry.recordConnectionRefused(worker.id) == nil)
        #expect(registry.update(worker.id, WorkerUpdate(priority: 1)) == nil)
        #expect(!registry.failRegistration(worker.id, message: "x"))
        #expect(registry.count == 0)
    }

    @Test func recordProbeTransitions() throws {
        let registry = makeRegistry()
        let worker = try addReady(registry, "http://w:1", healthCheck: HealthCheckConfig(failureThreshold: 2, successThreshold: 3))
        let id = worker.id
        #expect(registry.recordProbe(id, succeeded: true).checks == nil)
        #expect(registry.recordProbe(id, succeeded: false).checks == nil)
        #expect(registry.worker(id)?.isHealthy == true)
        #expect(registry.recordProbe(id, succeeded: false).checks == .becameUnhealthy)
        #expect(registry.worker(id)?.isHealthy == false)
        #expect(registry.routableWorkers().isEmpty)
        #expect(!registry.hasRoutableWorker)
        #expect(registry.recordProbe(id, succeeded: true).checks == nil)
        #expect(registry.recordProbe(id, succeeded: true).checks == nil)
        #expect(registry.worker(id)?.isHealthy == false)
        #expect(registry.recordProbe(id, succeeded: true).checks == .becameHealthy)
        #expect(registry.worker(id)?.isHealthy == true)
        #expect(registry.routableWorkers().map(\.id) == [id])

        #expect(registry.recordConnectionRefused(id) == .becameUnhealthy)
        #expect(registry.worker(id)?.isHealthy == false)
        #expect(registry.recordConnectionRefused(id) == nil)
    }

    @Test func probesOfWorkersThatAreNotReadyAreIgnored() throws {
        let registry = makeRegistry()
        let id = registry.reserve(try spec("http://w:1", healthCheck: HealthCheckConfig(failureThreshold: 1))).worker.id
        #expect(registry.recordProbe(id, succeeded: true).checks == nil)
        #expect(registry.recordProbe(id, succeeded: false).checks == nil)
        #expect(registry.recordConnectionRefused(id) == nil)
        #expect(registry.worker(id)?.phase == .registering)
        #expect(registry.recordProbe(WorkerID.random(), succeeded: false) == .none)
    }

    @Test func updateAppliesFieldsAndLabels() throws {
        let registry = makeRegistry()
        var initial = try spec("http://w:1")
        initial.labels = ["zone": "a", "gpu": "h100", "keep": "yes"]
        initial.apiKey = "secret"
        let id = registry.reserve(initial).worker.id
        registry.completeRegistration(id, probe: probe)

        let update = WorkerUpdate(
            priority: 90, cost: 0.25, labelChanges: ["zone": "b", "gpu": nil, "new": "1"],
            apiKey: .some("rotated"), healthCheck: HealthCheckChange(interval: .seconds(5), failureThreshold: 7, endpoint: "/ready")
        )
        #expect(!update.isEmpty)
        let updated = try #require(registry.update(id, update))
        #expect(updated.spec.priority == 90)
        #expect(updated.spec.cost == 0.25)
        #expect(updated.spec.labels == ["zone": "b", "keep": "yes", "new": "1"])
        #expect(updated.spec.apiKey == "rotated")
        #expect(updated.spec.healthCheck.interval == .seconds(5))
        #expect(updated.spec.healthCheck.failureThreshold == 7)
        #expect(updated.spec.healthCheck.endpoint == "/ready")
        #expect(updated.spec.healthCheck.timeout == HealthCheckConfig().timeout)
        #expect(updated.spec.healthCheck.successThreshold == HealthCheckConfig().successThreshold)
        #expect(updated.spec.url == initial.url)
        #expect(registry.worker(id) == updated)

        // An empty update changes nothing; .some(nil) removes the key.
        #expect(WorkerUpdate().isEmpty)
        #expect(registry.update(id, WorkerUpdate()) == updated)
        let noKey = try #require(registry.update(id, WorkerUpdate(apiKey: .some(nil))))
        #expect(noKey.spec.apiKey == nil)
        #expect(noKey.spec.priority == 90)
        #expect(registry.update(WorkerID.random(), update) == nil)
    }

    @Test func updatedThresholdsApplyToLaterProbes() throws {
        let registry = makeRegistry()
        let id = try addReady(registry, "http://w:1", healthCheck: HealthCheckConfig(failureThreshold: 5)).id
        _ = registry.update(id, WorkerUpdate(healthCheck: HealthCheckChange(failureThreshold: 1)))
        #expect(registry.recordProbe(id, succeeded: false).checks == .becameUnhealthy)
    }

    @Test func disablingChecksMakesAnUnhealthyReadyWorkerHealthy() throws {
        let registry = makeRegistry()
        let id = try addReady(registry, "http://w:1").id
        #expect(registry.recordConnectionRefused(id) == .becameUnhealthy)
        let updated = try #require(registry.update(id, WorkerUpdate(healthCheck: HealthCheckChange(disabled: true))))
        #expect(updated.isHealthy)
        #expect(updated.isRoutable)
        #expect(registry.routableWorkers().map(\.id) == [id])
    }

    @Test func routableWorkersAreOnlyReadyAndHealthy() throws {
        let registry = makeRegistry()
        let registering = registry.reserve(try spec("http://registering:1")).worker.id
        let healthy1 = try addReady(registry, "http://healthy1:1").id
        let unhealthy = try addReady(registry, "http://unhealthy:1").id
        let failed = registry.reserve(try spec("http://failed:1")).worker.id
        let healthy2 = try addReady(registry, "http://healthy2:1").id
        registry.recordConnectionRefused(unhealthy)
        registry.failRegistration(failed, message: "gave up")

        #expect(registry.routableWorkers().map(\.id) == [healthy1, healthy2])
        #expect(registry.hasRoutableWorker)
        #expect(registry.workers().map(\.id) == [registering, healthy1, unhealthy, failed, healthy2])
        #expect(registry.workers().filter(\.isRoutable).map(\.id) == [healthy1, healthy2])

        registry.recordConnectionRefused(healthy1)
        registry.remove(healthy2).map { _ in () }
        #expect(registry.routableWorkers().isEmpty)
        #expect(!registry.hasRoutableWorker)
    }

    @Test("A worker whose breaker is open is never shown healthy; a passing probe half-opens it and it is again")
    func openBreakerIsNotHealthy() throws {
        let registry = WorkerRegistry(wallClock: { 1_700_000_000 }, breaker: .init(failureThreshold: 1, openDuration: .seconds(600)))
        let worker = try addReady(registry, "http://w:1")
        #expect(worker.isHealthy)
        #expect(worker.handle.recordFailure(at: .now) == .opened)
        let listed = try #require(registry.worker(worker.id))
        #expect(!listed.isHealthy && !listed.isRoutable)
        #expect(listed.handle.checksPass, "the checks still pass: only the breaker is open")
        #expect(!registry.hasRoutableWorker)
        // Still in the routing snapshot (the breaker is asked per request) but refused there.
        #expect(registry.routingSnapshot.candidatesByModel[probe.modelID]?.map(\.id) == [worker.id])
        #expect(registry.recordProbe(worker.id, succeeded: true) == WorkerHealth.Change(breaker: .halfOpened))
        #expect(registry.worker(worker.id)?.isHealthy == true)
        #expect(worker.handle.breakerState(at: .now) == .halfOpen)
    }

    @Test func emptyRegistry() {
        let registry = makeRegistry()
        #expect(registry.count == 0)
        #expect(registry.workers().isEmpty)
        #expect(registry.routableWorkers().isEmpty)
        #expect(!registry.hasRoutableWorker)
        #expect(registry.worker(WorkerID.random()) == nil)
    }
}

@Suite("WorkerUpdate and HealthCheckChange")
struct WorkerUpdateTests {
    @Test func healthCheckChangeAppliesOnlyGivenFields() {
        let base = HealthCheckConfig()
        #expect(HealthCheckChange().isEmpty)
        #expect(HealthCheckChange().applied(to: base) == base)
        let changed = HealthCheckChange(timeout: .seconds(1), successThreshold: 9, disabled: true).applied(to: base)
        #expect(changed.timeout == .seconds(1))
        #expect(changed.successThreshold == 9)
        #expect(changed.disabled)
        #expect(changed.interval == base.interval)
        #expect(changed.failureThreshold == base.failureThreshold)
        #expect(changed.endpoint == base.endpoint)
        #expect(changed.checkPolicy == WorkerHealth.CheckPolicy(failureThreshold: base.failureThreshold, successThreshold: 9, checksDisabled: true))
    }

    @Test func apiKeyTriState() throws {
        var s = WorkerSpec(url: try WorkerURL("http://w:1"), apiKey: "k")
        #expect(WorkerUpdate(apiKey: nil).applied(to: s).apiKey == "k")
        #expect(WorkerUpdate(apiKey: .some(nil)).applied(to: s).apiKey == nil)
        #expect(WorkerUpdate(apiKey: .some("n")).applied(to: s).apiKey == "n")
        s.apiKey = nil
        #expect(WorkerUpdate(apiKey: .some("n")).applied(to: s).apiKey == "n")
    }
}
