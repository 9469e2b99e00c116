import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes HTTP connections whose client is too slow to send a request: the head
/// must arrive within `headerTimeout` of its first byte, the body within
/// `bodyTimeout` of the head. A slow-loris client (a byte a second) so cannot hold a
/// connection; an idle keep-alive connection is the idle timeout's business, not
/// this one's (the clock starts at the first byte of a request).
///
/// Two handlers share one state: a raw-byte watcher at the front of the pipeline
/// (it sees a request's first byte) and this handler after the HTTP codec (it sees
/// the head, the end of the body and the end of the response). Both run on the
/// channel's event loop.
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

    /// Sees raw bytes before the HTTP decoder: the first byte of a request starts the head clock.
    final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        let state: State
        let headerTimeout: TimeAmount

        init(state: State, headerTimeout: TimeAmount) {
            self.state = state
            self.headerTimeout = headerTimeout
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if state.phase == .waitingForRequest {
                state.phase = .readingHead
                let channel = context.channel
                state.timer = context.eventLoop.scheduleTask(in: headerTimeout) {
                    channel.close(promise: nil)
                }
            }
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
        try? context.pipeline.syncOperations.addHandler(ByteWatcher(state: state, headerTimeout: headerTimeout), position: .first)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        state.cancelTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            state.cancelTimer()
            state.phase = .readingBody
            let channel = context.channel
            state.timer = context.eventLoop.scheduleTask(in: bodyTimeout) {
                channel.close(promise: nil)
            }
        case .body:
            break
        case .end:
            state.cancelTimer()
            state.phase = .answering
        }
        context.fireChannelRead(data)
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
