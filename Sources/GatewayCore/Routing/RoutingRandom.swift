import Synchronization

/// Random numbers for spreading load: SplitMix64 over one shared atomic counter,
/// seeded once from the system generator.
///
/// Not for secrets. The system generator costs a `getrandom` call per number (about
/// 0.5 µs); a routing pick needs one or two numbers per request and no unpredictability.
public struct RoutingRandom: RandomNumberGenerator, Sendable {
    private static let state: Atomic<UInt64> = {
        var system = SystemRandomNumberGenerator()
        return Atomic(system.next())
    }()

    /// A stream of its own instead of the shared one (nil: shared).
    private var local: UInt64?

    /// Draws from the process-wide stream.
    public init() {}

    /// A reproducible stream of its own (tests, replayable decisions).
    public init(seed: UInt64) {
        local = seed
    }

    public mutating func next() -> UInt64 {
        if let state = local {
            let advanced = state &+ 0x9E37_79B9_7F4A_7C15
            local = advanced
            return Self.mix(advanced)
        }
        return Self.mix(Self.state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
    }

    /// SplitMix64's finalizer: every input bit reaches every output bit.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
