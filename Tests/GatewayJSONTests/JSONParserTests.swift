import Testing
@testable import GatewayJSON

/// Parses `text` as raw UTF-8 bytes (the byte-collection overload).
private func parseBytes(_ bytes: [UInt8], maxDepth: Int = JSONParser.defaultMaxDepth) throws(JSONParseError) -> JSONValue {
    try JSONParser.parse(bytes, maxDepth: maxDepth)
}

/// The error a document fails with, or nil when it parses.
private func parseError(_ bytes: [UInt8]) -> JSONParseError? {
    do {
        _ = try parseBytes(bytes)
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String) -> JSONParseError? { parseError(Array(text.utf8)) }

@Suite("JSONParser: valid documents")
struct JSONParserValidTests {
    @Test func scalars() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
        #expect(try JSONParser.parse("\"hi\"") == .string("hi"))
        #expect(try JSONParser.parse("0") == .int(0))
        #expect(try JSONParser.parse("  \t\r\n 42 \n") == .int(42))
    }

    @Test func nestedDocument() throws {
        let text = #"{"a": [1, 2.5, {"b": null, "c": [true, false, []]}], "d": {}, "e": "x"}"#
        let value = try JSONParser.parse(text)
        let expected: JSONValue = .object([
            "a": .array([.int(1), .double(2.5), .object(["b": .null, "c": .array([.bool(true), .bool(false), .array([])])])]),
            "d": .object(JSONObject()),
            "e": .string("x"),
        ])
        #expect(value == expected)
        #expect(value.objectValue?.keys == ["a", "d", "e"])
        #expect(value["a"]?.arrayValue?[2]["c"]?.arrayValue?.count == 3)
    }

    @Test func bytesAndStringOverloadsAgree() throws {
        let text = #"{"k": [1, "two", 3.0, {"x": "é"}]}"#
        #expect(try JSONParser.parse(text) == (try parseBytes(Array(text.utf8))))
        // A non-contiguous collection goes through the copying path.
        let lazyBytes = text.utf8.lazy.map { $0 }
        #expect(try JSONParser.parse(lazyBytes) == (try JSONParser.parse(text)))
    }

    @Test func simpleEscapes() throws {
        let value = try JSONParser.parse(#""a\"b\\c\/d\be\ff\ng\rh\ti""#)
        #expect(value == .string("a\"b\\c/d\u{8}e\u{C}f\ng\rh\ti"))
    }

    @Test func unicodeEscapes() throws {
        #expect(try JSONParser.parse(#""\u0041\u00e9\u00E9\u4e2d""#) == .string("Aéé中"))
        #expect(try JSONParser.parse(#""\u0000""#) == .string("\u{0}"))
        // Escapes mixed with literal text on both sides.
        #expect(try JSONParser.parse(#""x\u0041y""#) == .string("xAy"))
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONParser.parse(#""\uD834\uDD1E""#) == .string("𝄞"))
        #expect(try JSONParser.parse(#""a\uDBFF\uDFFFb""#) == .string("a\u{10FFFF}b"))
    }

    @Test func rawUTF8IsKept() throws {
        #expect(try JSONParser.parse("\"héllo 中文 😀\"") == .string("héllo 中文 😀"))
        #expect(try JSONParser.parse("{\"ключ\": \"значение\"}")["ключ"] == .string("значение"))
    }

    @Test func integersVersusDoubles() throws {
        #expect(try JSONParser.parse("123") == .int(123))
        #expect(try JSONParser.parse("-123") == .int(-123))
        #expect(try JSONParser.parse("1.0") == .double(1.0))
        #expect(try JSONParser.parse("1e2") == .double(100))
        #expect(try JSONParser.parse("1E+2") == .double(100))
        #expect(try JSONParser.parse("25e-1") == .double(2.5))
        #expect(try JSONParser.parse("-0.5") == .double(-0.5))
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
    }

    @Test func numbersNoNativeTypeHoldsKeepTheirText() throws {
        // Integers beyond 64 bits and exponents beyond Double's range are kept as written,
        // so re-serialising them changes nothing (a 64-bit unsigned seed reaches the worker intact).
        for text in ["9223372036854775808", "-9223372036854775809", "18446744073709551615",
                     "123456789012345678901234567890", "1e400", "-1E+400", "1.5e99999"] {
            let value = try JSONParser.parse(text)
            #expect(value == .number(text), "\(text) -> \(value)")
            #expect(value.jsonString == text)
            #expect(value.typeDescription == "a number")
            #expect(value.intValue == nil)
        }
        #expect(try JSONParser.parse("18446744073709551615").doubleValue == 18446744073709551615.0)
        #expect(try JSONParser.parse("1e400").doubleValue == nil)
        // Inside a document too.
        let doc = #"{"seed":18446744073709551615,"big":[1e400,-9223372036854775809]}"#
        #expect(try JSONParser.parse(doc).jsonString == doc)
    }

    @Test func negativeZero() throws {
        let fractional = try JSONParser.parse("-0.0")
        guard case .double(let d) = fractional else {
            Issue.record("-0.0 parsed as \(fractional)")
            return
        }
        #expect(d == 0 && d.sign == .minus)
        let exponent = try JSONParser.parse("-0e0")
        #expect(exponent.doubleValue?.sign == .minus)
        // "-0" has neither fraction nor exponent: it is the integer 0.
        #expect(try JSONParser.parse("-0") == .int(0))
    }

    @Test func manyKeysAreLookedUpAndReplacedThroughTheIndex() throws {
        // Past JSONObject.indexThreshold members the object keeps a key index; every
        // operation must agree with the member list.
        let count = 5_000
        let text = "{" + (0..<count).map { #""k\#($0)": \#($0)"# }.joined(separator: ",") + "}"
        var object = try #require(try JSONParser.parse(text).objectValue)
        #expect(object.count == count)
        #expect(object["k0"] == .int(0))
        #expect(object["k4999"] == .int(4999))
        #expect(object["k5000"] == nil)
        object["k17"] = .string("x")
        #expect(object["k17"] == .string("x"))
        #expect(object.count == count)
        object["k3"] = nil
        #expect(object["k3"] == nil)
        #expect(object["k4"] == .int(4), "positions after a removal must be re-indexed")
        #expect(object.keys.prefix(4) == ["k0", "k1", "k2", "k4"])
        let inserted = object.insertNew("k3", .null)
        let insertedAgain = object.insertNew("k3", .bool(true))
        #expect(inserted && !insertedAgain)
        #expect(object["k3"] == .null)
        #expect(object.keys.last == "k3")
    }

    @Test func keyOrderIsDocumentOrder() throws {
        let value = try JSONParser.parse(#"{"z": 1, "a": 2, "m": 3, "b": 4}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m", "b"])
    }

    @Test func depthUpToTheLimitIsAccepted() throws {
        let depth = JSONParser.defaultMaxDepth
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var value = try JSONParser.parse(text)
        var levels = 1
        while case .array(let items) = value, let first = items.first {
            value = first
            levels += 1
        }
        #expect(levels == depth)

        let objects = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
        _ = try JSONParser.parse(objects)
    }
}

@Suite("JSONParser: invalid documents")
struct JSONParserInvalidTests {
    @Test(arguments: [
        ("", 0),
        ("   ", 3),
        ("[1,]", 3),
        ("[1,2,]", 5),
        (#"{"a":1,}"#, 7),
        ("[,1]", 1),
        ("01", 1),
        ("-01", 2),
        ("00", 1),
        ("[1 2]", 3),
        (#"{"a" 1}"#, 5),
        ("{a:1}", 1),
        (#""abc"#, 4),
        (#"["abc"#, 5),
        ("1 2", 2),
        ("{} x", 3),
        ("nul", 0),
        ("tru", 0),
        ("nulx", 0),
        ("NaN", 0),
        ("Infinity", 0),
        ("-", 1),
        ("1.", 2),
        (".5", 0),
        ("1e", 2),
        ("1e+", 3),
        ("+1", 0),
        ("[", 1),
        ("{", 1),
        ("]", 0),
        ("/* c */ 1", 0),
        (#""\x""#, 2),
        (#""\u12""#, 3),
        (#""\u12G4""#, 5),
    ])
    func rejected(text: String, offset: Int) throws {
        let error = try #require(parseError(text), "\(text.debugDescription) must not parse")
        #expect(error.offset == offset, "\(text.debugDescription): \(error)")
        #expect(!error.reason.isEmpty)
        #expect(error.description.contains("byte \(error.offset)"))
    }

    @Test func leadingZerosRejected() {
        for text in ["01", "-01", "00", "007", "[01]", "0123.5", "-00.5"] {
            #expect(parseError(text) != nil, "\(text) must not parse")
        }
        // But a single zero before a fraction or exponent is fine.
        #expect(parseError("0.5") == nil)
        #expect(parseError("-0.5") == nil)
        #expect(parseError("0e5") == nil)
    }

    @Test func duplicateKeysRefused() {
        // {"url": A, "url": B} must not register B: a repeated key is an error, at any depth,
        // whatever the escapes that spell it.
        #expect(parseError(#"{"a": 1, "b": 2, "a": 3}"#)?.reason == #"duplicate key "a" in an object"#)
        #expect(parseError(#"{"a": 1, "b": 2, "a": 3}"#)?.offset == 17)
        #expect(parseError(#"{"url": "http://a:1", "url": "http://b:1"}"#) != nil)
        #expect(parseError(#"[{"x": {"y": 1, "y": 1}}]"#) != nil)
        #expect(parseError(#"{"model": 1, "mod\u0065l": 2}"#) != nil)
        #expect(parseError(#"{"a": 1, "b": {"a": 2}}"#) == nil, "the same key in two objects is fine")
        let wide = "{" + (0..<100).map { #""k\#($0)": 0"# }.joined(separator: ",") + #","k42": 1}"#
        #expect(parseError(wide) != nil, "found through the key index too")
    }

    @Test func unterminatedStrings() {
        #expect(parseError(#"""#)?.offset == 1)
        #expect(parseError(#""abc\""#) != nil)  // the escape eats the closing quote
        #expect(parseError(#""abc\"#) != nil)
        #expect(parseError(#"{"key"#) != nil)
        #expect(parseError(#"{"key": "value"#) != nil)
    }

    @Test func rawControlCharactersRejected() {
        for byte in UInt8(0x00)...UInt8(0x1F) {
            let withoutEscape: [UInt8] = Array(#""ab"#.utf8) + [byte] + Array(#"c""#.utf8)
            #expect(parseError(withoutEscape)?.offset == 3, "raw 0x\(String(byte, radix: 16)) in a string")
            let afterEscape: [UInt8] = Array(#""a\nb"#.utf8) + [byte] + Array(#"c""#.utf8)
            #expect(parseError(afterEscape)?.offset == 5, "raw 0x\(String(byte, radix: 16)) after an escape")
        }
        // DEL (0x7F) is not a control character for JSON.
        #expect(parseError([0x22, 0x7F, 0x22]) == nil)
    }

    @Test func invalidUTF8Rejected() {
        let cases: [[UInt8]] = [
            [0xFF],  // never valid
            [0xC3],  // truncated 2-byte sequence
            [0xC0, 0xAF],  // overlong "/"
            [0xE0, 0x80, 0xAF],  // overlong
            [0xED, 0xA0, 0x80],  // encoded surrogate U+D800
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
            [0x80],  // stray continuation byte
        ]
        for bad in cases {
            let document: [UInt8] = [0x22, 0x61] + bad + [0x62, 0x22]
            #expect(parseError(document) != nil, "\(bad) inside a string")
            let escaped: [UInt8] = Array(#""\n"#.utf8) + bad + [0x22]
            #expect(parseError(escaped) != nil, "\(bad) after an escape")
            let key: [UInt8] = [0x7B, 0x22] + bad + Array(#"":1}"#.utf8)
            #expect(parseError(key) != nil, "\(bad) in a key")
        }
        // Invalid bytes outside strings are just unexpected characters.
        #expect(parseError([0xFF])?.offset == 0)
        #expect(parseError([0x5B, 0x31, 0x2C, 0xFE, 0x5D])?.offset == 3)
    }

    @Test func loneSurrogatesRejected() {
        for text in [
            #""\ud800""#,  // lone high surrogate at the end
            #""\ud800x""#,  // high surrogate followed by text
            #""\ud800\n""#,  // high surrogate followed by another escape
            #""\ud800\u0041""#,  // high surrogate followed by a non-surrogate
            #""\ud800\ud800""#,  // two high surrogates
            #""\udc00""#,  // lone low surrogate
            #""\udfff\ud800""#,  // reversed pair
            #""\ud800\u""#,
        ] {
            #expect(parseError(text) != nil, "\(text) must not parse")
        }
    }

    @Test func trailingGarbageRejected() {
        #expect(parseError("{}{}")?.offset == 2)
        #expect(parseError("[] ]")?.offset == 3)
        #expect(parseError("true false")?.offset == 5)
        #expect(parseError("\"a\"\"b\"")?.offset == 3)
        #expect(parseError([0x31, 0x00])?.offset == 1)
    }

    @Test func depthBombThrowsInsteadOfCrashing() {
        let arrays = [UInt8](repeating: UInt8(ascii: "["), count: 10_000)
        let error = parseError(arrays)
        #expect(error != nil)
        #expect(error?.offset == JSONParser.defaultMaxDepth)

        let objects = Array(String(repeating: #"{"a":"#, count: 10_000).utf8)
        #expect(parseError(objects) != nil)

        let mixed = Array(String(repeating: #"[{"a":"#, count: 5_000).utf8)
        #expect(parseError(mixed) != nil)

        // Balanced but too deep is refused too.
        let balanced = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(parseError(balanced) != nil)
    }

    @Test func depthJustOverTheLimitRejected() {
        let depth = JSONParser.defaultMaxDepth + 1
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(parseError(text) != nil)
    }

    @Test func customMaxDepth() throws {
        #expect(throws: JSONParseError.self) { try JSONParser.parse("[[[1]]]", maxDepth: 2) }
        #expect(try JSONParser.parse("[[1]]", maxDepth: 2) == .array([.array([.int(1)])]))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a":{"b":{}}}"#, maxDepth: 2) }
    }
}

@Suite("JSONValue accessors")
struct JSONValueTests {
    @Test func accessors() throws {
        #expect(JSONValue.int(3).intValue == 3)
        #expect(JSONValue.double(3).intValue == 3)
        #expect(JSONValue.double(3.5).intValue == nil)
        #expect(JSONValue.double(1e300).intValue == nil)
        #expect(JSONValue.int(3).doubleValue == 3)
        #expect(JSONValue.string("x").stringValue == "x")
        #expect(JSONValue.int(1).stringValue == nil)
        #expect(JSONValue.bool(true).boolValue == true)
        #expect(JSONValue.null.boolValue == nil)
        #expect(JSONValue.null["a"] == nil)
        #expect(JSONValue.array([]).typeDescription == "an array")
        #expect(JSONValue.object(JSONObject()).typeDescription == "an object")
        #expect(JSONValue.double(1).typeDescription == "a number")
    }

    @Test func objectSubscriptSetAndRemove() {
        var object: JSONObject = ["a": .int(1), "b": .int(2)]
        object["c"] = .int(3)
        object["a"] = .int(10)
        #expect(object.keys == ["a", "b", "c"])
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == .int(10))
        object["missing"] = nil
        #expect(object.count == 2)
    }

    @Test func objectEqualityIgnoresOrderButNotContent() {
        let ab: JSONObject = ["a": .int(1), "b": .int(2)]
        let ba: JSONObject = ["b": .int(2), "a": .int(1)]
        let other: JSONObject = ["a": .int(1), "b": .int(3)]
        let fewer: JSONObject = ["a": .int(1)]
        #expect(ab == ba)
        #expect(ab != other)
        #expect(ab != fewer)
        #expect(fewer != ab)
    }
}
