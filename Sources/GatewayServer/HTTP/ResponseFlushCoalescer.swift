import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Sends a response of known length in as few socket writes as its parts allow.
///
/// The server writes a response's head, body and end as separate parts, each followed
/// by a flush: three writes to the socket (and three wake-ups of the client) for an
/// answer that fits in one. Between the parts nothing waits, so this handler holds the
/// flush after a head that announces a body (`Content-Length` > 0) and the flush after
/// the body's last byte; the next part's flush sends them together. A body of unknown
/// length (an event stream) is flushed part by part as before, head included.
final class ResponseFlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Body bytes still to come of a response with a known length.
    private var remaining: Int?
    /// Whether the last part written is certain to be followed at once by another.
    private var moreFollows = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.status.kind != .informational, let length = head.headerFields[.contentLength].flatMap(Int.init), length > 0 {
                remaining = length
                moreFollows = true
            } else {
                remaining = nil
                moreFollows = false
            }
        case .body(let buffer):
            if let left = remaining {
                let now = left - buffer.readableBytes
                remaining = now
                // The end follows the last byte; until then the body streams.
                moreFollows = now == 0
            } else {
                moreFollows = false
            }
        case .end:
            remaining = nil
            moreFollows = false
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        guard !moreFollows else { return }
        context.flush()
    }
}
