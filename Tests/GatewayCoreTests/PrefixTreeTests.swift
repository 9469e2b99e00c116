import Testing

@testable import GatewayCore

@Suite("Prefix tree")
struct PrefixTreeTests {
    let a = WorkerID.random()
    let b = WorkerID.random()

    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test("The longest shared prefix and its holders are found")
    func longestMatch() {
        var tree = PrefixTree()
        tree.insert(bytes("system: you are helpful. user: what is rust?"), tenant: a)
        tree.insert(bytes("system: you are helpful. user: what is swift?"), tenant: b)
        let both = Set([a, b])
        let match = tree.longestMatch(bytes("system: you are helpful. user: what is swift? and nio"), among: both)
        #expect(match.length == "system: you are helpful. user: what is swift?".utf8.count)
        #expect(match.tenants == [b])
        let shared = tree.longestMatch(bytes("system: you are helpful. user: who"), among: both)
        #expect(shared.length == "system: you are helpful. user: wh".utf8.count)
        #expect(Set(shared.tenants) == both)
        #expect(tree.longestMatch(bytes("nothing alike"), among: both).length == 0)
        // Only allowed tenants count.
        let onlyA = tree.longestMatch(bytes("system: you are helpful. user: what is swift?"), among: [a])
        #expect(onlyA.tenants == [a])
        #expect(onlyA.length == "system: you are helpful. user: what is ".utf8.count)
    }

    @Test("Sizes count each tenant's distinct bytes; splits do not change them")
    func sizes() {
        var tree = PrefixTree()
        tree.insert(bytes("abcdef"), tenant: a)
        #expect(tree.size(of: a) == 6)
        tree.insert(bytes("abcxyz"), tenant: a)
        #expect(tree.size(of: a) == 9)
        tree.insert(bytes("abcdef"), tenant: a)
        #expect(tree.size(of: a) == 9)
        tree.insert(bytes("abc"), tenant: b)
        #expect(tree.size(of: b) == 3)
        #expect(tree.size(of: a) == 9)
    }

    @Test("Eviction drops the least recently used leaves down to the limit")
    func eviction() {
        var tree = PrefixTree()
        tree.insert(bytes("old-prompt-one"), tenant: a)
        tree.insert(bytes("new-prompt-two"), tenant: a)
        tree.insert(bytes("new-prompt-two"), tenant: a)  // touch again
        let before = tree.size(of: a)
        tree.evict(tenant: a, downTo: before - 1)
        #expect(tree.size(of: a) <= before - 1)
        #expect(tree.longestMatch(bytes("new-prompt-two"), among: [a]).length == "new-prompt-two".utf8.count)
        #expect(tree.longestMatch(bytes("old-prompt-one"), among: [a]).length < "old-prompt-one".utf8.count)
        tree.evict(tenant: a, downTo: 0)
        #expect(tree.size(of: a) == 0)
        #expect(tree.longestMatch(bytes("new-prompt-two"), among: [a]).length == 0)
    }

    @Test("Removing a tenant leaves the others intact")
    func removal() {
        var tree = PrefixTree()
        tree.insert(bytes("shared prefix then a"), tenant: a)
        tree.insert(bytes("shared prefix then b"), tenant: b)
        tree.remove(tenant: a)
        #expect(tree.size(of: a) == 0)
        #expect(tree.tenants == [b])
        #expect(tree.longestMatch(bytes("shared prefix then b"), among: [a, b]).tenants == [b])
        #expect(tree.longestMatch(bytes("shared prefix then a"), among: [a, b]).length == "shared prefix then ".utf8.count)
    }

    @Test("Many prompts stay consistent with a brute-force model")
    func matchesBruteForce() {
        var tree = PrefixTree()
        var generator = SystemRandomNumberGenerator()
        let tenants = (0..<4).map { _ in WorkerID.random() }
        var seen: [(text: [UInt8], tenant: WorkerID)] = []
        let alphabet = Array("ab ".utf8)
        for _ in 0..<300 {
            let length = Int.random(in: 1...12, using: &generator)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let tenant = tenants.randomElement(using: &generator)!
            tree.insert(text, tenant: tenant)
            seen.append((text, tenant))
        }
        for _ in 0..<200 {
            let length = Int.random(in: 1...14, using: &generator)
            let query = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            var best = 0
            var holders = Set<WorkerID>()
            for (text, tenant) in seen {
                var n = 0
                while n < min(text.count, query.count) && text[n] == query[n] { n += 1 }
                if n > best {
                    best = n
                    holders = [tenant]
                } else if n == best && n > 0 {
                    holders.insert(tenant)
                }
            }
            let match = tree.longestMatch(query, among: Set(tenants))
            #expect(match.length == best)
            #expect(Set(match.tenants) == holders)
        }
    }
}
