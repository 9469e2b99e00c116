/// A seeded SplitMix64 generator: the same seed gives the same draws on every machine, so
/// every arm of a benchmark sends the same requests at the same offsets.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose draws depend only on `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform draw in `0..<1`.
    public mutating func unit() -> Double {
        Double(next() >> 11) / Double(UInt64(1) << 53)
    }

    /// An exponential draw of mean `1 / rate` (the gap between Poisson arrivals).
    public mutating func exponential(rate: Double) -> Double {
        precondition(rate > 0)
        return -Foundation_log(1 - unit()) / rate
    }
}

/// Draws ranks `0..<count` with probability proportional to `1 / (rank + 1)^alpha`
/// (Zipf); `alpha` 0 is uniform.
public struct ZipfSampler: Sendable {
    private let cumulative: [Double]

    /// A sampler over `count` ranks (at least one).
    public init(count: Int, alpha: Double) {
        precondition(count > 0)
        var total = 0.0
        var cumulative: [Double] = []
        cumulative.reserveCapacity(count)
        for rank in 0..<count {
            total += 1 / Foundation_pow(Double(rank + 1), alpha)
            cumulative.append(total)
        }
        self.cumulative = cumulative.map { $0 / total }
    }

    /// The probability of `rank`.
    public func probability(_ rank: Int) -> Double {
        rank == 0 ? cumulative[0] : cumulative[rank] - cumulative[rank - 1]
    }

    /// One draw.
    public func sample(_ random: inout SeededRandom) -> Int {
        let u = random.unit()
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulative[mid] > u { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always) func Foundation_log(_ x: Double) -> Double { log(x) }
@inline(__always) func Foundation_pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
