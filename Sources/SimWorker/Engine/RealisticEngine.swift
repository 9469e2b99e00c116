import NIOCore
import NIOPosix
import Synchronization

/// Runs an `EngineCore` in real time: one timer at a time on one event loop (the end of
/// the running step), events handed to each request's sink outside the lock. Time is
/// simulated by waiting, so a busy engine costs a few timer wake-ups a second, not CPU.
final class RealisticEngine: Sendable {
    typealias Sink = @Sendable (EngineCore.Event) -> Void

    private struct State: Sendable {
        var core: EngineCore
        var sinks: [EngineCore.RequestID: Sink] = [:]
        var nextID = 1
    }

    private let loop: any EventLoop
    private let state: Mutex<State>

    init(configuration: EngineConfiguration, loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        self.loop = loop
        self.state = Mutex(State(core: EngineCore(configuration: configuration)))
    }

    var configuration: EngineConfiguration { state.withLock { $0.core.configuration } }

    /// Queues a request; `sink` receives its events (on the engine's loop). Returns its id.
    func submit(_ submission: EngineCore.Submission, sink: @escaping Sink) -> EngineCore.RequestID {
        let now = Self.now()
        let (id, output, sinks) = state.withLock { state -> (Int, EngineCore.Output, [EngineCore.RequestID: Sink]) in
            let id = state.nextID
            state.nextID += 1
            state.sinks[id] = sink
            let output = state.core.submit(submission, id: id, now: now)
            return (id, output, Self.take(output, from: &state))
        }
        deliver(output, sinks)
        return id
    }

    /// The request's client went away.
    func cancel(_ id: EngineCore.RequestID) {
        let now = Self.now()
        let output = state.withLock { state -> EngineCore.Output in
            state.sinks[id] = nil
            return state.core.cancel(id, now: now)
        }
        deliver(output, [:])
    }

    /// Drops the unpinned cached blocks; returns how many.
    func flushCache() -> Int {
        state.withLock { $0.core.flushCache() }
    }

    /// Load and counters at this moment.
    func snapshot() -> (load: EngineLoad, counters: EngineCounters) {
        state.withLock { ($0.core.load, $0.core.counters) }
    }

    private func stepEnded() {
        let now = Self.now()
        let (output, sinks) = state.withLock { state -> (EngineCore.Output, [EngineCore.RequestID: Sink]) in
            let output = state.core.stepEnded(now: now)
            return (output, Self.take(output, from: &state))
        }
        deliver(output, sinks)
    }

    /// The sinks the output's events go to; those of ended requests are removed.
    private static func take(_ output: EngineCore.Output, from state: inout State) -> [EngineCore.RequestID: Sink] {
        var sinks: [EngineCore.RequestID: Sink] = [:]
        for event in output.events {
            switch event {
            case .firstToken(let id, _, _), .tokens(let id, _):
                if let sink = state.sinks[id] { sinks[id] = sink }
            case .finished(let id, _, _, _), .rejected(let id, _):
                if let sink = state.sinks.removeValue(forKey: id) { sinks[id] = sink }
            }
        }
        return sinks
    }

    private func deliver(_ output: EngineCore.Output, _ sinks: [EngineCore.RequestID: Sink]) {
        if let endsAt = output.nextStepEndsAt {
            loop.scheduleTask(deadline: .uptimeNanoseconds(endsAt)) { [self] in stepEnded() }
        }
        for event in output.events {
            switch event {
            case .firstToken(let id, _, _), .tokens(let id, _), .finished(let id, _, _, _), .rejected(let id, _):
                sinks[id]?(event)
            }
        }
    }

    private static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
