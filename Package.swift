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
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
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
        // The OpenAI and SGLang shapes: request scanning, /generate translation, the SSE codec,
        // typed generate <-> OpenAI bodies. Shared by the server, the CLI and the sim worker.
        .target(
            name: "GatewayOpenAI",
            dependencies: [
                "GatewayCore",
                "GatewayJSON",
                "GatewayWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Metrics (Prometheus text), the per-request record, and logging off the hot path.
        .target(
            name: "GatewayObservability",
            dependencies: [
                "GatewayCore",
                "GatewayJSON",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one transport for every call to a worker: HTTP/1.1 (plain or TLS), pooled per
        // event loop and worker, answers decoded once (event streams into events).
        .target(
            name: "GatewayUpstream",
            dependencies: [
                "GatewayCore",
                "GatewayOpenAI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The inference core both doors use: InferenceCall in, InferenceAnswer out; the
        // attempts on workers as AttemptStateMachine (GatewayCore) decides.
        .target(
            name: "GatewayInference",
            dependencies: [
                "GatewayCore",
                "GatewayOpenAI",
                "GatewayUpstream",
                "GatewayObservability",
                "GatewayWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Worker management both doors offer: registration jobs, probes, active health
        // checks, the durable store's ordering.
        .target(
            name: "GatewayWorkers",
            dependencies: [
                "GatewayCore",
                "GatewayJSON",
                "GatewayStore",
                "GatewayUpstream",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The REST door: HTTP/1.1 connections on NIO (one request-cycle state machine),
        // route dispatch, the worker API, probes and info routes.
        .target(
            name: "GatewayHTTP",
            dependencies: [
                "GatewayCore",
                "GatewayJSON",
                "GatewayOpenAI",
                "GatewayUpstream",
                "GatewayInference",
                "GatewayObservability",
                "GatewayWorkers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The binary door: frames over TCP, one session state machine per connection.
        .target(
            name: "GatewayBinary",
            dependencies: [
                "GatewayCore",
                "GatewayWire",
                "GatewayOpenAI",
                "GatewayInference",
                "GatewayObservability",
                "GatewayWorkers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The wiring: configuration, the listeners of both doors, one ServiceGroup and its shutdown order.
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayCore",
                "GatewayStore",
                "GatewayUpstream",
                "GatewayInference",
                "GatewayObservability",
                "GatewayWorkers",
                "GatewayHTTP",
                "GatewayBinary",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
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
                "GatewayOpenAI",
                "GatewayUpstream",
                "GatewayObservability",
                "GatewayWorkers",
                "SimWorker",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
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
            exclude: ["JSONTestSuite"],
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
            name: "GatewayOpenAITests",
            dependencies: ["GatewayOpenAI", "GatewayCore", "GatewayJSON", "GatewayWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayUpstreamTests",
            dependencies: ["GatewayUpstream", "GatewayCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayHTTPTests",
            dependencies: ["GatewayHTTP", "GatewayCore", "GatewayOpenAI", .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayBinaryTests",
            dependencies: ["GatewayBinary", "GatewayCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayObservabilityTests",
            dependencies: ["GatewayObservability", "GatewayJSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // The gateway as a whole, over real sockets: both doors, workers, faults, the lifecycle.
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "GatewayServer",
                "GatewayCore",
                "GatewayJSON",
                "GatewayClient",
                "GatewayWire",
                "GatewayUpstream",
                "GatewayInference",
                "GatewayHTTP",
                "GatewayWorkers",
                "GatewayObservability",
                "GatewayOpenAI",
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
