import GatewayProto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds string fields holding a NUL byte in packed protobuf bytes.
///
/// protobuf-c hands a decoded string to us as a NUL-terminated `char *` without its
/// length, so a string with a 0x00 byte inside would come out silently cut at the NUL
/// (and the bytes after it never UTF-8 checked). The C struct cannot tell, so the
/// packed bytes are walked once, guided by protobuf-c's own descriptors, before they
/// are trusted: a string field (also inside nested messages and map entries) holding
/// a 0x00 byte makes the payload an error instead of a different value.
enum StringScan {
    /// The name of the first string field holding a NUL byte, or nil when there is none.
    /// Only called on bytes protobuf-c has already unpacked, so they are well formed;
    /// the walk still checks every bound and stops on anything unexpected.
    static func fieldWithNUL(
        in bytes: UnsafeRawBufferPointer,
        descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    ) -> String? {
        // Fast path: no zero byte anywhere means no string can hold one.
        guard let base = bytes.baseAddress, bytes.count > 0,
              memchr(base, 0, bytes.count) != nil else { return nil }
        return scan(base.assumingMemoryBound(to: UInt8.self), bytes.count, descriptor, depth: 0)
    }

    private static func scan(
        _ p: UnsafePointer<UInt8>, _ count: Int,
        _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>, depth: Int
    ) -> String? {
        guard depth < 64 else { return nil }
        var i = 0
        while i < count {
            guard let entry = PackedFields.entry(p, count, at: &i) else { return nil }
            guard entry.wireType == 2,
                  let field = protobuf_c_message_descriptor_get_field(descriptor, entry.number)
            else { continue }
            let start = entry.valueStart
            let length = entry.end - entry.valueStart
            switch field.pointee.type {
            case PROTOBUF_C_TYPE_STRING:
                if length > 0, memchr(p + start, 0, length) != nil {
                    return String(cString: descriptor.pointee.short_name) + "." + String(cString: field.pointee.name)
                }
            case PROTOBUF_C_TYPE_MESSAGE:
                guard let nested = field.pointee.descriptor else { continue }
                let nestedDescriptor = nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                if let found = scan(p + start, length, nestedDescriptor, depth: depth + 1) {
                    return found
                }
            default:
                continue
            }
        }
        return nil
    }
}
