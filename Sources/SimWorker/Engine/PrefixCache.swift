/// A KV prefix cache in fixed-size blocks, as vLLM's and SGLang's (paged) caches keep it.
///
/// - A full block of `blockSize` tokens has a **key chained to its parent's**: the hash of
///   the parent block's key and the block's token ids, so a block only matches when every
///   token before it matches too (a block-hash chain). Partial blocks are never cached.
/// - Capacity is counted in blocks: cached blocks (in the table) plus **private** blocks
///   that running requests hold for tokens not cached yet (their partial tail, decode).
/// - A cached block is **pinned** while a running request uses it and cannot be evicted;
///   an unpinned one sits in an LRU list and is evicted, least recently used first, when
///   space is needed. A request releases its chain last block first, so a chain's tail
///   is evicted before its head (its head is what other requests share).
///
/// A value type with no clock: the engine's state machine drives it.
public struct PrefixCache: Sendable {
    /// Tokens per block.
    public let blockSize: Int
    /// Blocks the cache can hold (cached and private together).
    public let capacityBlocks: Int

    private var slotOf: [UInt64: Int32] = [:]
    private var keys: [UInt64] = []
    private var refCounts: [Int32] = []
    private var prev: [Int32] = []
    private var next: [Int32] = []
    private var freeSlots: [Int32] = []
    private var lruHead: Int32 = -1
    private var lruTail: Int32 = -1
    /// Unpinned cached blocks (the LRU list's length).
    public private(set) var evictableBlocks = 0
    /// Blocks held by running requests that are not (yet) in the table.
    public private(set) var privateBlocks = 0
    /// Blocks evicted since creation.
    public private(set) var evictions = 0

    /// Creates an empty cache of `capacityBlocks` blocks of `blockSize` tokens.
    public init(blockSize: Int = 16, capacityBlocks: Int) {
        precondition(blockSize > 0 && capacityBlocks >= 0)
        self.blockSize = blockSize
        self.capacityBlocks = capacityBlocks
    }

    // MARK: Keys

    /// The chain key of a block of `tokens` whose parent block has key `parent`
    /// (`rootKey` for the first block).
    public static func chainKey(parent: UInt64, tokens: some Sequence<Int>) -> UInt64 {
        var hash = parent ^ 0x9e37_79b9_7f4a_7c15
        for token in tokens {
            var v = UInt64(bitPattern: Int64(token))
            for _ in 0..<8 {
                hash ^= v & 0xff
                hash &*= 0x0000_0100_0000_01b3
                v >>= 8
            }
        }
        // SplitMix64 finalizer: spreads the FNV state over all bits.
        var z = hash &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The parent key of a chain's first block.
    public static let rootKey: UInt64 = 0

    /// Keys of the full blocks of `tokens`, continuing the chain after `parent`.
    public static func blockKeys(_ tokens: ArraySlice<Int>, blockSize: Int, parent: UInt64 = rootKey) -> [UInt64] {
        let count = tokens.count / blockSize
        var out: [UInt64] = []
        out.reserveCapacity(count)
        var key = parent
        var start = tokens.startIndex
        for _ in 0..<count {
            key = chainKey(parent: key, tokens: tokens[start..<(start + blockSize)])
            out.append(key)
            start += blockSize
        }
        return out
    }

    // MARK: Observation

    /// Blocks in the table (pinned or not).
    public var cachedBlocks: Int { slotOf.count }

    /// Blocks no running request can lose: pinned cached blocks plus private ones.
    public var usedBlocks: Int { slotOf.count - evictableBlocks + privateBlocks }

    /// Blocks a new reservation can take: empty space plus evictable blocks.
    public var availableBlocks: Int { capacityBlocks - usedBlocks }

    /// Whether `key` is in the table.
    public func contains(_ key: UInt64) -> Bool { slotOf[key] != nil }

    /// How many requests pin `key` (0 when unpinned or absent).
    public func pins(_ key: UInt64) -> Int {
        guard let slot = slotOf[key] else { return 0 }
        return Int(refCounts[Int(slot)])
    }

    /// The unpinned blocks, least recently used first (the eviction order).
    public var evictionOrder: [UInt64] {
        var out: [UInt64] = []
        var slot = lruHead
        while slot >= 0 {
            out.append(keys[Int(slot)])
            slot = next[Int(slot)]
        }
        return out
    }

    // MARK: Operations

    /// How many of `keys`, from the first, are in the table (stops at the first miss).
    public func matchLength(_ keys: some Collection<UInt64>) -> Int {
        var n = 0
        for key in keys {
            guard slotOf[key] != nil else { break }
            n += 1
        }
        return n
    }

    /// Pins blocks already in the table (a request starts using them).
    public mutating func pin(_ keys: some Sequence<UInt64>) {
        for key in keys {
            guard let slot = slotOf[key] else { continue }
            pinSlot(slot)
        }
    }

    /// Unpins blocks; those no request uses any more join the LRU list, the last
    /// of `keys` first so the chain's head stays longest.
    public mutating func unpin(_ keys: [UInt64]) {
        for key in keys.reversed() {
            guard let slot = slotOf[key] else { continue }
            let i = Int(slot)
            guard refCounts[i] > 0 else { continue }
            refCounts[i] -= 1
            if refCounts[i] == 0 { appendLRU(slot) }
        }
    }

    /// Reserves `count` private blocks, evicting unpinned blocks as needed; false (and
    /// nothing changes) when pinned and private blocks leave too little room.
    public mutating func reservePrivate(_ count: Int) -> Bool {
        guard count <= availableBlocks else { return false }
        while capacityBlocks - slotOf.count - privateBlocks < count {
            evictOne()
        }
        privateBlocks += count
        return true
    }

    /// Gives back `count` private blocks.
    public mutating func releasePrivate(_ count: Int) {
        privateBlocks = max(0, privateBlocks - count)
    }

    /// Turns one private block into the cached block `key`, pinned by its owner. When
    /// another request cached the same block meanwhile, that one is pinned instead and
    /// the private block is given back.
    public mutating func commit(_ key: UInt64) {
        privateBlocks = max(0, privateBlocks - 1)
        if let slot = slotOf[key] {
            pinSlot(slot)
            return
        }
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            keys[Int(slot)] = key
            refCounts[Int(slot)] = 1
            prev[Int(slot)] = -1
            next[Int(slot)] = -1
        } else {
            slot = Int32(keys.count)
            keys.append(key)
            refCounts.append(1)
            prev.append(-1)
            next.append(-1)
        }
        slotOf[key] = slot
    }

    /// Drops every unpinned block (SGLang's `/flush_cache`); returns how many.
    @discardableResult
    public mutating func flushUnpinned() -> Int {
        var dropped = 0
        while lruHead >= 0 {
            evictOne(counting: false)
            dropped += 1
        }
        return dropped
    }

    // MARK: Internals

    private mutating func pinSlot(_ slot: Int32) {
        let i = Int(slot)
        if refCounts[i] == 0 { removeLRU(slot) }
        refCounts[i] += 1
    }

    private mutating func evictOne(counting: Bool = true) {
        let slot = lruHead
        precondition(slot >= 0, "eviction with nothing evictable")
        removeLRU(slot)
        slotOf[keys[Int(slot)]] = nil
        freeSlots.append(slot)
        if counting { evictions += 1 }
    }

    private mutating func appendLRU(_ slot: Int32) {
        let i = Int(slot)
        prev[i] = lruTail
        next[i] = -1
        if lruTail >= 0 { next[Int(lruTail)] = slot } else { lruHead = slot }
        lruTail = slot
        evictableBlocks += 1
    }

    private mutating func removeLRU(_ slot: Int32) {
        let i = Int(slot)
        let p = prev[i]
        let n = next[i]
        if p >= 0 { next[Int(p)] = n } else { lruHead = n }
        if n >= 0 { prev[Int(n)] = p } else { lruTail = p }
        prev[i] = -1
        next[i] = -1
        evictableBlocks -= 1
    }
}
