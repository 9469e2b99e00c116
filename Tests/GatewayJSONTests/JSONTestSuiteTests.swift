import Foundation
import Testing

@testable import GatewayJSON

/// Nicolas Seriot's JSONTestSuite (`test_parsing/`, MIT licence, copied into
/// `JSONTestSuite/` beside this file): `y_` files must parse, `n_` files must not,
/// `i_` files may go either way but must not crash. The field scanner, which the
/// inference path uses instead of the parser, must agree with the parser on every file.
@Suite("JSONTestSuite")
struct JSONTestSuiteTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("JSONTestSuite")

    static let files: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted()
    }()

    /// Valid JSON that the gateway refuses on purpose, and why.
    static let refusedByDesign: [String: String] = [
        "y_object_duplicated_key.json": "a repeated key is refused (readers disagree on which value wins)",
        "y_object_duplicated_key_and_value.json": "a repeated key is refused, even with the same value",
    ]

    static func bytes(_ file: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
    }

    static func parses(_ bytes: [UInt8]) -> Bool {
        (try? JSONParser.parse(bytes)) != nil
    }

    static func scans(_ bytes: [UInt8], keys: Set<String>) -> [String: Range<Int>]? {
        bytes.withUnsafeBytes { try? JSONFieldScanner.scan($0, keys: keys) }
    }

    @Test func theWholeSuiteIsHere() {
        #expect(Self.files.count == 318, "JSONTestSuite/ must hold the suite's 318 test_parsing files")
        #expect(Self.files.filter { $0.hasPrefix("y_") }.count == 95)
        #expect(Self.files.filter { $0.hasPrefix("n_") }.count == 188)
    }

    @Test(arguments: files)
    func parserFollowsTheSuite(file: String) throws {
        let bytes = try Self.bytes(file)
        let accepted = Self.parses(bytes)
        if let reason = Self.refusedByDesign[file] {
            #expect(!accepted, "\(file): \(reason)")
        } else if file.hasPrefix("y_") {
            #expect(accepted, "\(file) is valid JSON")
        } else if file.hasPrefix("n_") {
            #expect(!accepted, "\(file) is not JSON")
        }
    }

    /// Every file as the value of a member, so the scanner walks it with `skipValue`
    /// (strings skipped, not read): it must accept exactly what the parser accepts.
    @Test(arguments: files)
    func scannerAgreesWithTheParser(file: String) throws {
        let bytes = try Self.bytes(file)
        let wrapped = Array(#"{"skipped": "#.utf8) + bytes + Array(#", "read": 1}"#.utf8)
        let scanned = Self.scans(wrapped, keys: ["read"])
        if Self.refusedByDesign[file] != nil {
            // Duplicates among members the gateway does not read are the worker's to judge.
            #expect(scanned != nil && !Self.parses(wrapped), "\(file)")
            return
        }
        #expect((scanned != nil) == Self.parses(wrapped), "\(file): scanner and parser disagree")
        if let scanned {
            let range = try #require(scanned["read"])
            #expect(Array(wrapped[range]) == Array("1".utf8))
        }

        // A document whose top level is an object: every member found where the parser put it.
        guard let object = (try? JSONParser.parse(bytes))?.objectValue else { return }
        let found = try #require(Self.scans(bytes, keys: Set(object.keys)), "\(file): the scanner refused an object the parser read")
        for member in object {
            let range = try #require(found[member.key], "\(file): \(member.key) not found")
            let value = try bytes.withUnsafeBytes { try JSONFieldScanner.value(in: $0, at: range) }
            #expect(value == member.value, "\(file): \(member.key)")
        }
    }

    /// What the parser reads, the writer writes back to the same value (a whole double
    /// such as `20e1` is written `200`: the same number).
    @Test(arguments: files.filter { $0.hasPrefix("y_") || $0.hasPrefix("i_") })
    func writerRoundTrips(file: String) throws {
        guard let value = try? JSONParser.parse(Self.bytes(file)) else { return }
        let again = try JSONParser.parse(value.jsonBytes)
        #expect(Self.same(again, value), "\(file): \(value.jsonString) read back as \(again.jsonString)")
    }

    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { member in y[member.key].map { same(member.value, $0) } ?? false }
        case (.int, .double), (.double, .int):
            return a.doubleValue == b.doubleValue
        default:
            return a == b
        }
    }
}
