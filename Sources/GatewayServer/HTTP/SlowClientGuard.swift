import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes HTTP connections whose client is too slow to send a request: the head
/// must arrive within `headerTimeout` of the read that brought its first byte, the
/// body within `bodyTimeout` of the read that brought the head. A slow-loris client (a byte a second) so cannot hold a
/// connection; an idle keep-alive connection is the idle timeout's business, not
/// this one's (the clock starts at the first byte of a request).
///
/// Two handlers share one state: a raw-byte watcher at the front of the pipeline
/// (it sees a request's first byte) and this handler after the HTTP codec (it sees
/// the head, the end of the body and the end of the response). Both run on the
/// channel's event loop.
///
/// A timer is armed only when a read ends with the head or the body incomplete: a
/// request that arrives whole in one read (the common case) arms none.
final class SlowClientGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Where the connection is in its request cycle.
    final class State {
        enum Phase { case waitingForRequest, readingHead, readingBody, answering }
        var phase = Phase.waitingForRequest
        var timer: Scheduled<Void>?

        func cancelTimer() {
            timer?.cancel()
            timer = nil
        }
    }

    /// Sees raw bytes before the HTTP decoder: the first byte of a request starts its
    /// head (the clock starts when that read is over and the head is still incomplete).
    final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        let state: State

        init(state: State) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if state.phase == .waitingForRequest { state.phase = .readingHead }
            context.fireChannelRead(data)
        }
    }

    private let state = State()
    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount

    init(headerTimeout: Duration, bodyTimeout: Duration) {
        self.headerTimeout = TimeAmount(headerTimeout)
        self.bodyTimeout = TimeAmount(bodyTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.pipeline.syncOperations.addHandler(ByteWatcher(state: state), position: .first)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        state.cancelTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            state.cancelTimer()
            state.phase = .readingBody
        case .body:
            break
        case .end:
            state.cancelTimer()
            state.phase = .answering
        }
        context.fireChannelRead(data)
    }

    /// The read is over: a head or body still incomplete gets its clock.
    func channelReadComplete(context: ChannelHandlerContext) {
        if state.timer == nil {
            let timeout: TimeAmount? =
                switch state.phase {
                case .readingHead: headerTimeout
                case .readingBody: bodyTimeout
                case .waitingForRequest, .answering: nil
                }
            if let timeout {
                let channel = context.channel
                state.timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
            }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // Answered (possibly before the body was read, e.g. 413): ready for the next request.
            state.cancelTimer()
            state.phase = .waitingForRequest
        }
        context.write(data, promise: promise)
    }
}
