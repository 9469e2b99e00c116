import Synchronization

/// Requests with the same key go to the same worker while it is available.
///
/// Each worker of a model owns `virtualNodes` points on a 64-bit ring (hashes of
/// its URL); a key goes to the first point at or after its hash whose worker is
/// eligible. Removing a worker moves only the keys that were on it; a worker that
/// is unavailable for a while is skipped, and its keys come back when it does.
/// Hashes are FNV-1a with a 64-bit finaliser, the same in every process, so
/// several gateways agree. Requests without a key are spread at random.
public final class ConsistentHashPolicy: RoutingPolicy {
    public let name = PolicyName.consistentHash.rawValue
    public static let virtualNodes = 150

    private struct Ring {
        /// The snapshot the ring was built for (held, so its identity cannot be reused).
        let snapshot: RoutingSnapshot
        /// Sorted by point; `index`: the worker's place in the snapshot's list for the model.
        let points: [(point: UInt64, worker: WorkerID, index: Int)]
    }

    private let rings = Mutex<[String: Ring]>([:])

    public init() {}

    /// A worker that owns the key and is available is also the filtered list's pick
    /// (the clockwise walk stops at it either way).
    public var picksIndependently: Bool { true }

    public func select(_ eligible: [RouteCandidate], all: [RouteCandidate], model: String, request: RoutingRequest, snapshot: RoutingSnapshot) -> RouteCandidate {
        guard let key = request.key, !key.isEmpty, eligible.count > 1 else {
            if eligible.count == 1 { return eligible[0] }
            var generator = RoutingRandom()
            return eligible[CostWeight.randomIndex(eligible, equalCosts: CostWeight.allEqual(eligible, all: all, model: model, snapshot: snapshot), using: &generator)]
        }
        let ring = self.ring(for: model, all: all, snapshot: snapshot)
        let hash = Self.hash(Array(key.utf8))
        let points = ring.points
        // First point >= hash (binary search), then clockwise to an eligible worker.
        var low = 0
        var high = points.count
        while low < high {
            let mid = (low + high) / 2
            if points[mid].point < hash { low = mid + 1 } else { high = mid }
        }
        if eligible.count == all.count {
            // Every worker is eligible: the first point's owner it is.
            return all[points[low % points.count].index]
        }
        let byID = Dictionary(eligible.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for step in 0..<points.count {
            if let candidate = byID[points[(low + step) % points.count].worker] { return candidate }
        }
        return eligible[0]
    }

    /// The worker `key` maps to among `candidates` (for tests and diagnostics).
    public func owner(of key: String, among candidates: [RouteCandidate], model: String = "") -> WorkerID? {
        guard !candidates.isEmpty else { return nil }
        let snapshot = RoutingSnapshot(version: 0, candidatesByModel: [model: candidates], knownModels: [model])
        return select(candidates, all: candidates, model: model, request: RoutingRequest(key: key), snapshot: snapshot).id
    }

    /// `all` is `snapshot`'s list for `model`; the ring is rebuilt when the snapshot changes.
    private func ring(for model: String, all: [RouteCandidate], snapshot: RoutingSnapshot) -> Ring {
        if let ring = rings.withLock({ $0[model] }), ring.snapshot === snapshot { return ring }
        var points: [(point: UInt64, worker: WorkerID, index: Int)] = []
        points.reserveCapacity(all.count * Self.virtualNodes)
        for (index, candidate) in all.enumerated() {
            let base = Array(candidate.url.description.utf8)
            for node in 0..<Self.virtualNodes {
                points.append((Self.hash(base + Array("#\(node)".utf8)), candidate.id, index))
            }
        }
        points.sort { $0.point < $1.point }
        let ring = Ring(snapshot: snapshot, points: points)
        rings.withLock { $0[model] = ring }
        return ring
    }

    /// FNV-1a 64 followed by the SplitMix64 finaliser (FNV alone clusters short keys).
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        return RoutingRandom.mix(h)
    }
}
