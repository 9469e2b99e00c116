import GatewayProto

/// Merges split messages in packed protobuf bytes before protobuf-c reads them.
///
/// The encoding rules say that a non-repeated message field seen more than once is
/// the merge of its pieces (scalars: the last wins; repeated fields: concatenated;
/// sub-messages: merged again), and that a new member of a oneof clears the previous
/// one. Google's runtimes follow them. protobuf-c 1.4 does not: it keeps only the last
/// piece of a oneof member (`Envelope.generate` split in two loses its first half) and
/// fails to merge a sub-message with an unset oneof (`sampling` split in two is refused).
/// Since merging two encoded messages is the same as concatenating their bytes, the
/// pieces of each split field are concatenated into one occurrence, at every depth, and
/// protobuf-c then sees each message field once.
enum MessageMerge {
    /// The bytes with every split message field merged; nil when no field is split (the
    /// usual case, found by one walk without allocating) or when the bytes are not well
    /// formed (protobuf-c then refuses them as they are).
    static func merged(
        _ bytes: UnsafeRawBufferPointer,
        descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    ) -> [UInt8]? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        guard hasSplitField(p, bytes.count, descriptor, depth: 0) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        guard canonical(p, bytes.count, descriptor, depth: 0, into: &out) else { return nil }
        return out
    }

    /// Deeper than this, bytes are left as they are (protobuf-c has its own limit).
    static let maxDepth = 64

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// The message descriptor of a length-delimited field that holds a message, and
    /// whether the field is repeated.
    static func messageField(
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, _ number: UInt32
    ) -> (field: UnsafePointer<ProtobufCFieldDescriptor>, nested: UnsafePointer<ProtobufCMessageDescriptor>)? {
        guard let field = protobuf_c_message_descriptor_get_field(descriptor, number),
              field.pointee.type == PROTOBUF_C_TYPE_MESSAGE,
              let nested = field.pointee.descriptor
        else { return nil }
        return (field, nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self))
    }

    static func isRepeated(_ field: UnsafePointer<ProtobufCFieldDescriptor>) -> Bool {
        field.pointee.label == PROTOBUF_C_LABEL_REPEATED
    }

    /// Whether a non-repeated message field occurs twice in one message, at any depth.
    static func hasSplitField(
        _ p: UnsafePointer<UInt8>, _ count: Int,
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, depth: Int
    ) -> Bool {
        guard depth < maxDepth else { return false }
        var seen: UInt64 = 0
        var seenHigh: [UInt32] = []
        var i = 0
        while i < count {
            guard let entry = PackedFields.entry(p, count, at: &i) else { return false }
            guard entry.wireType == 2, let (field, nested) = messageField(descriptor, entry.number) else { continue }
            if !isRepeated(field) {
                if entry.number < 64 {
                    let bit = UInt64(1) << UInt64(entry.number)
                    if seen & bit != 0 { return true }
                    seen |= bit
                } else {
                    if seenHigh.contains(entry.number) { return true }
                    seenHigh.append(entry.number)
                }
            }
            if hasSplitField(p + entry.valueStart, entry.end - entry.valueStart, nested, depth: depth + 1) { return true }
        }
        return false
    }

    /// Appends the message with each non-repeated message field written once, at the place
    /// of its last piece, holding the merge of its pieces; false on malformed bytes.
    static func canonical(
        _ p: UnsafePointer<UInt8>, _ count: Int,
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, depth: Int,
        into out: inout [UInt8]
    ) -> Bool {
        guard depth < maxDepth else {
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: count))
            return true
        }
        var entries: [PackedFields.Entry] = []
        var i = 0
        while i < count {
            guard let entry = PackedFields.entry(p, count, at: &i) else { return false }
            entries.append(entry)
        }
        // The pieces of each non-repeated message field since its oneof last switched to it.
        var pieces: [UInt32: [Int]] = [:]
        // The member each oneof (named by its case offset) holds now.
        var oneofMember: [UInt32: UInt32] = [:]
        for (index, entry) in entries.enumerated() {
            guard let field = protobuf_c_message_descriptor_get_field(descriptor, entry.number) else { continue }
            if field.pointee.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 {
                let group = field.pointee.quantifier_offset
                if let current = oneofMember[group], current != entry.number { pieces[current] = nil }
                oneofMember[group] = entry.number
            }
            if entry.wireType == 2, field.pointee.type == PROTOBUF_C_TYPE_MESSAGE, !isRepeated(field) {
                pieces[entry.number, default: []].append(index)
            }
        }
        for (index, entry) in entries.enumerated() {
            guard entry.wireType == 2, let (field, nested) = messageField(descriptor, entry.number) else {
                out.append(contentsOf: UnsafeBufferPointer(start: p + entry.start, count: entry.end - entry.start))
                continue
            }
            var payload: [UInt8] = []
            if isRepeated(field) {
                guard canonical(p + entry.valueStart, entry.end - entry.valueStart, nested, depth: depth + 1, into: &payload) else { return false }
            } else {
                // Written once, where its last piece was; earlier pieces (and pieces a
                // oneof switch cleared) are dropped here.
                guard let list = pieces[entry.number], list.last == index else { continue }
                var joined: [UInt8] = []
                for piece in list {
                    let e = entries[piece]
                    joined.append(contentsOf: UnsafeBufferPointer(start: p + e.valueStart, count: e.end - e.valueStart))
                }
                let merged = joined.withUnsafeBufferPointer { buffer in
                    guard let base = buffer.baseAddress else { return true }
                    return canonical(base, buffer.count, nested, depth: depth + 1, into: &payload)
                }
                guard merged else { return false }
            }
            appendVarint(UInt64(entry.number) << 3 | 2, to: &out)
            appendVarint(UInt64(payload.count), to: &out)
            out.append(contentsOf: payload)
        }
        return true
    }
}
