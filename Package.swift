// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "recpipe",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "recpipe", targets: ["recpipe"]),
        .library(name: "RecpipeStages", targets: ["RecpipeStages"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // zlib, for gzip-compressed inputs (Debian: zlib1g-dev).
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Embeds migrations/*.sql into the store library at build time, so the installed
        // binary carries its schema and works from any directory.
        .executableTarget(name: "EmbedMigrationsTool"),
        .plugin(
            name: "EmbedMigrations", capability: .buildTool(),
            dependencies: ["EmbedMigrationsTool"]),

        // SQLite settings that only C can reach (sqlite3_config is variadic), and the
        // authorizer chain that records table accesses.
        .target(name: "CSQLiteTuning", linkerSettings: [.linkedLibrary("sqlite3"), .linkedLibrary("dl")]),

        // OpenBLAS through its CBLAS interface (Debian: libopenblas-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // Dense and sparse matrices, the kernels the models need (forward and backward),
        // ranking, seeded random numbers.
        .target(name: "RecpipeNumerics", dependencies: ["CBLAS", "CKernels"]),

        // Elementwise kernels in C, where the compiler vectorizes them for each CPU.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fopenmp-simd", "-ffp-contract=off", "-fno-math-errno"])]),

        // Recommenders as pure computations on matrices: no SQLite in here.
        .target(name: "RecpipeModels", dependencies: ["RecpipeNumerics"]),

        // The SQLite store: every connection (GRDB's and the bulk one), migrations, table
        // names; the only target that speaks SQLite's C API.
        .target(
            name: "RecpipeStore",
            dependencies: [
                "CSQLiteTuning",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["EmbedMigrations"]),

        // The pipeline's stages, one folder each, behind the `Stage` protocol.
        .target(
            name: "RecpipeStages",
            dependencies: [
                "RecpipeStore", "RecpipeNumerics", "RecpipeModels", "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The scheduler: pipeline manifests (YAML), plans, fingerprints, the run lock, run
        // history, and the runner that executes each stage as a child process.
        .target(
            name: "RecpipeScheduler",
            dependencies: [
                "RecpipeStages", "RecpipeStore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The benchmarks `recpipe bench` runs: synthetic data, each stage's work measured next
        // to a reference in the same run.
        .target(
            name: "RecpipeBench",
            dependencies: [
                "RecpipeStages", "RecpipeStore", "RecpipeModels", "RecpipeNumerics",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The command line: parses arguments, calls the library, maps errors to exit codes.
        .executableTarget(
            name: "recpipe",
            dependencies: [
                "RecpipeStages", "RecpipeStore", "RecpipeModels", "RecpipeNumerics", "RecpipeScheduler", "RecpipeBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // What the test targets share: scratch directories, a quiet logger.
        .target(name: "RecpipeTestSupport", dependencies: [.product(name: "Logging", package: "swift-log")],
                path: "Tests/RecpipeTestSupport"),
        .testTarget(name: "RecpipeNumericsTests", dependencies: ["RecpipeNumerics", "RecpipeTestSupport"]),
        .testTarget(name: "RecpipeModelsTests", dependencies: ["RecpipeModels", "RecpipeNumerics", "RecpipeTestSupport"]),
        .testTarget(
            name: "RecpipeStoreTests",
            dependencies: ["RecpipeStore", "RecpipeTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "RecpipeStagesTests",
            dependencies: [
                "RecpipeStages", "RecpipeStore", "RecpipeTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "RecpipeSchedulerTests",
            dependencies: [
                "RecpipeScheduler", "RecpipeStore", "RecpipeTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "CLITests",
            dependencies: ["recpipe", "RecpipeBench", "RecpipeStore", "RecpipeTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Logging", package: "swift-log")]),
    ]
)
