/// A worker's identity: a UUID, chosen by the gateway when the worker is first registered.
///
/// Parsing accepts any letter case and the braced (`{…}`) and URN (`urn:uuid:…`)
/// spellings, so every form a client may copy finds the same worker; printing
/// is always the canonical lowercase 8-4-4-4-12 form.
public struct WorkerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 128 bits, most significant first.
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A new random (version 4, RFC 9562 variant) id.
    public static func random() -> WorkerID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> WorkerID {
        let high = (generator.next() as UInt64) & ~0xF000 | 0x4000
        let low = (generator.next() as UInt64) & ~(0xC000_0000_0000_0000 as UInt64) | 0x8000_0000_0000_0000
        return WorkerID(high: high, low: low)
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in any case, optionally wrapped
    /// in braces or prefixed by `urn:uuid:`. Nil for anything else.
    public init?(_ text: some StringProtocol) {
        var utf8 = Substring(text).utf8[...]
        if utf8.count == 38, utf8.first == UInt8(ascii: "{"), utf8.last == UInt8(ascii: "}") {
            utf8 = utf8.dropFirst().dropLast()
        } else if utf8.count == 45 {
            let prefix = utf8.prefix(9)
            guard String(decoding: prefix, as: UTF8.self).lowercased() == "urn:uuid:" else { return nil }
            utf8 = utf8.dropFirst(9)
        }
        guard utf8.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var nibbles = 0
        for (offset, byte) in utf8.enumerated() {
            if offset == 8 || offset == 13 || offset == 18 || offset == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let nibble: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = UInt64(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            if nibbles < 16 { high = high << 4 | nibble } else { low = low << 4 | nibble }
            nibbles += 1
        }
        self.init(high: high, low: low)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// The canonical lowercase form.
    public var description: String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            var out = 0
            for nibbleIndex in 0..<32 {
                if nibbleIndex == 8 || nibbleIndex == 12 || nibbleIndex == 16 || nibbleIndex == 20 {
                    buffer[out] = UInt8(ascii: "-")
                    out += 1
                }
                let word = nibbleIndex < 16 ? high : low
                let shift = UInt64(60 - 4 * (nibbleIndex % 16))
                buffer[out] = Self.hex[Int((word >> shift) & 0xF)]
                out += 1
            }
            return out
        }
    }

    public static func < (lhs: WorkerID, rhs: WorkerID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
