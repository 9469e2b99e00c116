#if canImport(Glibc)
import Glibc
#endif

/// glibc allocator settings for a long-running gateway (Linux; elsewhere nothing).
/// `MALLOC_MMAP_THRESHOLD_` and `MALLOC_ARENA_MAX` in the environment still win.
enum MemoryTuning {
    static func apply() {
        #if canImport(Glibc)
        // Blocks from 128 KiB up (a GET /workers answer of megabytes, a large body) come
        // from mmap and go back to the system when freed. By default glibc raises this
        // threshold to the largest block freed so far; later large blocks then come from
        // the heap and leave it fragmented. Measured with 10,000 workers registered and
        // listed: 3.9 KB of RSS per worker by default, 1.9 KB with the fixed threshold.
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { set(mmapThreshold, 128 * 1024) }
        // Two arenas rather than eight per core: threads reuse each other's freed memory
        // instead of each growing a heap of its own.
        if getenv("MALLOC_ARENA_MAX") == nil { set(arenaMax, 2) }
        #endif
    }

    #if canImport(Glibc)
    // <malloc.h>, which the Glibc module does not import.
    private static let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
    private static let arenaMax: Int32 = -8  // M_ARENA_MAX

    private static func set(_ parameter: Int32, _ value: Int32) {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(parameter, value)
    }
    #endif
}
