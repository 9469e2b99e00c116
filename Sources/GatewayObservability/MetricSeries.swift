import Synchronization

/// One counter series: a monotonically increasing integer (requests served, errors).
///
/// Obtained from `CounterFamily.labels(...)`. Keep the instance when the label
/// values are fixed (e.g. per route) so the request path is a single atomic add.
public final class Counter: Sendable {
    private let storage = Atomic<Int>(0)

    public init() {}

    /// Adds `amount` (never negative: a counter only goes up).
    @inline(__always)
    public func increment(by amount: Int = 1) {
        precondition(amount >= 0, "a counter cannot decrease (increment by \(amount))")
        storage.wrappingAdd(amount, ordering: .relaxed)
    }

    /// The current total.
    public var value: Int { storage.load(ordering: .relaxed) }
}

/// One gauge series: a value that goes up and down (queue depth, workers ready).
///
/// The `Double` is kept as its bit pattern in an atomic word; `add` and `sub`
/// are compare-and-swap loops, so concurrent changes are never lost.
public final class Gauge: Sendable {
    private let bits = Atomic<UInt64>(0.0.bitPattern)

    public init() {}

    /// Replaces the value.
    @inline(__always)
    public func set(_ value: Double) {
        bits.store(value.bitPattern, ordering: .relaxed)
    }

    /// Adds `delta` (default 1).
    @inline(__always)
    public func add(_ delta: Double = 1) {
        bits.addDouble(delta)
    }

    /// Subtracts `delta` (default 1).
    @inline(__always)
    public func sub(_ delta: Double = 1) {
        bits.addDouble(-delta)
    }

    /// The current value.
    public var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
}

/// One histogram series: observations counted into buckets, plus their sum.
///
/// Each bucket counts only the observations that fall into it (one atomic add per
/// observation); the cumulative `le` counts, and `_count` as their total, are
/// computed at scrape time, so `le="+Inf"` and `_count` always agree.
public final class Histogram: Sendable {
    /// The finite upper bounds, ascending; `+Inf` is implied after the last.
    public let upperBounds: [Double]
    /// `upperBounds.count + 1` counts; the last one is the `+Inf` overflow bucket.
    private let bucketCounts: [AtomicCount]
    private let sumBits = Atomic<UInt64>(0.0.bitPattern)

    public init(upperBounds: [Double]) {
        self.upperBounds = upperBounds
        self.bucketCounts = (0...upperBounds.count).map { _ in AtomicCount() }
    }

    /// Records one observation. A bucket's bound is inclusive (`value <= le`).
    /// NaN is ignored: it would poison `_sum` for the life of the process.
    public func observe(_ value: Double) {
        guard !value.isNaN else { return }
        var low = 0
        var high = upperBounds.count
        while low < high {
            let middle = (low + high) / 2
            if value <= upperBounds[middle] { high = middle } else { low = middle + 1 }
        }
        bucketCounts[low].value.wrappingAdd(1, ordering: .relaxed)
        sumBits.addDouble(value)
    }

    /// Records a duration in seconds (the unit Prometheus expects for time).
    @inline(__always)
    public func observe(seconds: Double) {
        observe(seconds)
    }

    /// Records a duration, e.g. `ContinuousClock.now - start`.
    @inline(__always)
    public func observe(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        observe(Double(seconds) + Double(attoseconds) * 1e-18)
    }

    /// How many observations were recorded.
    public var count: Int { bucketCounts.reduce(0) { $0 + $1.value.load(ordering: .relaxed) } }

    /// The sum of all observations.
    public var sum: Double { Double(bitPattern: sumBits.load(ordering: .relaxed)) }

    /// Cumulative counts, one per bound and a last one for `+Inf` (the total), and the sum.
    public func snapshot() -> (cumulative: [Int], sum: Double) {
        var running = 0
        var cumulative: [Int] = []
        cumulative.reserveCapacity(bucketCounts.count)
        for bucket in bucketCounts {
            running += bucket.value.load(ordering: .relaxed)
            cumulative.append(running)
        }
        return (cumulative, sum)
    }
}

/// An atomic integer in its own object, so a histogram can hold an array of them
/// (`Atomic` itself cannot be copied into an array).
final class AtomicCount: Sendable {
    let value = Atomic<Int>(0)
}

extension Atomic where Value == UInt64 {
    /// Adds to the `Double` whose bit pattern this word holds, by compare-and-swap.
    @inline(__always)
    func addDouble(_ delta: Double) {
        var current = load(ordering: .relaxed)
        while true {
            let next = (Double(bitPattern: current) + delta).bitPattern
            let (exchanged, original) = weakCompareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}
