import Testing

@testable import GatewayCore

@Suite("Store reconciler (shared store vs registry)")
struct StoreReconcilerTests {
    let t0 = ContinuousClock.now

    func row(_ url: String, _ sequence: UInt64, id: WorkerID = .random(), priority: UInt32 = 50) throws -> StoredWorker {
        StoredWorker(id: id, spec: WorkerSpec(url: try WorkerURL(url), priority: priority), sequence: sequence)
    }

    func local(_ row: StoredWorker, phase: WorkerPhase = .ready, addedAt: ContinuousClock.Instant? = nil) -> StoreReconciler.Local {
        .init(id: row.id, spec: row.spec, phase: phase, addedAt: addedAt ?? t0)
    }

    @Test("Equal sides: nothing to do")
    func equal() throws {
        let a = try row("http://a:1", 1), b = try row("http://b:1", 2)
        #expect(StoreReconciler.diff(store: [a, b], registry: [local(a), local(b)], readAt: t0 + .seconds(1)).isEmpty)
    }

    @Test("Rows the registry lacks are added in store order; changed settings are updated")
    func addsAndUpdates() throws {
        let a = try row("http://a:1", 1), b = try row("http://b:1", 3), c = try row("http://c:1", 2)
        var changed = a
        changed.spec.priority = 90
        let changes = StoreReconciler.diff(store: [b, changed, c], registry: [local(a)], readAt: t0 + .seconds(1))
        #expect(changes == [.update(a.id, changed.spec), .add(c), .add(b)])
    }

    @Test("A worker the store no longer has is removed (no ghost), unless added after the read or already draining")
    func removals() throws {
        let ghost = try row("http://ghost:1", 1), fresh = try row("http://fresh:1", 2), draining = try row("http://d:1", 3)
        let changes = StoreReconciler.diff(
            store: [],
            registry: [local(ghost), local(fresh, addedAt: t0 + .seconds(2)), local(draining, phase: .draining)],
            readAt: t0 + .seconds(1)
        )
        #expect(changes == [.remove(ghost.id)])
    }

    @Test("The same URL under another id: the registry's worker goes first, then the store's comes")
    func sameURLOtherID() throws {
        let mine = try row("http://a:1", 1)
        let theirs = try row("http://a:1", 2)
        #expect(StoreReconciler.diff(store: [theirs], registry: [local(mine)], readAt: t0 + .seconds(1)) == [.remove(mine.id), .add(theirs)])
        // A draining worker of that URL stays beside the new one.
        #expect(StoreReconciler.diff(store: [theirs], registry: [local(mine, phase: .draining)], readAt: t0 + .seconds(1)) == [.add(theirs)])
    }

    @Test("Store faults: unreachable with backoff, routing state untouched; the next good read reconciles and resets")
    func faults() throws {
        var reconciler = StoreReconciler(interval: .seconds(5), backoff: Backoff(initial: .seconds(1), maximum: .seconds(4), multiplier: 2, jitter: 0))
        #expect(reconciler.isReachable && reconciler.lastSuccess == nil)
        #expect(reconciler.failed(now: t0, unit: 0.5) == .retry(next: t0 + .seconds(1)))
        #expect(reconciler.failed(now: t0, unit: 0.5) == .retry(next: t0 + .seconds(2)))
        #expect(reconciler.failed(now: t0, unit: 0.5) == .retry(next: t0 + .seconds(4)))
        #expect(reconciler.failed(now: t0, unit: 0.5) == .retry(next: t0 + .seconds(4)))
        #expect(!reconciler.isReachable && reconciler.consecutiveFailures == 4)
        let a = try row("http://a:1", 1)
        #expect(reconciler.read([a], readAt: t0, local: [], now: t0 + .seconds(1)) == .apply([.add(a)], next: t0 + .seconds(6)))
        #expect(reconciler.isReachable && reconciler.consecutiveFailures == 0 && reconciler.lastSuccess == t0 + .seconds(1))
    }

    @Test("Applying the diff converges: a second pass finds nothing (randomised sides)")
    func converges() throws {
        var seed: UInt64 = 0x1234_5678
        func next() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 33
        }
        for round in 0..<50 {
            let urls = (0..<20).map { "http://w\($0):1" }
            var store: [StoredWorker] = []
            var registry: [StoreReconciler.Local] = []
            for (index, url) in urls.enumerated() {
                let shared = try row(url, UInt64(index), priority: UInt32(next() % 3))
                switch next() % 5 {
                case 0: store.append(shared)
                case 1: registry.append(local(shared))
                case 2:
                    store.append(shared)
                    var stale = local(shared)
                    stale.spec.priority += 10
                    registry.append(stale)
                case 3:
                    store.append(shared)
                    registry.append(local(try row(url, UInt64(index))))
                default:
                    store.append(shared)
                    registry.append(local(shared))
                }
            }
            // Apply as the driver does.
            for change in StoreReconciler.diff(store: store, registry: registry, readAt: t0 + .seconds(1)) {
                switch change {
                case .remove(let id): registry.removeAll { $0.id == id }
                case .update(let id, let spec): registry = registry.map { $0.id == id ? .init(id: id, spec: spec, phase: $0.phase, addedAt: $0.addedAt) : $0 }
                case .add(let row): registry.append(local(row))
                }
            }
            #expect(StoreReconciler.diff(store: store, registry: registry, readAt: t0 + .seconds(1)).isEmpty, "round \(round)")
            #expect(Set(registry.map(\.id)) == Set(store.map(\.id)), "round \(round)")
        }
    }
}
