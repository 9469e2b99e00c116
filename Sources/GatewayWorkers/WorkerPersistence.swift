import GatewayCore
import NIOPosix
import Synchronization

/// Applies registry changes and writes them to the durable store, in one order.
///
/// A change and its write happen under one lock, so the store sees changes in the
/// order the registry made them (two quick PUTs cannot land reversed), and the
/// gateway acknowledges a change only after its write returned. With a durable store
/// the work runs on NIO's blocking thread pool (an fsync never holds a cooperative
/// thread); without one (`NoWorkerStore`) it runs in place.
final class WorkerPersistence: Sendable {
    let store: any WorkerStore
    private let order = Mutex(())

    init(store: any WorkerStore) {
        self.store = store
    }

    func perform<T: Sendable>(_ body: @escaping @Sendable (any WorkerStore) throws -> T) async throws(GatewayError) -> T {
        do {
            guard store.isDurable else {
                return try order.withLock { _ in try body(store) }
            }
            return try await NIOThreadPool.singleton.runIfActive { [self] in
                try self.order.withLock { _ in try body(self.store) }
            }
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.storageError("\(error)")
        }
    }
}
