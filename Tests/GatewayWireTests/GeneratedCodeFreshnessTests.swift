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

    /// The generated text without the one thing that names the machine's protoc-c rather
    /// than the .proto files: the compiler's version in each header's guard
    /// (`#elif 1004001 < PROTOBUF_C_MIN_COMPILER_VERSION`).
    static func withoutCompilerVersion(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            guard line.hasPrefix("#elif "), line.hasSuffix(" < PROTOBUF_C_MIN_COMPILER_VERSION") else { return line }
            return "#elif <compiler version> < PROTOBUF_C_MIN_COMPILER_VERSION"
        }.joined(separator: "\n")
    }

    @Test("Only the compiler's version is ignored: any other difference is stale")
    func versionLineOnly() {
        let a = "#if X\n#elif 1004001 < PROTOBUF_C_MIN_COMPILER_VERSION\nint a;\n"
        let b = "#if X\n#elif 1005000 < PROTOBUF_C_MIN_COMPILER_VERSION\nint a;\n"
        let c = "#if X\n#elif 1004001 < PROTOBUF_C_MIN_COMPILER_VERSION\nint b;\n"
        #expect(Self.withoutCompilerVersion(a) == Self.withoutCompilerVersion(b))
        #expect(Self.withoutCompilerVersion(a) != Self.withoutCompilerVersion(c))
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

        // A unit test installs nothing: scripts/test.sh (ensure-deps.sh) provides protoc-c.
        let hasProtocC = try Self.bash(["-c", "command -v protoc-c"], in: tmp).status == 0
        try #require(hasProtocC, "protoc-c is not installed; install protobuf-c-compiler (scripts/ensure-deps.sh does)")
        let run = try Self.bash(["-c", "GEN_PROTO_NO_INSTALL=1 scripts/gen-proto.sh"], in: tmp)
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
            let fresh = try String(contentsOf: generatedDir.appendingPathComponent(path), encoding: .utf8)
            let old = try String(contentsOf: committed.appendingPathComponent(path), encoding: .utf8)
            if Self.withoutCompilerVersion(fresh) != Self.withoutCompilerVersion(old) { stale.append(path) }
        }
        #expect(stale.isEmpty, "stale generated files (run scripts/gen-proto.sh and commit): \(stale)")
    }
}
