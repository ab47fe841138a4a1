// swift-tools-version:6.1
import PackageDescription

// Aira: Swift microservices around RabbitMQ, PostgreSQL and Redis. See README.md and docs/.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

// What every service's build function names: the service kit, its group and its metrics registry.
let serviceKit: [Target.Dependency] = [
    "AiraServiceKit",
    .product(name: "Prometheus", package: "swift-prometheus"),
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
]

let package = Package(
    name: "aira",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AiraMessaging", targets: ["AiraMessaging"]),
        .library(name: "AiraServiceKit", targets: ["AiraServiceKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    ],
    targets: [
        // C libraries from Debian, wrapped by small shims (Shared/C*/shim.h).
        .systemLibrary(name: "CRabbitMQ", path: "Shared/CRabbitMQ", pkgConfig: "librabbitmq",
                       providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(name: "CHiredis", path: "Shared/CHiredis", pkgConfig: "hiredis",
                       providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        // jemalloc becomes the malloc of every executable that links AiraServiceKit.
        .systemLibrary(name: "CJemalloc", path: "Shared/CJemalloc", pkgConfig: "jemalloc",
                       providers: [.apt(["libjemalloc-dev"])]),

        // Threads that own C connections, pools, backoff, environment configuration.
        .target(name: "AiraCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "DequeModule", package: "swift-collections"),
        ], path: "Shared/AiraCore", swiftSettings: swiftSettings),
        .target(name: "AiraAMQP", dependencies: [
            "CRabbitMQ", "AiraCore",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Shared/AiraAMQP", swiftSettings: swiftSettings),
        .target(name: "AiraRedis", dependencies: [
            "CHiredis", "AiraCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Shared/AiraRedis", swiftSettings: swiftSettings),
        .target(name: "AiraPostgres", dependencies: [
            "CLibPQ", "AiraCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], path: "Shared/AiraPostgres", swiftSettings: swiftSettings),
        // Contracts, topology, consumer runtime with retry tiers and dead letters, publisher, RPC.
        .target(name: "AiraMessaging", dependencies: [
            "AiraAMQP", "AiraCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "DequeModule", package: "swift-collections"),
        ], path: "Shared/AiraMessaging", swiftSettings: swiftSettings),
        // Users, roles and passwords (bcrypt on a thread pool), shared by aira-auth and aira-admin.
        .target(name: "AiraAccounts", dependencies: [
            "AiraPostgres",
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], path: "Shared/AiraAccounts", swiftSettings: swiftSettings),
        // Access tokens (EdDSA JWT, verified locally) and rotating refresh tokens in PostgreSQL.
        .target(name: "AiraTokens", dependencies: [
            "AiraPostgres",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Shared/AiraTokens", swiftSettings: swiftSettings),
        // The OpenAI chat-completions format, prompt normalisation, answer-cache keys, and the
        // conversations kept in Redis (written by aira-gpt-proxy, listed by aira-gateway).
        .target(name: "AiraLLM", dependencies: [
            "AiraCore", "AiraRedis",
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Shared/AiraLLM", swiftSettings: swiftSettings),
        // The nightly analysis: days, activity features, the return-likelihood model, TF-IDF interests, runs.
        .target(name: "AiraAnalysis", dependencies: ["AiraCore", "AiraPostgres"],
                path: "Shared/AiraAnalysis", swiftSettings: swiftSettings),
        // Message contracts between services: auth and GPT RPC, audit events (and the batching
        // AuditTrail that publishes them), mail.
        .target(name: "AiraContracts", dependencies: [
            "AiraMessaging", "AiraLLM",
        ], path: "Shared/AiraContracts", swiftSettings: swiftSettings),
        // Mail: an SMTP client on SwiftNIO (STARTTLS, AUTH), MIME composition and the mail templates.
        .target(name: "AiraMail", dependencies: [
            "AiraCore", "AiraMessaging", "AiraContracts",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], path: "Shared/AiraMail", swiftSettings: swiftSettings),
        // What every executable shares: configuration, logging, /metrics and /health, lifecycle.
        .target(name: "AiraServiceKit", dependencies: [
            "AiraCore", "AiraAMQP", "AiraRedis", "AiraPostgres", "AiraMessaging", "AiraContracts", "CJemalloc",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ], path: "Shared/AiraServiceKit", swiftSettings: swiftSettings),

        // Services: one executable each, thin.
        .executableTarget(name: "aira-admin", dependencies: [
            "AiraServiceKit", "AiraMessaging", "AiraContracts", "AiraPostgres", "AiraAccounts", "AiraTokens", "AiraAnalysis",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Services/AiraAdmin", swiftSettings: swiftSettings),

        .executableTarget(name: "aira-auth", dependencies: serviceKit + [
            "AiraContracts", "AiraAccounts", "AiraTokens",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Services/AiraAuth", swiftSettings: swiftSettings),

        .executableTarget(name: "aira-gateway", dependencies: serviceKit + [
            "AiraContracts", "AiraLLM", "AiraAccounts", "AiraTokens", "AiraAnalysis",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "_NIOFileSystem", package: "swift-nio"),
        ], path: "Services/AiraGateway", exclude: ["Web"], swiftSettings: swiftSettings),

        .executableTarget(name: "aira-gpt-proxy", dependencies: serviceKit + [
            "AiraContracts", "AiraLLM",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Services/AiraGPTProxy", swiftSettings: swiftSettings),
        .executableTarget(name: "aira-mock-llm", dependencies: [
            "AiraServiceKit", "AiraLLM",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Services/AiraMockLLM", swiftSettings: swiftSettings),

        .executableTarget(name: "aira-audit-writer", dependencies: serviceKit + ["AiraContracts"],
                          path: "Services/AiraAuditWriter", swiftSettings: swiftSettings),
        .executableTarget(name: "aira-email-worker", dependencies: serviceKit + ["AiraContracts", "AiraMail"],
                          path: "Services/AiraEmailWorker", swiftSettings: swiftSettings),
        .executableTarget(name: "aira-thumbnail-worker", dependencies: serviceKit + [
            "AiraContracts",
            .product(name: "Subprocess", package: "swift-subprocess"),
        ], path: "Services/AiraThumbnailWorker", swiftSettings: swiftSettings),

        .executableTarget(name: "aira-analyzer", dependencies: serviceKit + ["AiraContracts", "AiraAnalysis"],
                          path: "Services/AiraAnalyzer", swiftSettings: swiftSettings),

        // A real consumer process the integration tests start, kill and scale.
        .executableTarget(name: "aira-test-worker", dependencies: ["AiraServiceKit"],
                          path: "Tests/Support/AiraTestWorker", swiftSettings: swiftSettings),
        // scripts/bench-messaging: the runtime next to rabbitmq-c driven directly.
        .executableTarget(name: "aira-bench-messaging", dependencies: ["AiraMessaging", "AiraCore", "CRabbitMQ"],
                          path: "Tests/Benchmarks/AiraBenchMessaging", swiftSettings: swiftSettings),

        // scripts/bench-auth: bcrypt timing and user seeding.
        .executableTarget(name: "aira-bench-auth", dependencies: [
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
        ], path: "Tests/Benchmarks/AiraBenchAuth", swiftSettings: swiftSettings),

        // scripts/bench-audit: audit events published → stored, end to end.
        .executableTarget(name: "aira-bench-audit", dependencies: ["AiraServiceKit", "AiraContracts", "AiraPostgres", "AiraMessaging", "AiraCore"],
                          path: "Tests/Benchmarks/AiraBenchAudit", swiftSettings: swiftSettings),

        // scripts/bench-scale: a backlog for a worker, and how fast its instances drain it.
        .executableTarget(name: "aira-bench-backlog", dependencies: ["AiraWorkload"],
                          path: "Tests/Benchmarks/AiraBenchBacklog", swiftSettings: swiftSettings),
        // Real work for the workers and its effects, counted: bench-scale and the fault suite.
        .target(name: "AiraWorkload", dependencies: ["AiraContracts", "AiraPostgres", "AiraMessaging", "AiraCore",
                                                    .product(name: "Logging", package: "swift-log")],
                path: "Tests/Support/AiraWorkload", swiftSettings: swiftSettings),
        // scripts/chaos: faults injected into a running stack under load, what was lost counted.
        .executableTarget(name: "aira-chaos", dependencies: ["AiraWorkload", .product(name: "AsyncHTTPClient", package: "async-http-client")],
                          path: "Tests/Chaos/AiraChaos", swiftSettings: swiftSettings),

        // scripts/bench-analyzer: one nightly run over a synthetic population, 1 and 2 instances.
        .executableTarget(name: "aira-bench-analyzer", dependencies: ["AiraAnalysis", "AiraPostgres", "AiraCore"],
                          path: "Tests/Benchmarks/AiraBenchAnalyzer", swiftSettings: swiftSettings),

        .testTarget(name: "AiraUnitTests", dependencies: [
            "AiraMessaging", "AiraLLM", "AiraPostgres", "AiraRedis", "AiraServiceKit", "AiraAccounts", "AiraTokens", "AiraMail", "AiraAnalysis",
            // Each service's configuration, read by the tests that compare it with docs/configuration.md.
            "aira-gateway", "aira-auth", "aira-gpt-proxy", "aira-audit-writer", "aira-email-worker", "aira-thumbnail-worker",
            "aira-analyzer",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
        ],
                    path: "Tests/AiraUnitTests", swiftSettings: swiftSettings),
        .testTarget(name: "AiraIntegrationTests", dependencies: [
            "AiraServiceKit", "AiraAccounts", "AiraTokens", "AiraContracts", "AiraLLM", "AiraAnalysis", "AiraWorkload",
            // Services built in-process by their build function (ServiceBuildTests), or parts of them (BudgetStoreTests).
            "aira-gateway", "aira-audit-writer", "aira-analyzer", "aira-gpt-proxy",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Subprocess", package: "swift-subprocess"),
            .product(name: "Crypto", package: "swift-crypto"),
        ],
                    path: "Tests/AiraIntegrationTests", swiftSettings: swiftSettings),
    ]
)
