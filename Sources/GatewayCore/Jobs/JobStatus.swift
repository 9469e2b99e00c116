/// The kind of background job tracked for a worker.
public enum JobType: String, Sendable, CaseIterable {
    case addWorker = "AddWorker"
    case updateWorker = "UpdateWorker"
    case removeWorker = "RemoveWorker"
}

/// Where a tracked job stands. A job that succeeds stops being tracked.
public enum JobState: String, Sendable, CaseIterable {
    case pending, processing, failed
    /// A removal waiting for the worker's in-flight requests to end (`in_flight` tells how many).
    case draining
}

/// The status of a worker's job, as `job_status` in WorkerInfo.
public struct JobStatus: Sendable, Equatable {
    public var jobType: JobType
    public var workerURL: String
    public var state: JobState
    public var message: String
    /// Seconds since the Unix epoch of the last change.
    public var timestamp: Int64

    public init(jobType: JobType, workerURL: String, state: JobState, message: String, timestamp: Int64) {
        self.jobType = jobType
        self.workerURL = workerURL
        self.state = state
        self.message = message
        self.timestamp = timestamp
    }
}
