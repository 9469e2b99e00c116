import GatewayCore
import GatewayJSON
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The registry's durable store: one SQLite file in WAL mode with
/// `synchronous=FULL`, so every acknowledged change survives a crash of the
/// process (and of the machine), and a change is either all there or not at all.
///
/// One row per worker: id, URL, registration order, and its settings as a JSON
/// document (new settings need no schema migration). The file's `user_version`
/// tells the schema version.
public final class SQLiteWorkerStore: WorkerStore {
    static let schemaVersion: Int64 = 1
    private let database: Mutex<SQLiteDatabase>
    public let path: String

    /// Set when the file existed with permissions that let other users read it (it holds
    /// the workers' API keys): the gateway warns; it does not change an operator's file.
    public let exposure: String?

    public init(path: String) throws {
        self.path = path
        self.exposure = try Self.createPrivately(path)
        let database = try SQLiteDatabase(path: path)
        try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        let version = try database.run("PRAGMA user_version").first?.first
        if case .integer(let existing) = version, existing > Self.schemaVersion {
            throw SQLiteError(code: 0, message: "\(path) was written by a newer gateway (schema \(existing), this one knows \(Self.schemaVersion))")
        }
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS workers (
                id TEXT PRIMARY KEY NOT NULL,
                url TEXT NOT NULL UNIQUE,
                sequence INTEGER NOT NULL,
                spec TEXT NOT NULL
            );
            PRAGMA user_version = \(Self.schemaVersion);
            """
        )
        self.database = Mutex(database)
    }

    /// A new state file is created 0600 before SQLite opens it; SQLite gives its `-wal`
    /// and `-shm` files the database file's permissions, so all three are private.
    /// Returns a warning for an existing file that group or others can read.
    private static func createPrivately(_ path: String) throws -> String? {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
            return nil
        }
        guard errno == EEXIST else {
            throw SQLiteError(code: 0, message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 != 0 else { return nil }
        return "\(path) is readable by other users (mode \(String(mode, radix: 8))) and holds workers' API keys; chmod 600 it and its -wal and -shm files"
    }

    public func loadAll() throws -> [StoredWorker] {
        let rows = try database.withLock { try $0.run("SELECT id, sequence, spec FROM workers ORDER BY sequence") }
        return try rows.map { row in
            guard row.count == 3, case .text(let idText) = row[0], let id = WorkerID(idText),
                case .integer(let sequence) = row[1], case .text(let specText) = row[2]
            else { throw SQLiteError(code: 0, message: "a row of \(path) is damaged") }
            return StoredWorker(id: id, spec: try WorkerSpecCodec.decode(specText), sequence: UInt64(sequence))
        }
    }

    public func upsert(_ worker: StoredWorker) throws {
        let spec = WorkerSpecCodec.encode(worker.spec)
        try database.withLock { database in
            try database.transaction {
                // A URL freed by a removal may come back under a new id: drop any stale row for it first.
                try database.run("DELETE FROM workers WHERE url = ?1 AND id <> ?2", [.text(worker.spec.url.description), .text(worker.id.description)])
                try database.run(
                    """
                    INSERT INTO workers (id, url, sequence, spec) VALUES (?1, ?2, ?3, ?4)
                    ON CONFLICT(id) DO UPDATE SET url = excluded.url, sequence = excluded.sequence, spec = excluded.spec
                    """,
                    [.text(worker.id.description), .text(worker.spec.url.description), .integer(Int64(worker.sequence)), .text(spec)]
                )
            }
        }
    }

    public func delete(_ id: WorkerID) throws {
        try database.withLock { try $0.run("DELETE FROM workers WHERE id = ?1", [.text(id.description)]) }
    }
}

/// WorkerSpec as JSON (keys named as the REST API names them).
enum WorkerSpecCodec {
    static func encode(_ spec: WorkerSpec) -> String {
        var json = JSONWriter()
        json.beginObject()
        json.field("url", spec.url.description)
        if let modelID = spec.modelID { json.field("model_id", modelID) }
        json.field("priority", spec.priority)
        json.field("cost", spec.cost)
        json.key("labels")
        json.beginObject()
        for key in spec.labels.keys.sorted() { json.field(key, spec.labels[key]!) }
        json.endObject()
        json.field("worker_type", spec.workerType.rawValue)
        if let runtime = spec.runtimeType { json.field("runtime_type", runtime.rawValue) }
        if let port = spec.bootstrapPort { json.field("bootstrap_port", port) }
        if let key = spec.apiKey { json.field("api_key", key) }
        if let maxLoad = spec.maxLoad { json.field("max_load", maxLoad) }
        let health = spec.healthCheck
        json.key("health_check")
        json.beginObject()
        json.field("timeout_ms", Int64(health.timeout.seconds * 1000))
        json.field("interval_ms", Int64(health.interval.seconds * 1000))
        json.field("failure_threshold", health.failureThreshold)
        json.field("success_threshold", health.successThreshold)
        json.field("endpoint", health.endpoint)
        json.field("disabled", health.disabled)
        json.endObject()
        json.endObject()
        return json.string
    }

    static func decode(_ text: String) throws -> WorkerSpec {
        guard let object = try JSONParser.parse(text).objectValue, let url = object["url"]?.stringValue else {
            throw SQLiteError(code: 0, message: "a stored worker has no url")
        }
        var spec = WorkerSpec(url: try WorkerURL(url))
        spec.modelID = object["model_id"]?.stringValue
        if let priority = object["priority"]?.intValue { spec.priority = UInt32(clamping: priority) }
        if let cost = object["cost"]?.doubleValue { spec.cost = cost }
        spec.labels = (object["labels"]?.objectValue).map { labels in
            Dictionary(uniqueKeysWithValues: labels.compactMap { key, value in value.stringValue.map { (key, $0) } })
        } ?? [:]
        spec.workerType = object["worker_type"]?.stringValue.flatMap(WorkerType.init(rawValue:)) ?? .regular
        spec.runtimeType = object["runtime_type"]?.stringValue.flatMap(RuntimeType.init(rawValue:))
        spec.bootstrapPort = object["bootstrap_port"]?.intValue.flatMap { UInt16(exactly: $0) }
        spec.apiKey = object["api_key"]?.stringValue
        spec.maxLoad = object["max_load"]?.intValue.map { Int($0) }
        if let health = object["health_check"] {
            spec.healthCheck = HealthCheckConfig(
                timeout: .milliseconds(health["timeout_ms"]?.intValue ?? 5000),
                interval: .milliseconds(health["interval_ms"]?.intValue ?? 60000),
                failureThreshold: Int(health["failure_threshold"]?.intValue ?? 3),
                successThreshold: Int(health["success_threshold"]?.intValue ?? 2),
                endpoint: health["endpoint"]?.stringValue ?? "/health",
                disabled: health["disabled"]?.boolValue ?? false
            )
        }
        return spec
    }
}
