import GatewayJSON
import Logging

/// The JSON log layout ``LogWriter`` writes with `--log-json`, one object per line:
/// `{"timestamp":"2026-11-29T09:16:33.123Z","level":"info","label":"model-gateway","message":"request","metadata":{…}}`.
///
/// Metadata values keep their type where swift-log lets them: integers, doubles
/// and booleans given as `.stringConvertible` become JSON numbers and booleans,
/// strings stay strings, arrays and dictionaries nest.
enum JSONLogLine {
    /// One log line, newline included.
    static func line(timestamp: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var json = JSONWriter(capacity: 256)
        json.beginObject()
        json.field("timestamp", timestamp)
        json.field("level", level.rawValue)
        json.field("label", label)
        json.field("message", message)
        json.key("metadata")
        json.beginObject()
        for key in metadata.keys.sorted() {
            json.key(key)
            write(metadata[key]!, to: &json)
        }
        json.endObject()
        json.endObject()
        return json.string + "\n"
    }

    private static func write(_ value: Logger.Metadata.Value, to json: inout JSONWriter) {
        switch value {
        case .string(let string):
            json.string(string)
        case .stringConvertible(let convertible):
            switch convertible {
            case let bool as Bool: json.bool(bool)
            case let int as Int: json.int(int)
            case let int as Int64: json.int(int)
            case let int as UInt64: json.int(int)
            case let int as UInt32: json.int(int)
            case let int as UInt: json.int(int)
            case let double as Double where double.isFinite: json.double(double)
            default: json.string(convertible.description)
            }
        case .array(let values):
            json.beginArray()
            for element in values { write(element, to: &json) }
            json.endArray()
        case .dictionary(let dictionary):
            json.beginObject()
            for key in dictionary.keys.sorted() {
                json.key(key)
                write(dictionary[key]!, to: &json)
            }
            json.endObject()
        }
    }
}
