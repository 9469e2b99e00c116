import Testing
import GatewayJSON

private func written(_ body: (inout JSONWriter) -> Void) -> String {
    var writer = JSONWriter()
    body(&writer)
    return writer.string
}

/// Asserts parse(write(value)) == value, and that writing again gives the same bytes
/// (which also proves key order survives, since JSONObject equality ignores order).
private func expectRoundTrip(_ value: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) {
    let bytes = value.jsonBytes
    do {
        let parsed = try JSONParser.parse(bytes)
        #expect(parsed == value, "round trip of \(value.jsonString)", sourceLocation: sourceLocation)
        #expect(parsed.jsonBytes == bytes, "re-written bytes differ for \(value.jsonString)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("writer output does not parse: \(error) in \(String(decoding: bytes, as: UTF8.self).prefix(300))", sourceLocation: sourceLocation)
    }
}

@Suite("JSONWriter")
struct JSONWriterTests {
    @Test func escapesQuotesBackslashesAndControlCharacters() {
        #expect(JSONValue.string(#"say "hi" \ bye"#).jsonString == #""say \"hi\" \\ bye""#)
        #expect(JSONValue.string("a\nb\rc\td").jsonString == #""a\nb\rc\td""#)
        #expect(JSONValue.string("\u{0}\u{1}\u{8}\u{B}\u{C}\u{1F}").jsonString == #""\u0000\u0001\u0008\u000b\u000c\u001f""#)
        // Not escaped: slash, DEL, non-ASCII.
        #expect(JSONValue.string("a/b\u{7F}é中😀").jsonString == "\"a/b\u{7F}é中😀\"")
        #expect(JSONValue.string("").jsonString == #""""#)
    }

    @Test func everyControlCharacterIsEscapedAndRoundTrips() throws {
        for scalar in 0..<0x20 {
            let s = "x" + String(UnicodeScalar(UInt8(scalar))) + "y"
            let bytes = JSONValue.string(s).jsonBytes
            #expect(!bytes.contains(where: { $0 < 0x20 }), "raw control byte 0x\(String(scalar, radix: 16)) written")
            #expect(try JSONParser.parse(bytes) == .string(s))
        }
    }

    @Test func integersAtTheEdges() {
        let values: [Int64] = [0, 7, -7, 10, -10, 1_234_567_890, .max, .min]
        #expect(written { w in
            w.beginArray()
            for v in values { w.int(v) }
            w.int(UInt64.max)
            w.endArray()
        } == "[" + values.map(String.init).joined(separator: ",") + ",\(UInt64.max)]")
    }

    @Test func takeBytesHandsOverPiecesOfOneDocument() throws {
        var writer = JSONWriter()
        var pieces: [UInt8] = []
        writer.beginArray()
        for i in 0..<100 {
            writer.int(i)
            if i % 7 == 0 { pieces += writer.takeBytes() }
        }
        writer.endArray()
        pieces += writer.takeBytes()
        #expect(writer.bytes.isEmpty)
        let whole = try JSONParser.parse(pieces)
        #expect(whole.arrayValue?.count == 100)
        #expect(String(decoding: pieces, as: UTF8.self) == "[" + (0..<100).map(String.init).joined(separator: ",") + "]")
    }

    @Test func keysAreEscaped() {
        let value: JSONValue = .object(["a\"b\n": .int(1)])
        #expect(value.jsonString == #"{"a\"b\n":1}"#)
    }

    @Test func keyOrderIsPreserved() {
        var object = JSONObject()
        object["zeta"] = .int(1)
        object["alpha"] = .int(2)
        object["mid"] = .int(3)
        #expect(JSONValue.object(object).jsonString == #"{"zeta":1,"alpha":2,"mid":3}"#)

        var writer = JSONWriter()
        writer.beginObject()
        writer.field("b", 1)
        writer.field("a", "x")
        writer.field("c", true)
        writer.endObject()
        #expect(writer.string == #"{"b":1,"a":"x","c":true}"#)
    }

    @Test func commaPlacementWithNestedEmptyContainers() throws {
        let text = #"{"a":{},"b":[],"c":[{},[],{"d":[]},[[]],{}],"e":{"f":{}},"g":1}"#
        let value = try JSONParser.parse(text)
        #expect(value.jsonString == text)

        #expect(JSONValue.array([.array([]), .array([]), .object(JSONObject())]).jsonString == "[[],[],{}]")
        #expect(JSONValue.array([.array([.array([])]), .int(1)]).jsonString == "[[[]],1]")
        #expect(JSONValue.object(["x": .object(["y": .object(JSONObject())]), "z": .null]).jsonString == #"{"x":{"y":{}},"z":null}"#)
    }

    @Test func streamingAPICommas() {
        let text = written { w in
            w.beginObject()
            w.key("list")
            w.beginArray()
            w.int(1)
            w.beginObject()
            w.endObject()
            w.beginArray()
            w.endArray()
            w.string("s")
            w.null()
            w.bool(false)
            w.double(0.5)
            w.raw(Array(#"{"r":1}"#.utf8))
            w.endArray()
            w.key("empty")
            w.beginObject()
            w.endObject()
            w.field("opt", nil as String?)
            w.field("val", .array([.int(1), .int(2)]) as JSONValue)
            w.endObject()
        }
        #expect(text == #"{"list":[1,{},[],"s",null,false,0.5,{"r":1}],"empty":{},"opt":null,"val":[1,2]}"#)
    }

    @Test func nonFiniteDoublesAreNull() {
        #expect(JSONValue.double(.nan).jsonString == "null")
        #expect(JSONValue.double(.infinity).jsonString == "null")
        #expect(JSONValue.double(-.infinity).jsonString == "null")
        #expect(JSONValue.array([.double(.nan), .int(1), .double(.infinity)]).jsonString == "[null,1,null]")
        #expect(written { $0.beginObject(); $0.field("x", Double.nan); $0.endObject() } == #"{"x":null}"#)
    }

    @Test func numbers() {
        #expect(JSONValue.int(0).jsonString == "0")
        #expect(JSONValue.int(-42).jsonString == "-42")
        #expect(JSONValue.int(.max).jsonString == "9223372036854775807")
        #expect(JSONValue.int(.min).jsonString == "-9223372036854775808")
        #expect(JSONValue.double(2.5).jsonString == "2.5")
        // Whole doubles print without a fraction.
        #expect(JSONValue.double(2).jsonString == "2")
        #expect(JSONValue.double(-3).jsonString == "-3")
        #expect(written { $0.int(UInt64.max) } == "18446744073709551615")
    }

    @Test func doublesRoundTripExactly() throws {
        for d in [0.1, -2.5, 1e-7, 123.456, 1.5e300, -Double.leastNonzeroMagnitude, 1e15, 1e16, 9.223372036854776e18, 1.7976931348623157e308, Double.pi] {
            let parsed = try JSONParser.parse(JSONValue.double(d).jsonBytes)
            #expect(parsed.doubleValue == d, "\(d) came back as \(parsed)")
        }
    }

    @Test(arguments: [
        JSONValue.null,
        .bool(true),
        .bool(false),
        .int(0),
        .int(-1),
        .int(.max),
        .int(.min),
        .double(0.25),
        .double(-1e-300),
        .double(6.02214076e23),
        .string(""),
        .string("plain"),
        .string("quote \" backslash \\ slash / tab \t nl \n cr \r ctl \u{1} \u{1F}"),
        .string("unicode é 中文 😀 \u{10FFFF} \u{FEFF}"),
        .array([]),
        .object(JSONObject()),
        .array([.int(1), .string("two"), .double(3.5), .null, .bool(true), .array([]), .object(JSONObject())]),
        .object([
            "z": .int(1), "a": .array([.object(["nested": .object(["deep": .array([.array([.array([])])])])])]),
            "": .string("empty key"), "é": .null, "m": .object(["x": .array([]), "y": .object(JSONObject())]),
        ]),
    ])
    func roundTrips(value: JSONValue) {
        expectRoundTrip(value)
    }

    @Test func roundTripOfAParsedDocumentIsByteIdentical() throws {
        let text = #"{"id":"w-1","labels":{"zone":"b","gpu":"h100"},"items":[1,-2,3.5,"x\ny",null,true,{"k":[]}],"": {}}"#
        let value = try JSONParser.parse(text)
        let compact = value.jsonString
        #expect(compact == #"{"id":"w-1","labels":{"zone":"b","gpu":"h100"},"items":[1,-2,3.5,"x\ny",null,true,{"k":[]}],"":{}}"#)
        expectRoundTrip(value)
    }

    /// Nesting as deep as the parser accepts must come back out as valid JSON,
    /// with commas after nested empty containers at every level.
    @Test(arguments: [1, 2, 30, 61, 62, 63, 64, 65, 100, JSONParser.defaultMaxDepth - 1])
    func deepNestingKeepsCommas(depth: Int) {
        // [[], 1] wrapped so that the innermost pair sits at `depth` + 1.
        var value: JSONValue = .array([.array([]), .int(1)])
        for _ in 0..<(depth - 1) { value = .array([value, .int(0)]) }
        expectRoundTrip(value)

        var object: JSONValue = .object(["e": .object(JSONObject()), "n": .int(1)])
        for _ in 0..<(depth - 1) { object = .object(["o": object, "n": .int(0)]) }
        expectRoundTrip(object)
    }
}
