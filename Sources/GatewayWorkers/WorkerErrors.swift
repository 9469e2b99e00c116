import GatewayCore

/// The errors of the worker lifecycle, answered the same by REST and binary.
extension GatewayError {
    /// A change to a worker that was deleted and is draining.
    public static func workerDraining(_ id: String) -> GatewayError {
        GatewayError(
            status: 409, code: "WORKER_DRAINING",
            message: "worker \(id) is draining (deleted); it cannot be changed. Register its URL again for a new worker"
        )
    }

    /// A list filter (REST query parameter or binary field) with a value it cannot have.
    public static func invalidFilter(_ name: String, _ problem: String) -> GatewayError {
        GatewayError(status: 400, code: .invalidField, message: "filter '\(name)' \(problem)")
    }
}
