import Foundation
import Testing
import NIOCore
import NIOEmbedded
import GatewayWire

// A bounded, reproducible fuzz test of everything that reads bytes from a peer:
// the frame decoder (through ByteToMessageHandler on an EmbeddedChannel, with a small
// payload limit) and `Wire.Envelope(payload:)` on every payload it yields.
//
// Inputs start from the golden vectors and the round-trip samples (bit flips,
// truncations, rewritten lengths and flags, payload edits, splices of several frames)
// or are made from scratch (random bytes, framed random bytes, protobuf-shaped nested
// garbage using the Envelope's real field numbers). Properties:
//   - nothing crashes; every error out of the pipeline is a `WireError`;
//   - no payload is longer than the limit, and frames never yield more bytes than came in;
//   - a decoded envelope re-encodes, and decode∘encode is the identity on those bytes;
//   - valid frames spliced together come out exactly as they went in.
//
// Reproducible: case i of seed S depends on (S, i) only. Environment:
//   FUZZ_SEED=0x...       the seed (default below; printed at start and in every failure)
//   FUZZ_ITERATIONS=N     number of cases (default 20,000)
//   FUZZ_CASE=i           run only case i (with FUZZ_SEED, to replay a failure)
//   FUZZ_VERBOSE=1        print each case before running it (to find a case that crashes)

/// SplitMix64 (Steele, Lea & Flood): a tiny, fast, fully specified generator, so a
/// seed means the same inputs on every platform and Swift version.
struct SplitMix64: RandomNumberGenerator {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform-enough in 0..<n (n > 0); modulo bias is irrelevant here, reproducibility is not.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

private struct FuzzConfiguration {
    var seed: UInt64 = 0x5EED_0F_CAFE_F00D
    var iterations = 20_000
    var onlyCase: Int?
    var verbose = false

    static func fromEnvironment() -> FuzzConfiguration {
        let env = ProcessInfo.processInfo.environment
        var c = FuzzConfiguration()
        func number(_ text: String) -> UInt64? {
            text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        }
        if let s = env["FUZZ_SEED"], let v = number(s) { c.seed = v }
        if let s = env["FUZZ_ITERATIONS"], let v = Int(s), v > 0 { c.iterations = v }
        if let s = env["FUZZ_CASE"], let v = Int(s), v >= 0 { c.onlyCase = v }
        c.verbose = env["FUZZ_VERBOSE"] == "1"
        return c
    }
}

private func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

private func header(flags: UInt8 = 0, length: UInt32) -> [UInt8] {
    [flags, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
}

private func framed(_ payload: [UInt8]) -> [UInt8] { header(length: UInt32(payload.count)) + payload }

/// The Envelope's field numbers (stream_id and every body case), plus a few unknown ones.
private let envelopeFields: [UInt64] = [1] + Array(10...16) + Array(20...33) + Array(40...42) + [50, 60, 1000]

/// One fuzz input: the bytes, how to cut them into reads, the payload limit, and
/// (for unmutated splices) the payloads that must come out.
private struct FuzzCase {
    var strategy: String
    var bytes: [UInt8]
    var cuts: [Int]
    var maxPayload: Int
    var expectedPayloads: [[UInt8]]?
}

private struct CaseMaker {
    var rng: SplitMix64
    let corpus: [[UInt8]]  // payloads of valid envelopes

    mutating func varint(_ value: UInt64) -> [UInt8] { Proto.varint(value) }

    mutating func interestingVarint() -> UInt64 {
        switch rng.below(6) {
        case 0: UInt64(rng.below(4))
        case 1: UInt64(rng.below(300))
        case 2: UInt64.max
        case 3: UInt64(UInt32.max) + UInt64(rng.below(3))
        case 4: 1 << UInt64(rng.below(64))
        default: rng.next()
        }
    }

    mutating func stringBytes() -> [UInt8] {
        switch rng.below(6) {
        case 0: Array("tok ✨ ünï".utf8)
        case 1: [0xFF, 0xFE]
        case 2: Array("ab".utf8) + [0x00] + Array("cd".utf8)
        case 3: [0xC3]  // truncated UTF-8
        case 4: []
        default: rng.bytes(rng.below(24))
        }
    }

    /// A protobuf-shaped message of random fields; nested messages inside length-delimited fields.
    mutating func garbageMessage(depth: Int) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<rng.below(6) {
            let field: UInt64 = depth == 0 ? rng.pick(envelopeFields) : (rng.chance(90) ? UInt64(1 + rng.below(16)) : rng.next() >> 35)
            let wireType: UInt64 = rng.chance(95) ? rng.pick([0, 0, 2, 2, 2, 1, 5]) : UInt64(rng.below(8))
            out += Proto.varint(field << 3 | wireType)
            switch wireType {
            case 0:
                if rng.chance(3) {
                    out += [0x80, 0x80]  // unterminated varint
                } else {
                    out += Proto.varint(interestingVarint())
                }
            case 1: out += rng.bytes(8)
            case 5: out += rng.bytes(4)
            case 2:
                let body: [UInt8]
                if depth < 4 && rng.chance(60) {
                    body = garbageMessage(depth: depth + 1)
                } else if rng.chance(50) {
                    body = stringBytes()
                } else {
                    body = packedVarints()
                }
                var length = UInt64(body.count)
                if rng.chance(5) { length = UInt64(max(0, body.count + rng.below(7) - 3)) }
                if rng.chance(1) { length = rng.next() }
                out += Proto.varint(length) + body
            default:
                out += rng.bytes(rng.below(4))
            }
        }
        return out
    }

    mutating func packedVarints() -> [UInt8] {
        (0..<rng.below(8)).flatMap { _ in Proto.varint(interestingVarint()) }
    }

    /// Flips, overwrites, inserts or deletes a few bytes.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + rng.below(4)) {
            switch rng.below(5) {
            case 0 where !bytes.isEmpty:
                let i = rng.below(bytes.count)
                bytes[i] ^= 1 << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] = rng.pick([0x00, 0xFF, 0x80, 0x7F, rng.byte()])
            case 2:
                bytes.insert(contentsOf: rng.bytes(1 + rng.below(4)), at: rng.below(bytes.count + 1))
            case 3 where !bytes.isEmpty:
                let i = rng.below(bytes.count)
                bytes.removeSubrange(i..<min(bytes.count, i + 1 + rng.below(4)))
            default:
                if !bytes.isEmpty { bytes[rng.below(bytes.count)] = rng.byte() }
            }
        }
        return bytes
    }

    mutating func make() -> FuzzCase {
        let maxPayload = rng.pick([64, 256, 1024, 4096])
        let payload = rng.pick(corpus)
        var expected: [[UInt8]]? = nil
        let strategy: String
        var bytes: [UInt8]
        switch rng.below(11) {
        case 0:
            strategy = "bit flips"
            bytes = framed(payload)
            for _ in 0..<(1 + rng.below(8)) where !bytes.isEmpty {
                bytes[rng.below(bytes.count)] ^= 1 << UInt8(rng.below(8))
            }
        case 1:
            strategy = "truncation"
            let whole = framed(payload)
            bytes = Array(whole[..<rng.below(whole.count + 1)])
        case 2, 3:
            strategy = "payload edits, valid header"
            bytes = framed(mutate(payload))
        case 4:
            strategy = "rewritten length"
            let length: UInt32
            switch rng.below(4) {
            case 0: length = UInt32(max(0, payload.count + rng.below(9) - 4))
            case 1: length = UInt32(maxPayload + rng.below(3) - 1)
            case 2: length = UInt32.max - UInt32(rng.below(2))
            default: length = UInt32(truncatingIfNeeded: rng.next())
            }
            bytes = header(length: length) + payload
        case 5:
            strategy = "random bytes"
            bytes = rng.bytes(rng.below(600))
        case 6:
            strategy = "framed random bytes"
            bytes = framed(rng.bytes(rng.below(maxPayload + 1)))
        case 7, 8:
            strategy = "nested garbage"
            bytes = framed(garbageMessage(depth: 0))
        case 9:
            // Several frames back to back; unmutated ones must come out exactly.
            let count = 2 + rng.below(3)
            let payloads = (0..<count).map { _ in rng.pick(corpus) }.filter { $0.count <= maxPayload }
            if rng.chance(50) {
                strategy = "splice of valid frames"
                bytes = payloads.flatMap(framed)
                expected = payloads
            } else {
                strategy = "splice with a broken frame"
                bytes = payloads.flatMap(framed)
                bytes = mutate(bytes)
            }
        default:
            strategy = "flag byte"
            bytes = header(flags: rng.byte(), length: UInt32(payload.count)) + payload
        }
        // Cut into 1-4 reads at random offsets.
        var cuts = (0..<rng.below(4)).map { _ in rng.below(bytes.count + 1) }
        cuts.sort()
        return FuzzCase(strategy: strategy, bytes: bytes, cuts: cuts, maxPayload: maxPayload, expectedPayloads: expected)
    }
}

/// What one case did.
private struct Outcome {
    var frames = 0
    var decoded = 0
    var payloadErrors: [WireError.Kind: Int] = [:]
    var frameErrors: [WireError.Kind: Int] = [:]
    var problems: [String] = []
}

/// Runs one input through the pipeline and checks the properties.
private func run(_ fuzzCase: FuzzCase) -> Outcome {
    var outcome = Outcome()
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayloadBytes: fuzzCase.maxPayload)))
    var payloads: [[UInt8]] = []
    var failed = false

    func collect() {
        while let payload = try? channel.readInbound(as: ByteBuffer.self) {
            outcome.frames += 1
            payloads.append(Array(payload.readableBytesView))
            if payload.readableBytes > fuzzCase.maxPayload {
                outcome.problems.append("a payload of \(payload.readableBytes) bytes passed a limit of \(fuzzCase.maxPayload)")
            }
            _ = Wire.Envelope.peekStreamID(payload: payload)
            do {
                let envelope = try Wire.Envelope(payload: payload)
                outcome.decoded += 1
                // Whatever decodes must encode, and its encoding is a fixed point.
                do {
                    let bytes = try envelope.serializedBytes()
                    let again = try Wire.Envelope(serializedBytes: bytes)
                    let bytesAgain = try again.serializedBytes()
                    if bytes != bytesAgain {
                        outcome.problems.append("re-encoding is not stable: \(hexString(bytes)) then \(hexString(bytesAgain))")
                    }
                } catch {
                    outcome.problems.append("a decoded envelope does not re-encode: \(error) (\(envelope))")
                }
            } catch {
                outcome.payloadErrors[error.kind, default: 0] += 1
                if error.isFatalToConnection {
                    outcome.problems.append("a payload error is fatal to the connection: \(error)")
                }
            }
        }
    }

    func note(_ error: any Error) {
        failed = true
        if let wire = error as? WireError {
            outcome.frameErrors[wire.kind, default: 0] += 1
        } else {
            outcome.problems.append("a non-WireError left the pipeline: \(type(of: error)) \(error)")
        }
    }

    var start = 0
    for end in fuzzCase.cuts + [fuzzCase.bytes.count] where !failed {
        do {
            try channel.writeInbound(ByteBuffer(bytes: fuzzCase.bytes[start..<end]))
        } catch {
            note(error)
        }
        collect()
        start = end
    }
    if failed {
        _ = try? channel.finish()
    } else {
        do {
            _ = try channel.finish()
        } catch {
            note(error)
        }
        collect()
    }

    let delivered = payloads.reduce(0) { $0 + $1.count + Frame.headerSize }
    if delivered > fuzzCase.bytes.count {
        outcome.problems.append("\(delivered) bytes of frames out of \(fuzzCase.bytes.count) bytes in")
    }
    if let expected = fuzzCase.expectedPayloads {
        if failed { outcome.problems.append("valid frames raised an error") }
        if payloads != expected { outcome.problems.append("valid frames came out as \(payloads.map(hexString)), expected \(expected.map(hexString))") }
    }
    return outcome
}

@Suite("Fuzzing the frame decoder and the envelope decoder")
struct FuzzTests {
    @Test func randomAndMutatedInputsNeverCrash() throws {
        let configuration = FuzzConfiguration.fromEnvironment()
        let seedText = "0x" + String(configuration.seed, radix: 16)
        print("fuzz: seed \(seedText), \(configuration.iterations) cases (FUZZ_SEED, FUZZ_ITERATIONS, FUZZ_CASE, FUZZ_VERBOSE override)")

        let corpus = try (goldenVectors.map(\.envelope) + everyBodyCase.map(\.envelope)).map { try $0.serializedBytes() }
        let cases = configuration.onlyCase.map { [$0] } ?? Array(0..<configuration.iterations)

        var total = Outcome()
        var strategies: [String: Int] = [:]
        var reported = 0
        let started = ContinuousClock.now
        for index in cases {
            // Each case has its own generator, derived from (seed, index) only.
            var mixer = SplitMix64(seed: configuration.seed ^ (UInt64(index) &* 0xD6E8_FEB8_6659_FD93))
            var maker = CaseMaker(rng: SplitMix64(seed: mixer.next()), corpus: corpus)
            let fuzzCase = maker.make()
            strategies[fuzzCase.strategy, default: 0] += 1
            if configuration.verbose {
                print("fuzz case \(index) [\(fuzzCase.strategy)] max \(fuzzCase.maxPayload) cuts \(fuzzCase.cuts): \(hexString(fuzzCase.bytes))")
            }
            let outcome = run(fuzzCase)
            total.frames += outcome.frames
            total.decoded += outcome.decoded
            total.payloadErrors.merge(outcome.payloadErrors, uniquingKeysWith: +)
            total.frameErrors.merge(outcome.frameErrors, uniquingKeysWith: +)
            for problem in outcome.problems where reported < 20 {
                reported += 1
                Issue.record("""
                    fuzz seed \(seedText) case \(index) [\(fuzzCase.strategy)], max payload \(fuzzCase.maxPayload), reads cut at \(fuzzCase.cuts): \(problem)
                    input: \(hexString(fuzzCase.bytes))
                    replay: FUZZ_SEED=\(seedText) FUZZ_CASE=\(index) swift test --filter FuzzTests
                    """)
            }
        }
        let elapsed = ContinuousClock.now - started
        print("fuzz: \(cases.count) cases in \(elapsed): \(total.frames) frames, \(total.decoded) envelopes decoded, payload errors \(total.payloadErrors), frame errors \(total.frameErrors), strategies \(strategies.sorted { $0.key < $1.key })")

        // The fuzzer must actually reach every layer (a generator bug would make this pass vacuously).
        if configuration.onlyCase == nil && configuration.iterations >= 5_000 {
            #expect(total.decoded > configuration.iterations / 10, "too few inputs decoded: \(total.decoded)")
            #expect(total.payloadErrors[.malformedPayload, default: 0] > 100, "too few malformed payloads")
            #expect(total.payloadErrors[.invalidUTF8, default: 0] > 10, "too few invalid UTF-8 strings")
            for kind in [WireError.Kind.frameTooLarge, .compressedFrame, .reservedFlags, .malformedPayload] {
                #expect(total.frameErrors[kind, default: 0] > 10, "too few frame errors of kind \(kind)")
            }
        }
    }

    @Test func splitMix64IsTheReferenceGenerator() {
        // First outputs for seed 0 (Vigna's reference splitmix64.c), so seeds stay meaningful.
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(rng.next() == 0x06C4_5D18_8009_454F)
    }
}
