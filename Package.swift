// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "model-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "model-gateway", targets: ["model-gateway"]),
        .executable(name: "sim-worker", targets: ["sim-worker"]),
        .executable(name: "gateway-bench", targets: ["gateway-bench"]),
        .library(name: "GatewayCore", targets: ["GatewayCore"]),
        .library(name: "GatewayWire", targets: ["GatewayWire"]),
        .library(name: "GatewayServer", targets: ["GatewayServer"]),
        .library(name: "GatewayClient", targets: ["GatewayClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // The system protobuf-c runtime (Debian: libprotobuf-c-dev).
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // protoc-c output of proto/ (scripts/gen-proto.sh); committed, never edited by hand.
        .target(
            name: "GatewayProto",
            dependencies: ["CProtobufC"]
        ),
        // Frame codec and Swift values <-> protobuf-c structs: the only module touching C pointers.
        .target(
            name: "GatewayWire",
            dependencies: [
                "GatewayProto",
                "CProtobufC",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // A strict JSON reader/writer shared by the server, the sim worker and the client.
        .target(
            name: "GatewayJSON",
            swiftSettings: swiftSettings
        ),
        // The system SQLite (Debian: libsqlite3-dev).
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // The registry's durable store (SQLite, WAL).
        .target(
            name: "GatewayStore",
            dependencies: ["GatewayCore", "GatewayJSON", "CSQLite"],
            swiftSettings: swiftSettings
        ),
        // Registry, ids, URLs, jobs, health: pure Swift, no I/O.
        .target(
            name: "GatewayCore",
            swiftSettings: swiftSettings
        ),
        // REST app, upstream HTTP, background services.
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayCore",
                "GatewayWire",
                "GatewayJSON",
                "GatewayStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
        // Swift client of the binary protocol: one connection, concurrent calls.
        .target(
            name: "GatewayClient",
            dependencies: [
                "GatewayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The simulated inference worker (SGLang + OpenAI routes), as a library for in-process tests.
        .target(
            name: "SimWorker",
            dependencies: [
                "GatewayJSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "model-gateway",
            dependencies: [
                "GatewayServer",
                "GatewayClient",
                "GatewayWire",
                "GatewayCore",
                "GatewayJSON",
                "SimWorker",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sim-worker",
            dependencies: [
                "SimWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The replayer's pure logic: workloads, traces, Prometheus counters, summaries.
        .target(
            name: "BenchKit",
            dependencies: ["GatewayJSON"],
            swiftSettings: swiftSettings
        ),
        // Load generator and micro-benchmarks behind scripts/bench.sh.
        .executableTarget(
            name: "gateway-bench",
            dependencies: [
                "BenchKit",
                "GatewayJSON",
                "GatewayClient",
                "GatewayWire",
                "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayWireTests",
            dependencies: [
                "GatewayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Vectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayClientTests",
            dependencies: [
                "GatewayClient",
                "GatewayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayJSONTests",
            dependencies: ["GatewayJSON"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayStoreTests",
            dependencies: ["GatewayStore", "GatewayCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: ["GatewayCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "GatewayServer",
                "GatewayCore",
                "GatewayJSON",
                "GatewayClient",
                "GatewayWire",
                "SimWorker",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BenchKitTests",
            dependencies: ["BenchKit", "GatewayJSON"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SimWorkerTests",
            dependencies: [
                "SimWorker",
                "GatewayJSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
