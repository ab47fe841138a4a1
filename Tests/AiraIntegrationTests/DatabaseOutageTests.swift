import AiraContracts
import AiraMessaging
import AiraPostgres
import AsyncHTTPClient
import Foundation
import Testing

/// Stops PostgreSQL under a running aira-audit-writer. It disturbs every other test, so
/// scripts/test runs it on its own, after the rest (AIRA_TEST_OUTAGES=1).
@Suite("PostgreSQL outages: under the audit writer, and the read replica under the gateway", .serialized,
       .enabled(if: TestServers.available && ProcessInfo.processInfo.environment["AIRA_TEST_OUTAGES"] == "1"))
struct DatabaseOutageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Stops PostgreSQL with a fast shutdown (SIGINT to the postmaster: clients are disconnected),
    /// waiting until it is gone.
    static func stopPostgres() async throws {
        let pidFile = Self.root.appendingPathComponent(".data/postgres/data/postmaster.pid").path
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let pid = try #require(text.split(separator: "\n").first.flatMap { pid_t($0) })
        try #require(kill(pid, SIGINT) == 0, "cannot signal the postmaster")
        let gone = await eventually(timeout: .seconds(30), every: .milliseconds(50)) { kill(pid, 0) != 0 }
        try #require(gone, "PostgreSQL did not stop")
    }

    /// `pg_start` from scripts/lib/common.sh, through python3 to give it default signal handling
    /// (children inherit the test process's blocked and ignored signals, and the postmaster is one).
    static func startPostgres(_ function: String = "pg_start", url: String = TestServers.databaseURL!) async throws {
        let script = "source '\(Self.root.path)/scripts/lib/common.sh' && \(function)"
        let reset = "import os, signal; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
            + "[signal.signal(s, signal.SIG_DFL) for s in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP, signal.SIGQUIT)]; "
            + "os.execvp('bash', ['bash', '-c', os.environ['AIRA_PG_SCRIPT']])"
        setenv("AIRA_PG_SCRIPT", script, 1)
        // Judged by the database answering: the launcher's own exit is not always seen from here.
        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        launcher.arguments = ["-c", reset]
        launcher.standardInput = FileHandle.nullDevice
        launcher.standardOutput = FileHandle.nullDevice
        launcher.standardError = FileHandle.nullDevice
        try launcher.run()
        let up = await eventually(timeout: .seconds(60), every: .milliseconds(100)) {
            let db = PostgresClient(configuration: PostgresConfiguration(url: url, poolSize: 1))
            defer { Task { await db.shutdown() } }
            return await db.ping()
        }
        try #require(up, "PostgreSQL did not come back")
    }

    /// Runs a function of scripts/lib/common.sh (e.g. `pg_replica_stop`) and waits for it.
    static func script(_ function: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "source '\(Self.root.path)/scripts/lib/common.sh' && \(function)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "\(function) failed")
    }

    @Test("the read replica stopped under traffic: every read answered (by the primary), then the replica serves again",
          .enabled(if: PostsTests.replicaURL != nil))
    func replicaStops() async throws {
        let replicaURL = try #require(PostsTests.replicaURL)
        try await PostsTests.withStack(cacheTTL: "0") { stack in
            let writer = try await ContentTests.user(stack, "writer")
            let tag = PostsTests.tag()
            let id = try await PostsTests.post(stack, writer, title: "Outage reading", body: "replicas come and go", tags: [tag])
            let paths = ["/api/posts?tag=\(tag)", "/api/posts/\(id)", "/api/search?keyword=replicas&tag=\(tag)"]
            #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                try await stack.call("GET", paths[0]).headers.first(name: "X-Aira-Read") == "replica"
            })
            // Readers keep reading while the replica goes down (fast shutdown: its connections are cut).
            let readers = Task {
                var statuses: [Int: Int] = [:]
                var targets: Set<String> = []
                let deadline = ContinuousClock.now + .seconds(6)
                while ContinuousClock.now < deadline {
                    for path in paths {
                        let r = try await stack.call("GET", path)
                        statuses[r.status, default: 0] += 1
                        if let target = r.headers.first(name: "X-Aira-Read") { targets.insert(target) }
                    }
                }
                return (statuses, targets)
            }
            try await Task.sleep(for: .seconds(1))
            try Self.script("pg_replica_stop")
            do {
                let (statuses, targets) = try await readers.value
                #expect(statuses.keys.allSatisfy { $0 == 200 }, "every read answered: \(statuses)")
                #expect(targets.contains("primary") && targets.contains("replica"), "\(targets)")
                #expect(try await stack.metric(port: stack.gateways[0].port, "aira_gateway_read_replica_usable") == 0)
            } catch {
                try? await Self.startPostgres("pg_replica_start", url: replicaURL)
                throw error
            }
            try await Self.startPostgres("pg_replica_start", url: replicaURL)
            #expect(try await eventually(timeout: .seconds(20), every: .milliseconds(200)) {
                try await stack.call("GET", paths[0]).headers.first(name: "X-Aira-Read") == "replica"
            }, "reads return to the replica once it is back")
        }
    }

    static func count(_ type: String) async -> Int {
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        return ((try? await db.query("SELECT count(*) AS n FROM audit_log WHERE type = \(type)").first?.decode("n", as: Int.self)) ?? nil) ?? -1
    }

    static func ready(_ port: Int) async -> Int {
        let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health/ready"), timeout: .seconds(5))
        return Int(response?.status.code ?? 0)
    }

    @Test("events published while PostgreSQL is down are all stored once it is back, even across a writer crash")
    func outage() async throws {
        try await ServiceStack.migrate()
        let type = "outage_\(UUID().uuidString.prefix(8).lowercased())"
        let env = ["AIRA_AUDIT_BATCH_SIZE": "200"]
        let port1 = try freePort()
        let first = try WorkerProcess(executable: "aira-audit-writer", name: "outage-a", environment: env.merging(["AIRA_HTTP_PORT": "\(port1)"]) { $1 })
        #expect(await eventually(timeout: .seconds(20)) { await Self.ready(port1) == 200 })

        try await Self.stopPostgres()
        do {
            try await self.duringOutage(type: type, first: first, env: env, port1: port1)
        } catch {
            try? await Self.startPostgres() // whatever failed, the database comes back for what runs next
            throw error
        }
    }

    func duringOutage(type: String, first: WorkerProcess, env: [String: String], port1: Int) async throws {
        #expect(await eventually(timeout: .seconds(20), every: .milliseconds(200)) { await Self.ready(port1) == 503 },
                "readiness reflects the database")

        // A burst while the database is down: the broker takes it, the writer holds it unacknowledged.
        let events = (0..<3000).map { i in (id: "\(type)-\(i)", event: AuditEvent(type: type, userId: UUID(), attributes: ["n": "\(i)"])) }
        try await AuditWriterTests.publish(events)
        try await Task.sleep(for: .seconds(2))
        // The writer dies during the outage: whatever it held comes back to the queue, because it
        // acknowledged nothing it had not stored.
        first.kill9()
        _ = await first.waitForExit(timeout: .seconds(5))
        let port2 = try freePort()
        let second = try WorkerProcess(executable: "aira-audit-writer", name: "outage-b", environment: env.merging(["AIRA_HTTP_PORT": "\(port2)"]) { $1 })
        defer { second.terminate() }
        try await Task.sleep(for: .seconds(2))

        try await Self.startPostgres()
        let stored = await eventually(timeout: .seconds(60), every: .milliseconds(200)) { await Self.count(type) >= 3000 }
        let storedCount = await Self.count(type)
        #expect(stored, "stored: \(storedCount)\n\(second.log.suffix(2000))")
        try await Task.sleep(for: .seconds(1))
        #expect(await Self.count(type) == 3000)
        #expect(second.log.contains("cannot write audit batch, retrying"), "the writer retried while the database was down")
        #expect(await Self.ready(port2) == 200)
    }
}
