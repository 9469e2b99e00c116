/// Cuts a prompt's text into blocks and names each block by a hash of everything up to its
/// end (a block-hash chain), so two prompts share their first `k` chain hashes exactly when
/// they share their first `k` blocks.
///
/// The gateway has no tokenizer; the rule only has to be cheap, deterministic (every gateway
/// replica, every process, every machine computes the same chain) and cut where an engine's
/// prefix cache would keep or lose a block. It follows the tokenisation the realistic sim
/// engine documents (`SimTokenizer`), and a word is roughly a token for real engines too:
///
/// - a **word** is a maximal run of non-whitespace bytes (space, tab, CR, LF, VT and FF
///   separate words; how much whitespace does not matter, as for the engine);
/// - a **block** is 16 words (`wordsPerBlock`, the engine's 16-token KV block), or fewer when
///   its words reach `maxBlockBytes` bytes (text without spaces, such as CJK, still gets
///   blocks: a cut inside a word there);
/// - a block counts only once it is **complete**: its last word ended by whitespace (a word
///   at the very end of the text might continue in a longer prompt) or the byte cap reached.
///   The incomplete tail never matches, as an engine's partial block is not shared;
/// - the chain hash of block `i` is FNV-1a 64 over the words of blocks `0…i` (one separator
///   byte between words), through SplitMix64's finaliser.
public enum PromptBlocks {
    /// Words per block.
    public static let wordsPerBlock = 16
    /// Bytes of word text after which a block ends even inside a word.
    public static let maxBlockBytes = 256

    /// The chain hashes of `text`'s complete blocks, at most `limit` of them.
    public static func chain(_ text: some Collection<UInt8>, limit: Int = 4096) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(min(limit, text.count / 64 + 1))
        var hash = fnvOffset
        var words = 0
        var bytes = 0
        var inWord = false
        /// Ends the current block; true once `limit` blocks are out.
        @inline(__always) func closeBlock() -> Bool {
            out.append(RoutingRandom.mix(hash))
            words = 0
            bytes = 0
            return out.count == limit
        }
        for byte in text {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D:
                guard inWord else { continue }
                inWord = false
                words += 1
                if words == wordsPerBlock, closeBlock() { return out }
                hash = fnv1a(hash, 0x20)
            default:
                inWord = true
                hash = fnv1a(hash, byte)
                bytes += 1
                if bytes == maxBlockBytes {
                    if closeBlock() { return out }
                    // The word goes on into the next block: a cut, not a separator.
                    hash = fnv1a(hash, 0xFF)
                }
            }
        }
        return out
    }

    /// A key for text too short to have a complete block (the whole text hashed).
    public static func wholeTextKey(_ text: some Collection<UInt8>) -> UInt64 {
        RoutingRandom.mix(text.reduce(fnvOffset, fnv1a) ^ 0x5EED)
    }

    private static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325

    /// One byte of FNV-1a 64.
    @inline(__always)
    private static func fnv1a(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }
}

/// A bounded set of block hashes with least-recently-used eviction: what one worker's KV
/// cache is believed to hold. Fixed-size arrays and an intrusive doubly linked list, so a
/// lookup is one dictionary probe and a touch moves two links.
struct BlockLRU: Sendable {
    let capacity: Int
    private var slots: [UInt64: Int32] = [:]
    private var hashes: [UInt64] = []
    private var previous: [Int32] = []
    private var next: [Int32] = []
    /// Most and least recently used slots (-1: empty).
    private var head: Int32 = -1
    private var tail: Int32 = -1

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { hashes.count }

    @inline(__always)
    func contains(_ hash: UInt64) -> Bool { slots[hash] != nil }

    /// Marks `hash` most recently used, inserting it (and evicting the least recently used
    /// block when full) if absent.
    mutating func touch(_ hash: UInt64) {
        if let slot = slots[hash] {
            moveToFront(slot)
            return
        }
        let slot: Int32
        if hashes.count < capacity {
            slot = Int32(hashes.count)
            hashes.append(hash)
            previous.append(-1)
            next.append(-1)
        } else {
            slot = tail
            unlink(slot)
            slots.removeValue(forKey: hashes[Int(slot)])
            hashes[Int(slot)] = hash
        }
        slots[hash] = slot
        pushFront(slot)
    }

    /// The blocks, most recently used first (tests).
    var orderedHashes: [UInt64] {
        var out: [UInt64] = []
        var slot = head
        while slot >= 0 {
            out.append(hashes[Int(slot)])
            slot = next[Int(slot)]
        }
        return out
    }

    private mutating func moveToFront(_ slot: Int32) {
        guard slot != head else { return }
        unlink(slot)
        pushFront(slot)
    }

    private mutating func unlink(_ slot: Int32) {
        let p = previous[Int(slot)]
        let n = next[Int(slot)]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { previous[Int(n)] = p } else { tail = p }
        previous[Int(slot)] = -1
        next[Int(slot)] = -1
    }

    private mutating func pushFront(_ slot: Int32) {
        previous[Int(slot)] = -1
        next[Int(slot)] = head
        if head >= 0 { previous[Int(head)] = slot }
        head = slot
        if tail < 0 { tail = slot }
    }
}
