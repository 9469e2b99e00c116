/// An approximate record of which worker has seen which prompt prefixes: a radix
/// tree over prompt bytes where each node lists the workers ("tenants") whose
/// recent prompts pass through it, with the time each last did.
///
/// A tenant present at a node is present at every ancestor, so the longest prefix
/// a set of workers shares with a new prompt is found in one walk down. Memory is
/// bounded per tenant (bytes of prompt text attributed to it): `evict` drops a
/// tenant's least recently used leaves until it fits.
public struct PrefixTree: Sendable {
    final class Node: @unchecked Sendable {
        // @unchecked: nodes are only touched by the tree that owns them, and a tree is
        // only used under its owner's lock (see CacheAwarePolicy).
        var edge: [UInt8]
        var children: [UInt8: Node] = [:]
        var tenants: [WorkerID: UInt64] = [:]

        init(edge: [UInt8]) { self.edge = edge }
    }

    private var root = Node(edge: [])
    private var clock: UInt64 = 0
    /// Prompt bytes attributed to each tenant.
    public private(set) var sizes: [WorkerID: Int] = [:]

    public init() {}

    /// The number of bytes attributed to `tenant`.
    public func size(of tenant: WorkerID) -> Int { sizes[tenant] ?? 0 }

    /// Records that `tenant` just served `text`.
    public mutating func insert(_ text: some Collection<UInt8>, tenant: WorkerID) {
        clock += 1
        let now = clock
        let bytes = Array(text)
        var node = root
        node.tenants[tenant] = now
        if sizes[tenant] == nil { sizes[tenant] = 0 }
        var index = 0
        while index < bytes.count {
            guard let child = node.children[bytes[index]] else {
                let leaf = Node(edge: Array(bytes[index...]))
                leaf.tenants[tenant] = now
                node.children[bytes[index]] = leaf
                sizes[tenant, default: 0] += leaf.edge.count
                return
            }
            let common = Self.commonPrefix(child.edge, bytes, from: index)
            let next: Node
            if common < child.edge.count {
                // Split: a new node for the shared part, the old child below it.
                let middle = Node(edge: Array(child.edge[..<common]))
                middle.tenants = child.tenants
                child.edge.removeFirst(common)
                middle.children[child.edge[0]] = child
                node.children[bytes[index]] = middle
                next = middle
            } else {
                next = child
            }
            if next.tenants.updateValue(now, forKey: tenant) == nil {
                sizes[tenant, default: 0] += next.edge.count
            }
            index += next.edge.count
            node = next
        }
    }

    /// The longest prefix of `text` some tenant in `allowed` has served, and the
    /// allowed tenants that served it. `(0, [])` when none shares even one byte.
    public func longestMatch(_ text: some Collection<UInt8>, among allowed: Set<WorkerID>) -> (length: Int, tenants: [WorkerID]) {
        let bytes = Array(text)
        var node = root
        var index = 0
        var best: (length: Int, node: Node?) = (0, nil)
        // Walk down while some allowed worker holds the path; the holders are listed
        // once, for the deepest such node (not at every level: a node near the root
        // lists nearly every worker).
        while index < bytes.count, let child = node.children[bytes[index]] {
            if !child.tenants.keys.contains(where: allowed.contains) { break }
            let common = Self.commonPrefix(child.edge, bytes, from: index)
            best = (index + common, child)
            if common < child.edge.count { break }
            index += common
            node = child
        }
        guard let holder = best.node else { return (0, []) }
        return (best.length, holder.tenants.keys.filter { allowed.contains($0) })
    }

    /// Drops `tenant` from the tree.
    public mutating func remove(tenant: WorkerID) {
        Self.removeAll(tenant, from: root)
        root.tenants.removeValue(forKey: tenant)
        sizes.removeValue(forKey: tenant)
    }

    /// Evicts `tenant`'s least recently used leaves until it holds at most `limit` bytes.
    public mutating func evict(tenant: WorkerID, downTo limit: Int) {
        while size(of: tenant) > limit {
            var leaves: [(parent: Node, key: UInt8, node: Node, time: UInt64)] = []
            Self.collectLeaves(of: tenant, under: root, into: &leaves)
            guard !leaves.isEmpty else { break }
            leaves.sort { $0.time < $1.time }
            for leaf in leaves {
                guard size(of: tenant) > limit else { break }
                leaf.node.tenants.removeValue(forKey: tenant)
                sizes[tenant, default: 0] -= leaf.node.edge.count
                if leaf.node.tenants.isEmpty && leaf.node.children.isEmpty {
                    leaf.parent.children.removeValue(forKey: leaf.key)
                }
            }
        }
        if size(of: tenant) <= 0, sizes[tenant] != nil, root.children.values.allSatisfy({ $0.tenants[tenant] == nil }) {
            sizes.removeValue(forKey: tenant)
            root.tenants.removeValue(forKey: tenant)
        }
    }

    /// Every tenant with bytes in the tree.
    public var tenants: [WorkerID] { Array(sizes.keys) }

    // MARK: Helpers

    private static func commonPrefix(_ edge: [UInt8], _ bytes: [UInt8], from start: Int) -> Int {
        var n = 0
        let limit = min(edge.count, bytes.count - start)
        while n < limit && edge[n] == bytes[start + n] { n += 1 }
        return n
    }

    private static func collectLeaves(of tenant: WorkerID, under node: Node, into leaves: inout [(parent: Node, key: UInt8, node: Node, time: UInt64)]) {
        for (key, child) in node.children {
            guard let time = child.tenants[tenant] else { continue }
            if child.children.values.contains(where: { $0.tenants[tenant] != nil }) {
                collectLeaves(of: tenant, under: child, into: &leaves)
            } else {
                leaves.append((node, key, child, time))
            }
        }
    }

    private static func removeAll(_ tenant: WorkerID, from node: Node) {
        for (key, child) in node.children where child.tenants[tenant] != nil {
            removeAll(tenant, from: child)
            child.tenants.removeValue(forKey: tenant)
            if child.tenants.isEmpty && child.children.isEmpty {
                node.children.removeValue(forKey: key)
            }
        }
    }
}
