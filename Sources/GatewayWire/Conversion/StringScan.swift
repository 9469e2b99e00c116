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
        func varint() -> UInt64? {
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
        while i < count {
            guard let key = varint() else { return nil }
            switch key & 7 {
            case 0: guard varint() != nil else { return nil }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let length = varint(), length <= UInt64(count - i) else { return nil }
                let start = i
                i += Int(length)
                guard key >> 3 <= UInt64(UInt32.max),
                      let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(key >> 3))
                else { continue }
                switch field.pointee.type {
                case PROTOBUF_C_TYPE_STRING:
                    if length > 0, memchr(p + start, 0, Int(length)) != nil {
                        return String(cString: descriptor.pointee.short_name) + "." + String(cString: field.pointee.name)
                    }
                case PROTOBUF_C_TYPE_MESSAGE:
                    guard let nested = field.pointee.descriptor else { continue }
                    let nestedDescriptor = nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                    if let found = scan(p + start, Int(length), nestedDescriptor, depth: depth + 1) {
                        return found
                    }
                default:
                    continue
                }
            default:
                return nil
            }
        }
        return nil
    }
}
