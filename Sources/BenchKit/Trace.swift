import GatewayJSON

/// One request of a Mooncake-style trace (JSON lines): `timestamp` in milliseconds,
/// `input_length` and `output_length` in tokens, `hash_ids` one id per block of
/// `blockTokens` (512 in the public traces) of the prompt, chained (equal ids mean an
/// equal prefix up to that block).
public struct TraceRecord: Sendable, Equatable {
    public var timestampMillis: Double
    public var inputLength: Int
    public var outputLength: Int
    public var hashIDs: [Int64]

    public init(timestampMillis: Double, inputLength: Int, outputLength: Int, hashIDs: [Int64]) {
        self.timestampMillis = timestampMillis
        self.inputLength = inputLength
        self.outputLength = outputLength
        self.hashIDs = hashIDs
    }

    /// A prompt of `inputLength` one-token words where block `b` is made of words derived
    /// from `hashIDs[b]` only, so equal ids give equal token blocks; tokens past the last
    /// id's block are unique to the record (`index`).
    public func prompt(blockTokens: Int, index: Int) -> String {
        var out = ""
        out.reserveCapacity(inputLength * 8)
        var written = 0
        for id in hashIDs where written < inputLength {
            let n = min(blockTokens, inputLength - written)
            for i in 0..<n {
                if written > 0 { out += " " }
                out += "h\(id)w\(i)"
                written += 1
            }
        }
        var i = 0
        while written < inputLength {
            if written > 0 { out += " " }
            out += "r\(index)w\(i)"
            written += 1
            i += 1
        }
        return out
    }
}

/// A trace line that could not be read.
public struct TraceError: Error, CustomStringConvertible, Equatable {
    public var line: Int
    public var reason: String
    public var description: String { "trace line \(line): \(reason)" }
}

/// Reads JSON lines (blank lines skipped); records sorted by timestamp.
public func parseTrace(_ text: String) throws(TraceError) -> [TraceRecord] {
    var records: [TraceRecord] = []
    var number = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        number += 1
        let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
        if trimmed.isEmpty { continue }
        let value: JSONValue
        do {
            value = try JSONParser.parse(String(trimmed))
        } catch {
            throw TraceError(line: number, reason: "\(error)")
        }
        guard let timestamp = value["timestamp"]?.doubleValue, timestamp >= 0 else {
            throw TraceError(line: number, reason: "timestamp must be a non-negative number of milliseconds")
        }
        guard let input = value["input_length"]?.intValue, input >= 1 else {
            throw TraceError(line: number, reason: "input_length must be a positive integer")
        }
        guard let output = value["output_length"]?.intValue, output >= 0 else {
            throw TraceError(line: number, reason: "output_length must be a non-negative integer")
        }
        var ids: [Int64] = []
        if let list = value["hash_ids"] {
            guard let items = list.arrayValue else { throw TraceError(line: number, reason: "hash_ids must be an array of integers") }
            for item in items {
                guard let id = item.intValue else { throw TraceError(line: number, reason: "hash_ids must be an array of integers") }
                ids.append(id)
            }
        }
        records.append(TraceRecord(timestampMillis: timestamp, inputLength: Int(input), outputLength: Int(output), hashIDs: ids))
    }
    return records.enumerated().sorted { ($0.element.timestampMillis, $0.offset) < ($1.element.timestampMillis, $1.offset) }.map(\.element)
}
