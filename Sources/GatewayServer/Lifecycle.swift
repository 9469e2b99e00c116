import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether the gateway is draining (readiness answers 503 from then on).
final class LifecycleState: Sendable {
    private let draining = Atomic<Bool>(false)

    var isDraining: Bool { draining.load(ordering: .relaxed) }

    func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }
}

/// Runs first in shutdown: marks the gateway as draining, and when shutdown signals
/// are in use, turns a second signal into an immediate exit (an operator who
/// presses Ctrl-C twice wants out now).
///
/// It returns as soon as the shutdown starts: the service group shuts services down
/// in reverse order and waits for each, so waiting here for the second signal would
/// keep the listeners from ever draining. The second-signal watch runs in a task of
/// its own that lives until the process exits.
struct ShutdownWatcher: Service {
    let state: LifecycleState
    let signals: [UnixSignal]
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        state.beginDraining()
        logger.notice("shutting down: no new connections; in-flight requests and streams get the grace period")
        guard !signals.isEmpty else { return }
        // The first signal started this shutdown; the next one forces it.
        let second = await UnixSignalsSequence(trapping: signals)
        let logger = logger
        Task.detached {
            for await signal in second {
                logger.warning("second \(signal): exiting now")
                exit(130)
            }
        }
    }
}
