/// Why bytes could not become a message, or a message could not become bytes.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The payload is not a valid protobuf `Envelope`.
        case malformedPayload
        /// A string field is not valid UTF-8.
        case invalidUTF8
        /// A string holds a NUL byte, which protobuf-c's C strings cannot carry.
        case embeddedNUL
        /// The frame header sets the compressed bit (not supported).
        case compressedFrame
        /// The frame header sets reserved flag bits.
        case reservedFlags
        /// The frame announces a payload longer than the limit.
        case frameTooLarge
    }

    public let kind: Kind
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// Whether the connection can go on after this error (payload errors concern one
    /// stream; header errors leave the byte stream unsynchronised).
    public var isFatalToConnection: Bool {
        switch kind {
        case .compressedFrame, .reservedFlags, .frameTooLarge: true
        case .malformedPayload, .invalidUTF8, .embeddedNUL: false
        }
    }

    public var description: String { detail }
}
