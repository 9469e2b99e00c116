import Foundation
import GatewayCore
import Testing

@testable import GatewayStore

@Suite("SQLite worker store")
struct SQLiteWorkerStoreTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).sqlite").path
    }

    func fullSpec(_ url: String) throws -> WorkerSpec {
        WorkerSpec(
            url: try WorkerURL(url), modelID: "m", priority: 7, cost: 2.5, labels: ["zone": "a", "tier": "gold"],
            workerType: .prefill, runtimeType: .openai, bootstrapPort: 9000, apiKey: "sk-1",
            healthCheck: HealthCheckConfig(timeout: .seconds(3), interval: .milliseconds(1500), failureThreshold: 4, successThreshold: 5, endpoint: "/ready", disabled: true),
            maxLoad: 12
        )
    }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("The state file and its -wal and -shm files are created 0600: they hold workers' API keys")
    func privateFiles() throws {
        let path = temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try SQLiteWorkerStore(path: path)
        #expect(store.exposure == nil)
        try store.upsert(StoredWorker(id: .random(), spec: try fullSpec("http://10.0.0.9:8000"), sequence: 1))
        for suffix in ["", "-wal", "-shm"] {
            #expect(FileManager.default.fileExists(atPath: path + suffix), "no \(path + suffix)")
            let mode = try Self.mode(path + suffix)
            #expect(mode == 0o600, "\(suffix.isEmpty ? "the file" : suffix): \(String(mode, radix: 8))")
        }
    }

    @Test("An existing state file readable by others is reported, not changed")
    func exposedFileReported() throws {
        let path = temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]))
        let store = try SQLiteWorkerStore(path: path)
        #expect(store.exposure?.contains("chmod 600") == true)
        #expect(try Self.mode(path) == 0o644)
    }

    @Test("Every setting survives a close and reopen")
    func roundTrip() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let worker = StoredWorker(id: .random(), spec: try fullSpec("http://10.0.0.1:8000"), sequence: 3)
        let minimal = StoredWorker(id: .random(), spec: WorkerSpec(url: try WorkerURL("https://host")), sequence: 1)
        do {
            let store = try SQLiteWorkerStore(path: path)
            try store.upsert(worker)
            try store.upsert(minimal)
        }
        let reopened = try SQLiteWorkerStore(path: path)
        #expect(try reopened.loadAll() == [minimal, worker])
    }

    @Test("Upsert replaces; delete removes; a URL freed by a removal may come back under a new id")
    func changes() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteWorkerStore(path: path)
        let url = try WorkerURL("http://a:1")
        let first = StoredWorker(id: .random(), spec: WorkerSpec(url: url), sequence: 0)
        try store.upsert(first)
        var changed = first
        changed.spec.priority = 99
        try store.upsert(changed)
        #expect(try store.loadAll() == [changed])
        let second = StoredWorker(id: .random(), spec: WorkerSpec(url: url), sequence: 1)
        try store.upsert(second)
        #expect(try store.loadAll() == [second])
        try store.delete(second.id)
        #expect(try store.loadAll().isEmpty)
    }

    @Test("A file written by a newer schema is refused, not misread")
    func newerSchema() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try SQLiteWorkerStore(path: path)
        let database = try SQLiteDatabase(path: path)
        try database.execute("PRAGMA user_version = 99")
        #expect(throws: SQLiteError.self) { try SQLiteWorkerStore(path: path) }
    }

    @Test("A path that cannot be opened is a clear error")
    func unopenable() {
        #expect(throws: SQLiteError.self) { try SQLiteWorkerStore(path: "/nonexistent-dir/x/state.sqlite") }
    }

    @Test("Concurrent writers all land")
    func concurrent() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteWorkerStore(path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask { try store.upsert(StoredWorker(id: .random(), spec: WorkerSpec(url: try WorkerURL("http://h\(i):1")), sequence: UInt64(i))) }
            }
            try await group.waitForAll()
        }
        #expect(try store.loadAll().map(\.sequence) == Array(0..<50).map(UInt64.init))
    }
}
