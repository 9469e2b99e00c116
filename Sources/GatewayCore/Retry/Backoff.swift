/// Exponential backoff with jitter: `initial × multiplier^attempt`, capped at
/// `maximum`, then spread by ±`jitter` (a fraction) so retries from many
/// clients do not line up.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// 0 … 1: the delay is scaled by a random factor in [1 − jitter, 1 + jitter].
    public var jitter: Double

    public init(initial: Duration, maximum: Duration, multiplier: Double = 2, jitter: Double = 0.1) {
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.multiplier = max(multiplier, 1)
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before retry number `attempt` (0 is the first retry), for a random
    /// draw `unit` in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Duration {
        guard initial > .zero else { return .zero }
        // Past ~1,100 doublings every delay is the cap anyway; clamping keeps pow finite.
        let base = initial.seconds * pow(multiplier, Double(min(max(attempt, 0), 2048)))
        let capped = min(base, maximum.seconds)
        let spread = capped * (1 + jitter * (2 * min(max(unit, 0), 1) - 1))
        return .seconds(min(max(spread, 0), maximum.seconds))
    }

    /// The delay before retry number `attempt`, drawing the jitter from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        delay(attempt: attempt, unit: Double.random(in: 0..<1, using: &generator))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

/// `pow` without importing a C library into Core.
@inline(__always)
func pow(_ base: Double, _ exponent: Double) -> Double {
    guard exponent > 0 else { return 1 }
    var result = 1.0
    var remaining = Int(exponent)
    var factor = base
    while remaining > 0 {
        if remaining & 1 == 1 { result *= factor }
        factor *= factor
        remaining >>= 1
        if result.isInfinite { return result }
    }
    return result
}
