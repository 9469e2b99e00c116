/// Walks the fields of packed protobuf bytes without decoding them (used by
/// `MessageMerge` and `StringScan`, which look at the bytes before protobuf-c does).
enum PackedFields {
    /// One field of a message: where its key starts, where its value (for length-delimited
    /// fields, the payload after the length) starts and where it ends.
    struct Entry {
        var number: UInt32
        var wireType: UInt64
        var start: Int
        var valueStart: Int
        var end: Int
    }

    /// Reads the field at `i`; nil on malformed bytes or group wire types.
    static func entry(_ p: UnsafePointer<UInt8>, _ count: Int, at i: inout Int) -> Entry? {
        let start = i
        guard let key = varint(p, count, &i), key >> 3 > 0, key >> 3 <= UInt64(UInt32.max) else { return nil }
        let wireType = key & 7
        var valueStart = i
        switch wireType {
        case 0: guard varint(p, count, &i) != nil else { return nil }
        case 1: guard count - i >= 8 else { return nil }; i += 8
        case 5: guard count - i >= 4 else { return nil }; i += 4
        case 2:
            guard let length = varint(p, count, &i), length <= UInt64(count - i) else { return nil }
            valueStart = i
            i += Int(length)
        default: return nil
        }
        return Entry(number: UInt32(key >> 3), wireType: wireType, start: start, valueStart: valueStart, end: i)
    }

    @inline(__always)
    static func varint(_ p: UnsafePointer<UInt8>, _ count: Int, _ i: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while i < count, shift < 64 {
            let byte = p[i]
            i += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

}
