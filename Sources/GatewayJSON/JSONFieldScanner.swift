/// Finds a few top-level members of a JSON object without building the rest.
///
/// The gateway forwards request bodies as received and needs only a handful of
/// fields to route (`model`, `stream`, the prompt …). The scanner walks the whole
/// document once, checking it as strictly as `JSONParser` (strings it skips are
/// validated too), and returns where the wanted members' values lie; each can then
/// be parsed on its own. A wanted key given twice is refused: the gateway would route
/// on one value while the worker reads the other. Duplicates among the members the
/// gateway does not read are left to the worker, which receives the body unchanged.
public enum JSONFieldScanner {
    /// Byte ranges (within `bytes`) of the values of the wanted top-level keys.
    /// Throws when the document is not JSON or its top level is not an object.
    public static func scan(_ bytes: UnsafeRawBufferPointer, keys wanted: Set<String>) throws(JSONParseError) -> [String: Range<Int>] {
        var reader = Reader(bytes: bytes, maxDepth: JSONParser.defaultMaxDepth)
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "{") else {
            throw reader.error(reader.atEnd ? "the body is empty (expected a JSON object)" : "expected a JSON object")
        }
        reader.index += 1
        var found: [String: Range<Int>] = [:]
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipWhitespace()
                guard reader.peek() == UInt8(ascii: "\"") else { throw reader.error("expected a string key") }
                let keyStart = reader.index
                let key = try reader.readString()
                reader.skipWhitespace()
                try reader.expect(UInt8(ascii: ":"), "':' after an object key")
                reader.skipWhitespace()
                let start = reader.index
                try reader.skipValue(depth: 1)
                if wanted.contains(key) {
                    guard found.updateValue(start..<reader.index, forKey: key) == nil else {
                        reader.index = keyStart
                        throw reader.error("duplicate key \"\(key)\" in an object")
                    }
                }
                reader.skipWhitespace()
                guard let next = reader.peek() else { throw reader.error("unexpected end of input in an object") }
                reader.index += 1
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else {
                    reader.index -= 1
                    throw reader.error("expected ',' or '}' in an object")
                }
            }
        }
        reader.skipWhitespace()
        guard reader.atEnd else { throw reader.error("unexpected data after the document") }
        return found
    }

    /// Parses the value at `range` of `bytes`.
    public static func value(in bytes: UnsafeRawBufferPointer, at range: Range<Int>) throws(JSONParseError) -> JSONValue {
        try JSONParser.parse(buffer: UnsafeRawBufferPointer(rebasing: bytes[range]), maxDepth: JSONParser.defaultMaxDepth).get()
    }
}
