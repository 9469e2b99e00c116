import Testing
import GatewayCore

/// Always returns the same word, to see exactly which bits `random(using:)` forces.
private struct ConstantGenerator: RandomNumberGenerator {
    let value: UInt64
    mutating func next() -> UInt64 { value }
}

@Suite("WorkerID")
struct WorkerIDTests {
    static let canonical = "123e4567-e89b-12d3-a456-426614174000"
    static let expected = WorkerID(high: 0x123e_4567_e89b_12d3, low: 0xa456_4266_1417_4000)

    @Test(arguments: [
        "123e4567-e89b-12d3-a456-426614174000",
        "123E4567-E89B-12D3-A456-426614174000",
        "123e4567-E89b-12D3-a456-426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "{123E4567-E89B-12D3-A456-426614174000}",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
        "URN:UUID:123E4567-E89B-12D3-A456-426614174000",
        "Urn:Uuid:123e4567-e89b-12d3-a456-426614174000",
    ])
    func parsesEverySpelling(text: String) throws {
        let id = try #require(WorkerID(text))
        #expect(id == Self.expected)
        #expect(id.description == Self.canonical)
    }

    @Test func parsesSubstrings() throws {
        let text = "id=123e4567-e89b-12d3-a456-426614174000;"
        let slice = text.dropFirst(3).dropLast()
        #expect(WorkerID(slice) == Self.expected)
    }

    @Test func extremes() throws {
        let zero = try #require(WorkerID("00000000-0000-0000-0000-000000000000"))
        #expect(zero == WorkerID(high: 0, low: 0))
        let ones = try #require(WorkerID("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"))
        #expect(ones == WorkerID(high: .max, low: .max))
        #expect(ones.description == "ffffffff-ffff-ffff-ffff-ffffffffffff")
        #expect(WorkerID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210).description == "01234567-89ab-cdef-fedc-ba9876543210")
    }

    @Test(arguments: [
        "",
        "123e4567",
        "123e4567-e89b-12d3-a456-42661417400",  // 35 characters
        "123e4567-e89b-12d3-a456-4266141740000",  // 37 characters
        "123e4567e89b12d3a456426614174000",  // no dashes
        "123e4567-e89b-12d3-a456-42661417400g",  // non-hex
        "123e4567-e89b-12d3-a456-42661417400G",
        "123e4567_e89b_12d3_a456_426614174000",  // wrong separators
        "123e456-7e89b-12d3-a456-426614174000",  // dash one too early
        "123e45678-e89b-12d3-a456-42661417400",  // dash one too late
        "123e4567-e89b-12d3-a4564-26614174000",  // last dash moved
        "123e4567-e89b-12d3-a456-4266-4174000",  // extra dash in place of a digit
        "-123e4567-e89b-12d3-a456-42661417400",
        " 123e4567-e89b-12d3-a456-426614174000",  // whitespace
        "123e4567-e89b-12d3-a456-426614174000 ",
        "{123e4567-e89b-12d3-a456-426614174000",  // unbalanced braces
        "123e4567-e89b-12d3-a456-426614174000}",
        "[123e4567-e89b-12d3-a456-426614174000]",
        "(123e4567-e89b-12d3-a456-426614174000)",
        "{{123e4567-e89b-12d3-a456-426614174000}}",
        "urn:uuid:{123e4567-e89b-12d3-a456-426614174000}",
        "{urn:uuid:123e4567-e89b-12d3-a456-426614174000}",
        "uri:uuid:123e4567-e89b-12d3-a456-426614174000",
        "urn:uuid-123e4567-e89b-12d3-a456-426614174000",
        "urn:uuid:123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-42661417400é",  // non-ASCII
        "123e4567-e89b-12d3-a456-42661417400０",  // full-width digit
        "+23e4567-e89b-12d3-a456-426614174000",
    ])
    func rejectsInvalid(text: String) {
        #expect(WorkerID(text) == nil, "\(text.debugDescription) must not parse")
    }

    @Test func randomSetsVersionAndVariant() throws {
        for _ in 0..<200 {
            let id = WorkerID.random()
            #expect(id.high & 0xF000 == 0x4000, "version nibble of \(id)")
            #expect(id.low >> 62 == 0b10, "variant bits of \(id)")
            let text = Array(id.description)
            #expect(text[14] == "4")
            #expect("89ab".contains(text[19]))
        }
    }

    @Test func randomOnlyTouchesVersionAndVariantBits() {
        var ones = ConstantGenerator(value: .max)
        #expect(WorkerID.random(using: &ones) == WorkerID(high: 0xFFFF_FFFF_FFFF_4FFF, low: 0xBFFF_FFFF_FFFF_FFFF))
        var zeros = ConstantGenerator(value: 0)
        #expect(WorkerID.random(using: &zeros) == WorkerID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0000))
    }

    @Test func randomIDsDiffer() {
        let ids = Set((0..<500).map { _ in WorkerID.random() })
        #expect(ids.count == 500)
    }

    @Test func descriptionRoundTrips() throws {
        for _ in 0..<200 {
            let id = WorkerID.random()
            let text = id.description
            #expect(text.count == 36)
            #expect(text == text.lowercased())
            #expect(WorkerID(text) == id)
            #expect(WorkerID(text.uppercased()) == id)
            #expect(WorkerID("{\(text)}") == id)
            #expect(WorkerID("urn:uuid:\(text)") == id)
        }
    }

    @Test func ordering() {
        let a = WorkerID(high: 1, low: .max)
        let b = WorkerID(high: 2, low: 0)
        let c = WorkerID(high: 2, low: 1)
        #expect(a < b && b < c && a < c)
        #expect(!(b < a))
        #expect([c, a, b].sorted() == [a, b, c])
    }
}
