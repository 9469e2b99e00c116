/// The realistic engine's tokeniser: deterministic, stable across processes and cheap.
///
/// The rule, which every client of the sim can reproduce:
/// - a **token is a maximal run of non-whitespace bytes** (space, tab, CR, LF, VT and FF
///   separate tokens; runs of whitespace carry no token), so `"a  b\nc"` is `a`, `b`, `c`;
/// - its **id is the 64-bit FNV-1a hash of its UTF-8 bytes, shifted right by 33** (a
///   31-bit non-negative integer), the same in every process and on every machine;
/// - a token-id input (`input_ids`, a `prompt` of integers) is taken as given;
/// - **chat messages are rendered with a fixed template before tokenising**: each message
///   becomes `<|ROLE|> CONTENT <|end|>` (one token for the role marker, the content's
///   tokens, one end token), and the generation prompt `<|assistant|>` follows the last one.
///   Text parts of array content are joined by a space; other parts are ignored.
///
/// A chat history re-sent with one more turn therefore shares every token of the shorter
/// history, including the assistant's reply when the client sends back the text it got
/// (generated tokens are `tok0`, `tok1`, … words: see `SimWorker.tokenText`).
public enum SimTokenizer {
    /// The id of one token given as bytes.
    @inline(__always)
    public static func tokenID(bytes: some Sequence<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int(hash >> 33)
    }

    /// The id of one token given as text (no whitespace inside).
    public static func tokenID(_ token: String) -> Int {
        tokenID(bytes: token.utf8)
    }

    /// Appends the ids of `text`'s tokens to `ids`.
    public static func tokenize(_ text: String, into ids: inout [Int]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var inToken = false
        for byte in text.utf8 {
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D:
                if inToken {
                    ids.append(Int(hash >> 33))
                    inToken = false
                    hash = 0xcbf2_9ce4_8422_2325
                }
            default:
                inToken = true
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
        }
        if inToken { ids.append(Int(hash >> 33)) }
    }

    /// The ids of `text`'s tokens.
    public static func tokenize(_ text: String) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 4)
        tokenize(text, into: &ids)
        return ids
    }

    /// One chat message: a role and its text content.
    public struct ChatMessage: Sendable, Equatable {
        /// `system`, `user`, `assistant`, `tool`, …
        public var role: String
        /// The message's text.
        public var content: String

        /// Creates a message.
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// The end-of-message token of the chat template.
    public static let endOfMessage = "<|end|>"

    /// The marker token that opens a message of `role`.
    public static func roleMarker(_ role: String) -> String { "<|\(role)|>" }

    /// The template's text for `messages` followed by the generation prompt; tokenising
    /// it gives `tokenize(chat:)`.
    public static func render(chat messages: [ChatMessage]) -> String {
        var out = ""
        for message in messages {
            out += roleMarker(message.role)
            out += " "
            out += message.content
            out += " "
            out += endOfMessage
            out += "\n"
        }
        out += roleMarker("assistant")
        return out
    }

    /// The token ids of `messages` rendered with the chat template.
    public static func tokenize(chat messages: [ChatMessage]) -> [Int] {
        var ids: [Int] = []
        let end = tokenID(endOfMessage)
        for message in messages {
            ids.append(tokenID(roleMarker(message.role)))
            tokenize(message.content, into: &ids)
            ids.append(end)
        }
        ids.append(tokenID(roleMarker("assistant")))
        return ids
    }

    /// The id of generated token `index` of a reply whose tokens carry `tag`
    /// (`tok3@s42`): the id of the word the engine writes for it.
    public static func outputTokenID(_ index: Int, tag: String = "") -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        @inline(__always) func feed(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for byte in "tok".utf8 { feed(byte) }
        for byte in String(index).utf8 { feed(byte) }
        for byte in tag.utf8 { feed(byte) }
        return Int(hash >> 33)
    }
}
