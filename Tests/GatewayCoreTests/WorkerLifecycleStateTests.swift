import Synchronization
import Testing

@testable import GatewayCore

@Suite("Drain job")
struct DrainJobTests {
    let start = ContinuousClock.now

    @Test("Nothing in flight: removed at once")
    func idleIsRemovedAtOnce() {
        var job = DrainJob(startedAt: start, timeout: .seconds(300))
        #expect(job.start(load: 0, at: start) == .remove)
        #expect(job.isDone)
        #expect(job.loadReachedZero(load: 0, at: start) == .none)
        #expect(job.deadlinePassed(load: 3, at: start + .seconds(400)) == .none)
    }

    @Test("In flight: waits for the load to reach 0, up to the deadline")
    func waitsForTheLoad() {
        var job = DrainJob(startedAt: start, timeout: .seconds(300))
        #expect(job.start(load: 2, at: start) == .wait(until: start + .seconds(300)))
        // Woken, but a request picked just before the drain began has started: wait again.
        #expect(job.loadReachedZero(load: 1, at: start + .seconds(10)) == .wait(until: start + .seconds(300)))
        #expect(!job.isDone)
        #expect(job.loadReachedZero(load: 0, at: start + .seconds(20)) == .remove)
        #expect(job.isDone)
    }

    @Test("At the deadline the requests still running are cut, then the worker is removed")
    func deadlineCuts() {
        var job = DrainJob(startedAt: start, timeout: .seconds(5))
        #expect(job.start(load: 4, at: start) == .wait(until: start + .seconds(5)))
        #expect(job.deadlinePassed(load: 3, at: start + .seconds(5)) == .cutAndRemove(inFlight: 3))
        #expect(job.isDone)
        #expect(job.loadReachedZero(load: 0, at: start + .seconds(6)) == .none)
    }

    @Test("The deadline passing when the last request just ended removes without a cut")
    func deadlineWithNothingLeft() {
        var job = DrainJob(startedAt: start, timeout: .seconds(5))
        _ = job.start(load: 1, at: start)
        #expect(job.deadlinePassed(load: 0, at: start + .seconds(5)) == .remove)
    }

    @Test("A load seen after the deadline (a slow wake-up) cuts at once; a zero timeout cuts at once")
    func lateObservation() {
        var job = DrainJob(startedAt: start, timeout: .seconds(5))
        _ = job.start(load: 2, at: start)
        #expect(job.loadReachedZero(load: 1, at: start + .seconds(9)) == .cutAndRemove(inFlight: 1))
        var immediate = DrainJob(startedAt: start, timeout: .zero)
        #expect(immediate.start(load: 1, at: start) == .cutAndRemove(inFlight: 1))
    }

    @Test("Cancelled (removed with force meanwhile): nothing more to do")
    func cancelled() {
        var job = DrainJob(startedAt: start, timeout: .seconds(5))
        _ = job.start(load: 1, at: start)
        #expect(job.cancelled() == .none)
        #expect(job.deadlinePassed(load: 1, at: start + .seconds(6)) == .none)
    }
}

/// A clock the test moves by hand.
private final class ManualClock: Sendable {
    private let offset = Mutex<Duration>(.zero)
    let origin = ContinuousClock.now
    var now: ContinuousClock.Instant { origin + offset.withLock { $0 } }
    func advance(_ by: Duration) { offset.withLock { $0 += by } }
}

@Suite("Worker status and drain in the registry")
struct WorkerStatusTests {
    private let probe = WorkerProbeResult(modelID: "m", runtimeType: .openai)

    private func ready(_ registry: WorkerRegistry, _ url: String, type: WorkerType = .regular, health: HealthCheckConfig = .init()) throws -> Worker {
        let id = registry.reserve(WorkerSpec(url: try WorkerURL(url), workerType: type, healthCheck: health)).worker.id
        return try #require(registry.completeRegistration(id, probe: probe))
    }

    @Test("status follows the phase and the checks: pending, ready, not_ready, failed, draining")
    func statuses() throws {
        let registry = WorkerRegistry(wallClock: { 1_700_000_000 })
        let pending = registry.reserve(WorkerSpec(url: try WorkerURL("http://p:1"))).worker
        #expect(pending.status == .pending)
        let failed = registry.reserve(WorkerSpec(url: try WorkerURL("http://f:1"))).worker
        registry.failRegistration(failed.id, message: "gave up")
        #expect(registry.worker(failed.id)?.status == .failed)
        let worker = try ready(registry, "http://r:1")
        #expect(worker.status == .ready && worker.isHealthy)
        registry.recordConnectionRefused(worker.id)
        #expect(registry.worker(worker.id)?.status == .notReady)
        #expect(registry.worker(worker.id)?.isHealthy == false)
        _ = registry.recordProbe(worker.id, succeeded: true)
        _ = registry.recordProbe(worker.id, succeeded: true)
        #expect(registry.worker(worker.id)?.status == .ready)
        let deletion = registry.delete(worker.id, force: false, drainDeadline: 1_700_000_300)
        #expect(deletion == .draining(try #require(registry.worker(worker.id))))
        #expect(registry.worker(worker.id)?.status == .draining)
        #expect(registry.worker(worker.id)?.isHealthy == false)
    }

    @Test("DELETE: ready drains; pending and failed go at once; draining twice is one drain; force removes at once")
    func deletions() throws {
        let registry = WorkerRegistry(wallClock: { 1_700_000_000 })
        let pending = registry.reserve(WorkerSpec(url: try WorkerURL("http://p:1"))).worker
        guard case .removed = registry.delete(pending.id, force: false, drainDeadline: 0) else { Issue.record("pending not removed"); return }
        let failed = registry.reserve(WorkerSpec(url: try WorkerURL("http://f:1"))).worker
        registry.failRegistration(failed.id, message: "x")
        guard case .removed = registry.delete(failed.id, force: false, drainDeadline: 0) else { Issue.record("failed not removed"); return }

        let a = try ready(registry, "http://a:1")
        guard case .draining(let draining) = registry.delete(a.id, force: false, drainDeadline: 1_700_000_300) else { Issue.record("not draining"); return }
        #expect(draining.job?.jobType == .removeWorker && draining.job?.state == .draining)
        #expect(draining.job?.message.contains("2023-11-14T22:18:20Z") == true, "\(draining.job?.message ?? "")")
        guard case .alreadyDraining = registry.delete(a.id, force: false, drainDeadline: 0) else { Issue.record("second delete"); return }
        guard case .removed = registry.delete(a.id, force: true, drainDeadline: 0) else { Issue.record("force on draining"); return }
        #expect(registry.worker(a.id) == nil)

        let b = try ready(registry, "http://b:1")
        guard case .removed = registry.delete(b.id, force: true, drainDeadline: 0) else { Issue.record("force on ready"); return }
        #expect(registry.delete(b.id, force: false, drainDeadline: 0) == nil)
        #expect(registry.count == 0)
    }

    @Test("A draining worker leaves routing at once, stays listed, and frees its URL for a new worker")
    func drainingLeavesRoutingAndFreesItsURL() throws {
        let registry = WorkerRegistry(wallClock: { 0 })
        let a = try ready(registry, "http://a:1")
        let b = try ready(registry, "http://b:1")
        #expect(registry.routingSnapshot.candidatesByModel["m"]?.map(\.id) == [a.id, b.id])
        _ = registry.delete(a.id, force: false, drainDeadline: 0)
        #expect(registry.routingSnapshot.candidatesByModel["m"]?.map(\.id) == [b.id])
        #expect(registry.workers().map(\.id) == [a.id, b.id])
        #expect(registry.worker(url: try WorkerURL("http://a:1")) == nil)
        // The same URL again: a new worker beside the draining one.
        guard case .created(let again) = registry.reserve(WorkerSpec(url: try WorkerURL("http://a:1"))) else { Issue.record("not created"); return }
        #expect(again.id != a.id)
        // The drain's end removes the old worker only; the URL stays the new one's.
        #expect(registry.finishDrain(a.id)?.id == a.id)
        #expect(registry.worker(url: try WorkerURL("http://a:1"))?.id == again.id)
        #expect(registry.finishDrain(again.id) == nil, "only a draining worker")
        #expect(registry.workers().map(\.id) == [b.id, again.id])
    }

    @Test("Workers unhealthy past their limit, by an injected clock; healing resets the time")
    func unhealthyPastTheLimit() throws {
        let clock = ManualClock()
        let registry = WorkerRegistry(wallClock: { 0 }, monotonicClock: { clock.now })
        let sick = try ready(registry, "http://sick:1")
        let fine = try ready(registry, "http://fine:1")
        let failed = registry.reserve(WorkerSpec(url: try WorkerURL("http://failed:1"))).worker
        registry.failRegistration(failed.id, message: "gave up")
        registry.recordConnectionRefused(sick.id)
        let limit: (Worker) -> Duration = { _ in .seconds(60) }
        #expect(registry.unhealthyWorkers(for: limit).isEmpty)
        clock.advance(.seconds(59))
        #expect(registry.unhealthyWorkers(for: limit).isEmpty)
        clock.advance(.seconds(1))
        #expect(registry.unhealthyWorkers(for: limit).map(\.id) == [sick.id, failed.id])
        // Healed: off the list; sick again: its time starts over.
        _ = registry.recordProbe(sick.id, succeeded: true)
        _ = registry.recordProbe(sick.id, succeeded: true)
        #expect(registry.unhealthyWorkers(for: limit).map(\.id) == [failed.id])
        registry.recordConnectionRefused(sick.id)
        clock.advance(.seconds(30))
        #expect(registry.unhealthyWorkers(for: limit).map(\.id) == [failed.id])
        #expect(registry.worker(fine.id)?.status == .ready)
    }

    @Test("Filters match model, status and type together")
    func filters() throws {
        let registry = WorkerRegistry(wallClock: { 0 })
        let a = try ready(registry, "http://a:1")
        let p = try ready(registry, "http://p:1", type: .prefill)
        let pending = registry.reserve(WorkerSpec(url: try WorkerURL("http://x:1"), modelID: "other")).worker
        registry.recordConnectionRefused(a.id)
        func ids(_ filter: WorkerFilter) -> [WorkerID] { registry.workers(where: filter.matches).map(\.id) }
        #expect(ids(WorkerFilter()) == [a.id, p.id, pending.id])
        #expect(ids(WorkerFilter(model: "m")) == [a.id, p.id])
        #expect(ids(WorkerFilter(model: "other")) == [pending.id])
        #expect(ids(WorkerFilter(status: .notReady)) == [a.id])
        #expect(ids(WorkerFilter(status: .ready, workerType: .prefill)) == [p.id])
        #expect(ids(WorkerFilter(model: "m", status: .pending)).isEmpty)
    }
}

@Suite("Worker handle drain signals")
struct WorkerHandleSignalTests {
    @Test("waitUntilIdle returns at once when idle, and when the last request ends")
    func waitsForZero() async {
        let handle = WorkerHandle(id: .random())
        await handle.waitUntilIdle()
        handle.beginRequest()
        handle.beginRequest()
        let waiter = Task { await handle.waitUntilIdle() }
        handle.endRequest()
        handle.endRequest()
        await waiter.value
        #expect(handle.load == 0)
    }

    @Test("waitUntilIdle returns when its task is cancelled")
    func cancellation() async {
        let handle = WorkerHandle(id: .random())
        handle.beginRequest()
        let waiter = Task { await handle.waitUntilIdle() }
        waiter.cancel()
        await waiter.value
        #expect(handle.load == 1)
    }

    @Test("The cut signal reaches every observer once; later observers at once; cancelled ones never")
    func cutSignal() {
        let handle = WorkerHandle(id: .random())
        let seen = Mutex<[String]>([])
        let first = handle.onCut { _ in seen.withLock { $0.append("first") } }
        let gone = handle.onCut { _ in seen.withLock { $0.append("gone") } }
        gone.cancel()
        #expect(handle.cut == nil)
        handle.cutRequests(.drainTimedOut(after: .seconds(5)))
        handle.cutRequests(.drainTimedOut(after: .seconds(9)))
        #expect(seen.withLock { $0 } == ["first"])
        #expect(handle.cut == .drainTimedOut(after: .seconds(5)))
        let late = Mutex<WorkerCut?>(nil)
        let lateObservation = handle.onCut { cut in late.withLock { $0 = cut } }
        #expect(late.withLock { $0 }?.code == "worker_drain_timeout")
        #expect(late.withLock { $0 }?.message.contains("5s") == true)
        first.cancel()
        lateObservation.cancel()
    }
}
