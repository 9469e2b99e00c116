extension SimWorker {
    /// The text of generated token `index`: `"tok0"` for the first, `" tokN"` afterwards,
    /// so concatenating tokens `0..<n` gives `generatedText(tokenCount: n)`.
    public static func tokenText(_ index: Int) -> String {
        index == 0 ? "tok0" : " tok\(index)"
    }

    /// The id reported in `output_ids` for generated token `index`.
    public static func tokenID(_ index: Int) -> Int {
        1000 + index
    }

    /// The complete text a worker generates for `tokenCount` tokens: `"tok0 tok1 … tok{n-1}"`.
    public static func generatedText(tokenCount: Int) -> String {
        text(tokens: 0..<max(0, tokenCount))
    }

    /// How `tokenCount` tokens are split across streamed chunks: `min(chunkCount, tokenCount)`
    /// chunks, sizes as even as possible with the larger ones first, never an empty chunk.
    public static func chunkSizes(tokenCount: Int, chunkCount: Int) -> [Int] {
        let tokens = max(1, tokenCount)
        let chunks = min(max(1, chunkCount), tokens)
        let base = tokens / chunks
        let extra = tokens % chunks
        return (0..<chunks).map { $0 < extra ? base + 1 : base }
    }

    /// The number of whitespace-separated words in `text` (how the worker counts prompt tokens).
    public static func wordCount(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for byte in text.utf8 {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D:
                inWord = false
            default:
                if !inWord {
                    count += 1
                    inWord = true
                }
            }
        }
        return count
    }

    /// Tokens `tokens` concatenated; every token after the first of the whole output
    /// (index > 0) starts with a space. A non-empty `tag` follows every token
    /// (`tok3@s42`): see `InferenceRequest.tag`.
    static func text(tokens: Range<Int>, tag: String = "") -> String {
        var out = ""
        out.reserveCapacity(tokens.count * (7 + tag.utf8.count))
        for i in tokens {
            if i > 0 { out += " " }
            out += "tok"
            out += String(i)
            out += tag
        }
        return out
    }

    /// The echo tag of a prompt: its first word when that word starts with `@`, else "".
    static func tag(ofPrompt prompt: String) -> String {
        guard prompt.utf8.first == UInt8(ascii: "@") else { return "" }
        return String(prompt.prefix { !$0.isWhitespace })
    }

    /// A deterministic unit vector of `embeddingDimensions` floats for `input`.
    static func embedding(for input: String) -> [Double] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in input.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        var values = [Double](repeating: 0, count: embeddingDimensions)
        var seed = hash
        var norm = 0.0
        for i in 0..<embeddingDimensions {
            // splitmix64
            seed &+= 0x9e37_79b9_7f4a_7c15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            z ^= z >> 31
            let v = Double(z >> 11) / Double(1 << 53) * 2 - 1
            values[i] = v
            norm += v * v
        }
        let scale = norm > 0 ? 1 / norm.squareRoot() : 0
        for i in 0..<embeddingDimensions {
            // Round so the JSON stays short and stable.
            values[i] = (values[i] * scale * 1_000_000).rounded() / 1_000_000
        }
        return values
    }

    /// Length of the vectors `/v1/embeddings` returns.
    public static let embeddingDimensions = 8

    /// Relevance of `document` to `query`: the share of the query's distinct
    /// (lower-cased) words that occur in the document, in 0...1.
    static func relevance(queryWords: Set<Substring>, document: String) -> Double {
        guard !queryWords.isEmpty else { return 0 }
        let docWords = Set(document.lowercased().split(whereSeparator: { $0.isWhitespace }))
        let hits = queryWords.reduce(0) { $0 + (docWords.contains($1) ? 1 : 0) }
        return (Double(hits) / Double(queryWords.count) * 10_000).rounded() / 10_000
    }

    static func hexID(_ prefix: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let a = rng.next() as UInt64
        let b = rng.next() as UInt64
        return prefix + hex16(a) + hex16(b)
    }

    private static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return s.count < 16 ? String(repeating: "0", count: 16 - s.count) + s : s
    }
}
