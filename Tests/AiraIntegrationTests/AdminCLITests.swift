import AiraCore
import AiraAMQP
import AiraMessaging
import AiraPostgres
import Foundation
import Testing

/// Runs the real `aira-admin` binary.
struct AdminRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

func aira(_ args: [String], stdin: String? = nil, without unset: [String] = [], environment extra: [String: String] = [:]) throws -> AdminRun {
    let p = Process()
    p.executableURL = WorkerProcess.binDirectory.appendingPathComponent("aira-admin")
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for key in unset { env[key] = nil }
    env.merge(extra) { $1 }
    p.environment = env
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return AdminRun(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A dead letter as FailureRouter writes it, straight into `Q.dlq` (fast set-up for big DLQs).
func seedDeadLetters(_ h: MessagingHarness, spec: QueueSpec, count: Int, type: String = TestJob.messageType,
                     error: String = "boom", idPrefix: String = "d") async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in 0..<count {
            group.addTask {
                var p = MessagePublisher.properties(type: type, messageID: "\(idPrefix)\(i)", correlationID: nil, traceparent: nil)
                p.headers[AiraHeader.attempts] = .int(3)
                p.headers[AiraHeader.error] = .string(error)
                p.headers[AiraHeader.errorType] = .string("test")
                p.headers[AiraHeader.disposition] = .string("retries_exhausted")
                p.headers[AiraHeader.lastFailedAt] = .string(iso8601(Date()))
                p.headers[AiraHeader.queue] = .string(spec.name)
                try await h.publisher.publishRaw(exchange: "", routingKey: spec.deadLetterQueue,
                                                 body: try MessageCoding.encode(TestJob(id: "\(idPrefix)\(i)", action: "ok")),
                                                 properties: p)
            }
            if i % 500 == 499 { try await group.waitForAll() }
        }
        try await group.waitForAll()
    }
}

/// Message ids in a queue, in order, leaving the queue as it was.
func peekIDs(_ h: MessagingHarness, _ queue: String) async throws -> [String] {
    try await DeadLetterQueues(connection: h.connection, logger: TestServers.logger).peek(queue: queue).map(\.messageID)
}

@Suite("aira-admin: dead letters", .enabled(if: TestServers.available))
struct AdminCLITests {
    func spec() -> QueueSpec {
        let q = uniqueName("admin")
        return QueueSpec(name: q, bindings: ["\(q).key"], retry: RetryPolicy(tiers: [.milliseconds(100)], maxAttempts: 2))
    }

    @Test("dead letters made by a failing consumer show their reasons")
    func showReasons() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec()
        let services = RunningServices([h.consumer(spec, recorder: Recorder())])
        #expect(try await h.waitForConsumers(spec.name))
        try await h.publisher.publish(TestJob(id: "bad", action: "permanent"), routingKey: spec.bindings[0], messageID: "m-bad")
        try await h.publisher.publish(TestJob(id: "flaky", action: "transient"), routingKey: spec.bindings[0], messageID: "m-flaky")
        #expect(try await eventually { try await h.depth(spec.deadLetterQueue) == 2 })
        await services.stop()

        let run = try aira(["dlq", "show", spec.name, "--json", "--body"])
        #expect(run.status == 0, "\(run.stderr)")
        let shown = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]] ?? []
        let byID = Dictionary(uniqueKeysWithValues: shown.map { ($0["id"] as? String ?? "", $0) })
        #expect(byID["m-bad"]?["disposition"] as? String == "permanent")
        #expect(byID["m-bad"]?["errorType"] as? String == "test_invalid")
        #expect(byID["m-bad"]?["attempts"] as? Int == 1)
        #expect(byID["m-flaky"]?["disposition"] as? String == "retries_exhausted")
        #expect(byID["m-flaky"]?["attempts"] as? Int == 2)
        #expect(byID["m-flaky"]?["error"] as? String == "downstream unavailable (test)")
        #expect(byID["m-flaky"]?["originalRoutingKey"] as? String == spec.bindings[0])
        #expect((byID["m-flaky"]?["body"] as? String)?.contains("flaky") == true)
        // Still there afterwards.
        #expect(try await h.depth(spec.deadLetterQueue) == 2)
        let table = try aira(["dlq", "list", spec.name])
        #expect(table.status == 0 && table.stdout.contains(spec.deadLetterQueue) && table.stdout.contains(" 2 "))
        await h.tearDown(spec)
    }

    @Test("replay by id, type and error moves exactly the matching ones; the rest stay in order")
    func replayByFilter() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec()
        try await spec.declare(on: h.admin)
        try await seedDeadLetters(h, spec: spec, count: 6, idPrefix: "a")
        try await seedDeadLetters(h, spec: spec, count: 3, type: "test.other.v1", idPrefix: "o")
        try await seedDeadLetters(h, spec: spec, count: 3, error: "SMTP 451 try later", idPrefix: "s")
        let before = try await peekIDs(h, spec.deadLetterQueue)
        #expect(before.count == 12)
        // A peek (ours or the tool's) returns what it looked at when its channel closes, which the
        // broker finishes asynchronously: wait until every message is back before looking again.
        func settled(_ count: Int) async throws -> Bool {
            try await eventually { try await h.depth(spec.deadLetterQueue) == count }
        }
        #expect(try await settled(12))

        // Dry run: reports, moves nothing.
        let dry = try aira(["dlq", "replay", spec.name, "--type", "test.other.v1", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("would move 3 of 3"), "\(dry.stdout)\(dry.stderr)")
        #expect(try await settled(12))
        #expect(try await peekIDs(h, spec.deadLetterQueue) == before)
        #expect(try await h.depth(spec.name) == 0)
        #expect(try await settled(12))

        let byID = try aira(["dlq", "replay", spec.name, "--id", "a1", "--id", "a4"])
        #expect(byID.status == 0, "\(byID.stderr)")
        let byType = try aira(["dlq", "replay", spec.name, "--type", "test.other.v1"])
        #expect(byType.stdout.contains("moved 3 of 3"))
        let byError = try aira(["dlq", "replay", "\(spec.name).dlq", "--error", "smtp 451", "--limit", "2"])
        #expect(byError.stdout.contains("moved 2 of 3"))

        // --limit 2 takes the first two matches in queue order (seeding publishes concurrently,
        // so that order is whatever the DLQ holds).
        let moved = Set(["a1", "a4", "o0", "o1", "o2"] + before.filter { $0.hasPrefix("s") }.prefix(2))
        #expect(try await settled(before.count - moved.count))
        #expect(try await peekIDs(h, spec.deadLetterQueue) == before.filter { !moved.contains($0) })
        let back = try await peekIDs(h, spec.name)
        #expect(Set(back) == moved)
        // Replayed: attempts reset, failure history cleared, replay time set.
        let one = try #require(try await h.take(spec.name))
        #expect(one.properties.headers[AiraHeader.attempts]?.intValue == 0)
        #expect(one.properties.headers[AiraHeader.error] == nil)
        #expect(one.properties.headers[AiraHeader.replayedAt]?.stringValue.flatMap(parseISO8601) != nil)
        await h.tearDown(spec)
    }

    @Test("the rate cap is respected")
    func rate() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec()
        try await spec.declare(on: h.admin)
        try await seedDeadLetters(h, spec: spec, count: 30)
        let started = ContinuousClock.now
        let run = try aira(["dlq", "replay", spec.name, "--all", "--rate", "20"])
        let elapsed = ContinuousClock.now - started
        #expect(run.status == 0 && run.stdout.contains("moved 30 of 30"), "\(run.stderr)")
        // 30 at 20/s: at least 1.45 s of pacing.
        #expect(elapsed >= .milliseconds(1400), "took \(elapsed)")
        #expect(try await h.depth(spec.name) == 30)
        await h.tearDown(spec)
    }

    @Test("kill -9 in the middle of replaying 5,000: every message is in the DLQ or back in its queue")
    func killMidReplay() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec()
        try await spec.declare(on: h.admin)
        try await seedDeadLetters(h, spec: spec, count: 5000)
        let p = Process()
        p.executableURL = WorkerProcess.binDirectory.appendingPathComponent("aira-admin")
        p.arguments = ["dlq", "replay", spec.name, "--all", "--rate", "2000"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        #expect(try await eventually(timeout: .seconds(30)) { try await h.depth(spec.name) >= 500 })
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        // The broker returns the killed replayer's unacked messages to the DLQ.
        var ids: [String] = []
        #expect(try await eventually(timeout: .seconds(20)) {
            ids = try await peekIDs(h, spec.deadLetterQueue) + peekIDs(h, spec.name)
            return ids.count >= 5000
        })
        let unique = Set(ids)
        #expect(unique.count == 5000, "lost: \(5000 - unique.count)")
        #expect(ids.count >= 5000)
        #expect(try await h.depth(spec.name) < 5000, "the kill came too late to test anything")
        await h.tearDown(spec)
    }

    @Test("purge by id, purge all with confirmation")
    func purge() async throws {
        let h = try await MessagingHarness.make()
        let spec = spec()
        try await spec.declare(on: h.admin)
        try await seedDeadLetters(h, spec: spec, count: 5)
        let before = try await peekIDs(h, spec.deadLetterQueue)
        let byID = try aira(["dlq", "purge", spec.name, "--id", "d2", "--yes"])
        #expect(byID.status == 0 && byID.stdout.contains("deleted 1"))
        #expect(try await peekIDs(h, spec.deadLetterQueue) == before.filter { $0 != "d2" })
        let refused = try aira(["dlq", "purge", spec.name], stdin: "no\n")
        #expect(refused.status != 0)
        #expect(try await h.depth(spec.deadLetterQueue) == 4)
        let confirmed = try aira(["dlq", "purge", spec.name], stdin: "yes\n")
        #expect(confirmed.status == 0 && confirmed.stdout.contains("deleted 4"))
        #expect(try await h.depth(spec.deadLetterQueue) == 0)
        await h.tearDown(spec)
    }

    @Test("bad arguments are usage errors")
    func usage() throws {
        let noFilter = try aira(["dlq", "replay", "some.queue"])
        #expect(noFilter.status == 64)
        #expect(noFilter.stderr.contains("--all"))
        let unknown = try aira(["dlq", "frobnicate"])
        #expect(unknown.status == 64)
        let badSince = try aira(["dlq", "show", "q", "--since", "yesterday-ish"])
        #expect(badSince.status != 0 && badSince.stderr.contains("--since"))
        let help = try aira(["dlq", "replay", "--help"])
        #expect(help.status == 0 && help.stdout.contains("--dry-run"))
    }
}

@Suite("aira-admin: migrations", .enabled(if: TestServers.available))
struct AdminMigrateTests {
    @Test("migrate applies new migrations once, in order, and reports it")
    func migrate() async throws {
        let (pg, schema) = try await isolatedPostgres("admin.migrate")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aira-migrations-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "CREATE TABLE widgets (id serial PRIMARY KEY);".write(to: dir.appendingPathComponent("0001_widgets.sql"), atomically: true, encoding: .utf8)
        let url = TestServers.databaseURL! + "?options=-csearch_path%3D\(schema)"
        let first = try aira(["migrate", "--dir", dir.path, "--database-url", url])
        #expect(first.status == 0 && first.stdout.contains("applied 1"), "\(first.stdout)\(first.stderr)")
        try "ALTER TABLE widgets ADD COLUMN name text;".write(to: dir.appendingPathComponent("0002_name.sql"), atomically: true, encoding: .utf8)
        let second = try aira(["migrate", "--dir", dir.path, "--database-url", url])
        #expect(second.stdout.contains("applied 2"))
        let third = try aira(["migrate", "--dir", dir.path, "--database-url", url])
        #expect(third.stdout.contains("up to date (2 migrations)"))
        #expect(try await pg.query("SELECT count(*) AS n FROM aira_schema_migrations").first?.decode("n", as: Int.self) == 2)
        let missing = try aira(["migrate", "--dir", "/nonexistent/folder", "--database-url", url])
        #expect(missing.status == 1 && missing.stderr.contains("cannot read migrations"))
        await dropSchema(pg, schema)
    }
}

@Suite("aira-admin: db", .enabled(if: TestServers.available))
struct AdminDatabaseTests {
    @Test("db slow lists the statements that cost the most, with a statement this test ran; db replica reports the replica")
    func slowAndReplica() async throws {
        let marker = "aira_slow_\(UUID().uuidString.prefix(8).lowercased())"  // names it on a fresh server
        let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        defer { Task { await db.shutdown() } }
        // A statement slower than anything else recently: 300 ms of pg_sleep, under a name of its own.
        try await db.query(PostgresQuery(unsafeSQL: "SELECT pg_sleep(0.3) AS \(marker)"))
        let slow = try aira(["db", "slow", "--sort", "mean", "--limit", "500", "--json"])
        #expect(slow.status == 0, "\(slow.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(slow.stdout.utf8)) as? [[String: Any]] ?? []
        // pg_stat_statements leaves aliases out of a statement's identity: on a server where this
        // test ran before, the statement is counted under the text (and marker) of its first run.
        let mine = try #require(rows.first { ($0["query"] as? String)?.contains("pg_sleep($1) AS aira_slow_") == true }, "\(slow.stdout.prefix(2000))")
        #expect((mine["meanMs"] as? Double ?? 0) >= 300 && (mine["calls"] as? Int ?? 0) >= 1)
        let table = try aira(["db", "slow", "--limit", "3"])
        #expect(table.status == 0 && table.stdout.hasPrefix("CALLS"))
        #expect(try aira(["db", "slow", "--sort", "fastest"]).status == 64)

        if let replica = PostsTests.replicaURL {
            let status = try aira(["db", "replica", "--read-url", replica])
            #expect(status.status == 0 && status.stdout.contains("replica: streaming"), "\(status.stdout)\(status.stderr)")
        }
        let none = try aira(["db", "replica", "--read-url", "postgres://aira:aira@127.0.0.1:\(try freePort())/aira"])
        #expect(none.status == 1 && none.stderr.contains("unreachable"))
    }
}

@Suite("aira-admin: queues", .enabled(if: TestServers.available))
struct AdminQueuesTests {
    @Test("queues shows ready, consumers, retrying and dead letters per queue")
    func queues() async throws {
        let h = try await MessagingHarness.make()
        let q = uniqueName("admin.queues")
        let spec = QueueSpec(name: q, bindings: ["\(q).key"], retry: RetryPolicy(tiers: [.seconds(10)], maxAttempts: 3))
        try await spec.declare(on: h.admin)
        for i in 0..<3 { try await h.publisher.publish(TestJob(id: "r\(i)", action: "ok"), routingKey: spec.bindings[0]) }
        try await h.publisher.publishRaw(exchange: "", routingKey: spec.retryQueue(.seconds(10)), body: Array("{}".utf8),
                                         properties: MessagePublisher.properties(type: TestJob.messageType, messageID: "t1", correlationID: nil, traceparent: nil))
        try await seedDeadLetters(h, spec: spec, count: 2)
        // Over AMQP only.
        let run = try aira(["queues", q, "--tiers", "10s", "--json"], without: ["AIRA_RABBITMQ_MANAGEMENT_URL"])
        #expect(run.status == 0, "\(run.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.first?["queue"] as? String == q)
        #expect(rows.first?["ready"] as? Int == 3)
        #expect(rows.first?["consumers"] as? Int == 0)
        #expect(rows.first?["retrying"] as? Int == 1)
        #expect(rows.first?["deadLetters"] as? Int == 2)
        let missing = try aira(["queues", uniqueName("nope")], without: ["AIRA_RABBITMQ_MANAGEMENT_URL"])
        #expect(missing.status == 0 && missing.stdout.contains("missing"))

        // With the management API: unacknowledged counts too (held by a consumer here).
        let holder = try await h.connection.openChannel()
        try await holder.setPrefetch(2)
        let held = try await holder.consume(queue: q)
        #expect(try await eventually { try await h.depth(q) == 1 })
        var row: [String: Any] = [:]
        // The management API's counts lag a few seconds behind.
        #expect(try await eventually(timeout: .seconds(20), every: .milliseconds(500)) {
            let m = try aira(["queues", q, "--json", "--management-url", "http://guest:guest@127.0.0.1:15672"])
            row = (try? JSONSerialization.jsonObject(with: Data(m.stdout.utf8)) as? [[String: Any]])?.first ?? [:]
            return row["unacked"] as? Int == 2 && row["consumers"] as? Int == 1
        }, "\(row)")
        #expect(row["ready"] as? Int == 1 && row["retrying"] as? Int == 1 && row["deadLetters"] as? Int == 2)
        try await holder.cancel(consumerTag: held.tag)
        await holder.close()
        await h.tearDown(spec)
    }
}

import AiraAccounts

@Suite("aira-admin: the first admin", .enabled(if: TestServers.available))
struct AdminCreateAdminTests {
    static let migrations = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Shared/Migrations").path

    @Test("create-admin reads the password from stdin, hashes it, refuses duplicates unless --promote")
    func createAdmin() async throws {
        let (pg, schema) = try await isolatedPostgres("admin.users")
        let url = TestServers.databaseURL! + "?options=-csearch_path%3D\(schema)"
        let noTable = try aira(["user", "create-admin", "--email", "root@example.org", "--database-url", url], stdin: "correct horse battery\n")
        #expect(noTable.status == 1 && noTable.stderr.contains("aira-admin migrate"), "\(noTable.stderr)")

        #expect(try aira(["migrate", "--dir", Self.migrations, "--database-url", url]).status == 0)
        let weak = try aira(["user", "create-admin", "--email", "root@example.org", "--database-url", url, "--bcrypt-cost", "4"],
                            stdin: "short\n")
        #expect(weak.status == 1 && weak.stderr.contains("at least 10 characters"))

        let made = try aira(["user", "create-admin", "--email", " Root@Example.org ", "--database-url", url, "--bcrypt-cost", "4"],
                            stdin: "correct horse battery\n")
        #expect(made.status == 0 && made.stdout.contains("created ADMIN root@example.org"), "\(made.stdout)\(made.stderr)")
        let store = AccountStore(database: pg)
        let admin = try #require(try await store.find(email: "ROOT@example.org"))
        #expect(admin.role == .admin && admin.emailVerifiedAt != nil)
        #expect(try await PasswordHasher(cost: 4).verify("correct horse battery", hash: admin.passwordHash))
        #expect(!admin.passwordHash.contains("correct"))

        let again = try aira(["user", "create-admin", "--email", "root@example.org", "--database-url", url], stdin: "x\n")
        #expect(again.status == 1 && again.stderr.contains("--promote"))

        let user = try await store.create(email: "ops@example.org", passwordHash: admin.passwordHash, role: .user)
        let promoted = try aira(["user", "create-admin", "--email", "ops@example.org", "--promote", "--database-url", url])
        #expect(promoted.status == 0 && promoted.stdout.contains("promoted"))
        #expect(try await store.find(id: user.id)?.role == .admin)
        await #expect(throws: AccountStore.StoreError.emailTaken) {
            try await store.create(email: "ops@example.org", passwordHash: "x", role: .user)
        }
        await dropSchema(pg, schema)
    }
}
