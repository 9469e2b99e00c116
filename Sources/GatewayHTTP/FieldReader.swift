import GatewayCore
import GatewayJSON

/// Typed access to the members of a JSON request body, with errors that name the
/// field and say what was expected. A member set to `null` counts as absent.
struct FieldReader {
    let object: JSONObject

    /// Parses `bytes` as a JSON object.
    init(body bytes: some Collection<UInt8>) throws(GatewayError) {
        guard !bytes.isEmpty else { throw .invalidJSON("the body is empty (expected a JSON object)") }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw .invalidJSON(error.description)
        }
        guard case .object(let object) = value else {
            throw .invalidJSON("expected a JSON object, got \(value.typeDescription)")
        }
        self.object = object
    }

    init(object: JSONObject) {
        self.object = object
    }

    func has(_ key: String) -> Bool {
        if let value = object[key], value != .null { return true }
        return false
    }

    private func present(_ key: String) -> JSONValue? {
        guard let value = object[key], value != .null else { return nil }
        return value
    }

    func string(_ key: String) throws(GatewayError) -> String? {
        guard let value = present(key) else { return nil }
        guard let string = value.stringValue else { throw .invalidField(key, "must be a string, got \(value.typeDescription)") }
        try Self.refuseNUL(string, in: key)
        return string
    }

    /// Stored strings never hold a NUL: the binary protocol's strings are C strings, and a
    /// value one door stores must be servable by the other.
    static func refuseNUL(_ text: String, in key: String) throws(GatewayError) {
        if text.utf8.contains(0) { throw .invalidField(key, "must not contain a NUL character") }
    }

    func bool(_ key: String) throws(GatewayError) -> Bool? {
        guard let value = present(key) else { return nil }
        guard let bool = value.boolValue else { throw .invalidField(key, "must be true or false, got \(value.typeDescription)") }
        return bool
    }

    func double(_ key: String) throws(GatewayError) -> Double? {
        guard let value = present(key) else { return nil }
        guard let number = value.doubleValue else {
            if case .number(let text) = value { throw .invalidField(key, "is out of range (\(text))") }
            throw .invalidField(key, "must be a number, got \(value.typeDescription)")
        }
        return number
    }

    /// A whole number in `range`.
    func integer(_ key: String, in range: ClosedRange<Int64>) throws(GatewayError) -> Int64? {
        guard let value = present(key) else { return nil }
        guard let integer = value.intValue else {
            if case .number(let text) = value, !text.contains(where: { ".eE".contains($0) }) {
                throw .invalidField(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(text)")
            }
            throw .invalidField(key, "must be an integer, got \(value.typeDescription == "a number" ? "a fractional number" : value.typeDescription)")
        }
        guard range.contains(integer) else {
            throw .invalidField(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(integer)")
        }
        return integer
    }

    /// An object whose values are all strings.
    func stringMap(_ key: String) throws(GatewayError) -> [String: String]? {
        guard let changes = try stringMapAllowingNulls(key) else { return nil }
        var map: [String: String] = [:]
        for (k, v) in changes {
            guard let v else { throw .invalidField(key, "values must be strings (\"\(k)\" is null)") }
            map[k] = v
        }
        return map
    }

    /// An object whose values are strings or null (null: remove that key).
    func stringMapAllowingNulls(_ key: String) throws(GatewayError) -> [String: String?]? {
        guard let value = present(key) else { return nil }
        guard let object = value.objectValue else { throw .invalidField(key, "must be an object of strings, got \(value.typeDescription)") }
        var map: [String: String?] = [:]
        for (k, v) in object {
            try Self.refuseNUL(k, in: key)
            switch v {
            case .string(let s):
                try Self.refuseNUL(s, in: key)
                map[k] = .some(s)
            case .null: map[k] = .some(nil)
            default: throw .invalidField(key, "values must be strings (\"\(k)\" is \(v.typeDescription))")
            }
        }
        return map
    }
}
