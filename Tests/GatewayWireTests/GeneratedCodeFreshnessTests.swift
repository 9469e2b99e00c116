import Foundation
import Testing

/// Sources/GatewayProto is committed protoc-c output; it must be exactly what
/// scripts/gen-proto.sh makes from proto/ today.
@Suite("Generated protobuf-c code")
struct GeneratedCodeFreshnessTests {
    /// The package root: Tests/GatewayWireTests/<this file> → three levels up.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GatewayWireTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // root
        .resolvingSymlinksInPath()

    /// Regular files under `root`, as sorted relative paths.
    static func files(under root: URL) throws -> [String] {
        let root = root.resolvingSymlinksInPath()
        let fm = FileManager.default
        guard let enumerator = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        var result: [String] = []
        for case let url as URL in enumerator {
            guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
            let full = url.resolvingSymlinksInPath().path
            let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
            guard full.hasPrefix(prefix) else {
                Issue.record("\(full) is not under \(prefix)")
                continue
            }
            result.append(String(full.dropFirst(prefix.count)))
        }
        return result.sorted()
    }

    /// Runs `command` with bash in `directory`; returns the exit status and the combined output.
    static func bash(_ command: [String], in directory: URL) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = command
        process.currentDirectoryURL = directory
        let outputFile = directory.appendingPathComponent(".bash-output-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outputFile)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: outputFile)
        return (process.terminationStatus, output)
    }

    @Test func committedGeneratedCodeIsFresh() throws {
        let fm = FileManager.default
        let root = Self.repoRoot
        let committed = root.appendingPathComponent("Sources/GatewayProto")
        let protoDir = root.appendingPathComponent("proto")
        let script = root.appendingPathComponent("scripts/gen-proto.sh")
        try #require(fm.fileExists(atPath: protoDir.path), "no proto/ at \(root.path) (repo root derived from #filePath)")
        try #require(fm.fileExists(atPath: script.path), "no scripts/gen-proto.sh at \(root.path)")
        try #require(fm.fileExists(atPath: committed.path), "no Sources/GatewayProto at \(root.path)")

        let tmp = fm.temporaryDirectory.appendingPathComponent("gen-proto-check-\(UUID().uuidString)")
        try fm.createDirectory(at: tmp.appendingPathComponent("scripts"), withIntermediateDirectories: true)
        try fm.createDirectory(at: tmp.appendingPathComponent("Sources/GatewayProto"), withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        try fm.copyItem(at: protoDir.resolvingSymlinksInPath(), to: tmp.appendingPathComponent("proto"))
        try fm.copyItem(at: script.resolvingSymlinksInPath(), to: tmp.appendingPathComponent("scripts/gen-proto.sh"))

        let run = try Self.bash(["scripts/gen-proto.sh"], in: tmp)
        let hasProtocC = try Self.bash(["-c", "command -v protoc-c"], in: tmp).status == 0
        try #require(
            hasProtocC,
            "protoc-c is not installed and gen-proto.sh could not install it; install protobuf-c-compiler (apt-get install protobuf-c-compiler). Script output:\n\(run.output)"
        )
        try #require(run.status == 0, "scripts/gen-proto.sh failed with status \(run.status):\n\(run.output)")

        let generatedDir = tmp.appendingPathComponent("Sources/GatewayProto")
        let generated = try Self.files(under: generatedDir)
        let existing = try Self.files(under: committed)
        #expect(!generated.isEmpty, "gen-proto.sh produced no files")
        #expect(
            generated == existing,
            "file lists differ; only generated: \(Set(generated).subtracting(existing).sorted()), only committed: \(Set(existing).subtracting(generated).sorted())"
        )
        var stale: [String] = []
        for path in Set(generated).intersection(existing).sorted() {
            let fresh = try Data(contentsOf: generatedDir.appendingPathComponent(path))
            let old = try Data(contentsOf: committed.appendingPathComponent(path))
            if fresh != old { stale.append(path) }
        }
        #expect(stale.isEmpty, "stale generated files (run scripts/gen-proto.sh and commit): \(stale)")
    }
}
