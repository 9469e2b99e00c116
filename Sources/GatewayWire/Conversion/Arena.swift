import GatewayProto

/// Owns every allocation made while building one protobuf-c message tree.
///
/// Building a C message needs many NUL-terminated strings and nested structs that
/// must outlive each `withCString` closure; the arena allocates them, the message
/// is packed, and everything is released at once when the arena goes away. Never
/// escapes the function that creates it (C pointers stay inside GatewayWire).
final class Arena {
    /// Slabs and large blocks, freed together.
    private var blocks: [UnsafeMutableRawPointer] = []
    /// The slab small allocations are cut from (bump allocation: a message of 10,000
    /// workers needs hundreds of thousands of small structs and strings).
    private var slab: UnsafeMutableRawPointer?
    private var slabUsed = 0
    private var slabCapacity = 0
    /// The next slab's size: 1 KiB first (most messages are small), doubling up to
    /// 64 KiB, below glibc's mmap threshold so slabs come from the heap.
    private var nextSlabSize = 1024
    private static let maxSlabSize = 64 * 1024
    private static let slabAlignment = 16

    init() {
        blocks.reserveCapacity(16)
    }

    deinit {
        for block in blocks { block.deallocate() }
    }

    /// Uninitialised storage for `count` values of `T`.
    func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let size = max(MemoryLayout<T>.stride * count, 1)
        let alignment = MemoryLayout<T>.alignment
        precondition(alignment <= Self.slabAlignment)
        if size > Self.maxSlabSize / 4 {
            // Large (a long pointer array): a block of its own.
            let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: alignment)
            blocks.append(raw)
            return raw.bindMemory(to: T.self, capacity: count)
        }
        var offset = (slabUsed + alignment - 1) & ~(alignment - 1)
        if slab == nil || offset + size > slabCapacity {
            let capacity = max(nextSlabSize, size)
            nextSlabSize = min(nextSlabSize * 2, Self.maxSlabSize)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: Self.slabAlignment)
            blocks.append(raw)
            slab = raw
            slabCapacity = capacity
            offset = 0
        }
        slabUsed = offset + size
        return (slab! + offset).bindMemory(to: T.self, capacity: count)
    }

    /// A message struct initialised by its generated `*__init` function.
    func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self)
        initialize(pointer)
        return pointer
    }

    /// A NUL-terminated copy of `string`. Throws when `string` holds a NUL byte.
    func string(_ string: String, field: StaticString) throws(WireError) -> UnsafeMutablePointer<CChar> {
        var string = string
        let count = string.utf8.count
        let pointer = allocate(CChar.self, count: count + 1)
        let hasNUL = string.withUTF8 { utf8 -> Bool in
            guard let base = utf8.baseAddress else { return false }
            UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: count)
            return utf8.contains(0)
        }
        if hasNUL { throw WireError(.embeddedNUL, "field \(field) contains a NUL byte") }
        pointer[count] = 0
        return pointer
    }

    /// A C array of `values` (for repeated scalar fields).
    func array<T>(_ values: [T]) -> (count: Int, pointer: UnsafeMutablePointer<T>?) {
        guard !values.isEmpty else { return (0, nil) }
        let pointer = allocate(T.self, count: values.count)
        pointer.initialize(from: values, count: values.count)
        return (values.count, pointer)
    }

    /// A C array of pointers built from `values` (repeated message and string fields).
    func pointers<Value, T>(
        _ values: [Value],
        _ make: (Value) throws(WireError) -> UnsafeMutablePointer<T>
    ) throws(WireError) -> (count: Int, pointer: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let pointer = allocate(UnsafeMutablePointer<T>?.self, count: values.count)
        for (index, value) in values.enumerated() {
            (pointer + index).initialize(to: try make(value))
        }
        return (values.count, pointer)
    }

    /// Map entries in key order, so the same map always packs to the same bytes.
    func mapEntries<Entry>(
        _ map: [String: String],
        field: StaticString,
        _ make: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<Entry>
    ) throws(WireError) -> (count: Int, pointer: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?) {
        try pointers(map.sorted { $0.key < $1.key }) { (pair: (key: String, value: String)) throws(WireError) in
            make(try string(pair.key, field: field), try string(pair.value, field: field))
        }
    }
}

/// Reading helpers for unpacked protobuf-c messages.
enum CRead {
    /// A string field of an unpacked message; validates UTF-8.
    static func string(_ pointer: UnsafePointer<CChar>?, field: StaticString) throws(WireError) -> String {
        guard let pointer else { return "" }
        guard let value = String(validatingCString: pointer) else {
            throw WireError(.invalidUTF8, "field \(field) is not valid UTF-8")
        }
        return value
    }

    static func strings(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, field: StaticString) throws(WireError) -> [String] {
        guard count > 0, let pointer else { return [] }
        var result: [String] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            result.append(try string(pointer[index], field: field))
        }
        return result
    }

    static func array<T>(_ count: Int, _ pointer: UnsafeMutablePointer<T>?) -> [T] {
        guard count > 0, let pointer else { return [] }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    static func messages<T, Value>(
        _ count: Int,
        _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?,
        _ read: (UnsafeMutablePointer<T>) throws(WireError) -> Value
    ) throws(WireError) -> [Value] {
        guard count > 0, let pointer else { return [] }
        var result: [Value] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            guard let element = pointer[index] else { continue }
            result.append(try read(element))
        }
        return result
    }

    /// Map entries; a repeated key keeps its last value (protobuf's merge rule).
    static func map<Entry>(
        _ count: Int,
        _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?,
        field: StaticString,
        _ keyValue: (UnsafeMutablePointer<Entry>) -> (UnsafePointer<CChar>?, UnsafePointer<CChar>?)
    ) throws(WireError) -> [String: String] {
        guard count > 0, let pointer else { return [:] }
        var result: [String: String] = [:]
        for index in 0..<count {
            guard let entry = pointer[index] else { continue }
            let (key, value) = keyValue(entry)
            result[try string(key, field: field)] = try string(value, field: field)
        }
        return result
    }

    static func bool(_ value: Int32) -> Bool { value != 0 }
}

extension Bool {
    /// protobuf-c's `protobuf_c_boolean`.
    var cBoolean: Int32 { self ? 1 : 0 }
}
