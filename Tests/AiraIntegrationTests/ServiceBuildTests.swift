import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import AsyncHTTPClient
import Crypto
import Foundation
import Prometheus
import ServiceLifecycle
import Testing
@testable import aira_analyzer
@testable import aira_audit_writer
@testable import aira_gateway

/// Services built in this process by their `build…(configuration)` and run as the service group
/// it returns, against the real servers: they work, and every way the group ends (graceful
/// shutdown, cancellation) closes their database and broker connections.
@Suite("Services built by their build function", .serialized, .enabled(if: TestServers.available))
struct ServiceBuildTests {
    /// The test servers' environment plus `extra`, with this run's own instance name (it names
    /// the PostgreSQL sessions and the broker connection, so they can be counted).
    static func environment(instance: String, _ extra: [String: String] = [:]) -> EnvironmentReader {
        var values = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("AIRA_") }
        values["AIRA_INSTANCE"] = instance
        values["AIRA_HTTP_PORT"] = "0"
        values["AIRA_LOG_LEVEL"] = "error"
        return EnvironmentReader(values.merging(extra) { $1 })
    }

    /// PostgreSQL sessions of `instance` (its `application_name`).
    static func sessions(_ instance: String) async throws -> Int {
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        let row = try await db.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = \(instance)").first
        return try row?.decode("n") ?? 0
    }

    /// Broker connections named `instance` (the name the client gives), from the management API.
    static func brokerConnections(_ instance: String) async throws -> Int {
        let list = try JSONSerialization.jsonObject(with: try await brokerManagement("GET", "/api/connections?columns=user_provided_name"))
        return ((list as? [[String: Any]]) ?? []).filter { $0["user_provided_name"] as? String == instance }.count
    }

    @Test("the audit writer stores an event; a graceful shutdown closes its PostgreSQL and broker connections")
    func auditWriterGraceful() async throws {
        let instance = uniqueName("build-audit")
        let configuration = try AuditWriterConfiguration(environment: Self.environment(instance: instance))
        #expect(configuration.settings.instance == instance)
        let group = try await buildAuditWriter(configuration, logger: TestServers.logger, registry: PrometheusCollectorRegistry(),
                                               signals: false)
        let run = Task { try await group.run() }
        let type = uniqueName("build_test").replacingOccurrences(of: "-", with: "_")
        try await AuditWriterTests.publish([(id: "\(type)-1", event: AuditEvent(id: "\(type)-1", type: type, userId: nil))])
        #expect(try await eventually { try await AuditWriterTests.stored(type: type).rows == 1 })
        #expect(try await Self.sessions(instance) > 0)
        #expect(try await eventually { try await Self.brokerConnections(instance) == 1 })

        await group.triggerGracefulShutdown()
        try await run.value
        #expect(try await eventually(timeout: .seconds(5)) { try await Self.sessions(instance) == 0 },
                "the database client was not shut down with its group")
        #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(250)) { try await Self.brokerConnections(instance) == 0 })
    }

    @Test("a cancelled group still closes its clients' connections")
    func auditWriterCancelled() async throws {
        let instance = uniqueName("build-audit-cancel")
        let configuration = try AuditWriterConfiguration(environment: Self.environment(instance: instance))
        let group = try await buildAuditWriter(configuration, logger: TestServers.logger, registry: PrometheusCollectorRegistry(),
                                               signals: false)
        let run = Task { try await group.run() }
        let type = uniqueName("build_cancel").replacingOccurrences(of: "-", with: "_")
        try await AuditWriterTests.publish([(id: "\(type)-1", event: AuditEvent(id: "\(type)-1", type: type, userId: nil))])
        #expect(try await eventually { try await AuditWriterTests.stored(type: type).rows == 1 })
        #expect(try await Self.sessions(instance) > 0)

        run.cancel()
        _ = await run.result
        #expect(try await eventually(timeout: .seconds(5)) { try await Self.sessions(instance) == 0 })
    }

    @Test("a build that fails after connecting closes the broker connection it opened")
    func failedBuild() async throws {
        // The analyzer declares its queue as a quorum queue; a classic queue of that name makes
        // the broker refuse the declaration, after the build has connected.
        let queue = uniqueName("build-refused")
        let instance = uniqueName("build-refused")
        let configuration = try AnalyzerConfiguration(environment: Self.environment(instance: instance, ["AIRA_ANALYSIS_QUEUE": queue]))
        let connection = try await TestServers.connect()
        let publisher = try await MessagePublisher.open(on: connection)
        // Exclusive: the broker deletes it with this connection.
        try await publisher.channel.declareQueue(queue, options: .init(durable: false, exclusive: true))
        defer {
            Task {
                // What the declaration made before the refusal: the dead-letter and retry queues.
                for name in configuration.queue.allQueues.dropFirst() { _ = try? await publisher.channel.deleteQueue(name) }
                await connection.close()
            }
        }
        await #expect(throws: (any Error).self) {
            _ = try await buildAnalyzer(configuration, logger: TestServers.logger, registry: PrometheusCollectorRegistry(), signals: false)
        }
        // Gone, and staying gone (a connection left running would reconnect under the same name).
        #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(250)) { try await Self.brokerConnections(instance) == 0 })
        var seen = 0
        for _ in 0..<12 {
            try await Task.sleep(for: .milliseconds(250))
            seen += try await Self.brokerConnections(instance)
        }
        #expect(seen == 0, "the failed build left its broker connection running")
        #expect(try await Self.sessions(instance) == 0)
    }

    @Test("the gateway serves health, readiness and its OpenAPI document; shut down, it closes its connections")
    func gateway() async throws {
        try await ServiceStack.migrate()
        let instance = uniqueName("build-gateway")
        let port = try freePort()
        let key = "t1:" + Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
        let configuration = try GatewayConfiguration(environment: Self.environment(
            instance: instance, ["AIRA_HTTP_PORT": "\(port)", "AIRA_JWT_PUBLIC_KEYS": key]))
        let group = try await buildGateway(configuration, logger: TestServers.logger, registry: PrometheusCollectorRegistry(),
                                           signals: false)
        let run = Task { try await group.run() }
        func status(_ path: String) async -> Int {
            let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(5))
            return Int(response?.status.code ?? 0)
        }
        #expect(await eventually(timeout: .seconds(20)) { await status("/health/ready") == 200 })
        #expect(await status("/openapi.yaml") == 200)
        #expect(await status("/api/users/me") == 401)
        #expect(try await Self.sessions(instance) > 0)

        await group.triggerGracefulShutdown()
        try await run.value
        #expect(await status("/health/live") == 0, "the HTTP server still answers after shutdown")
        #expect(try await eventually(timeout: .seconds(5)) { try await Self.sessions(instance) == 0 })
        #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(250)) { try await Self.brokerConnections(instance) == 0 })
    }
}
