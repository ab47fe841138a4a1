import AiraAMQP
import AiraAnalysis
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Testing

/// A schema of the test's own (migrated), a queue and lock prefix of its own, and aira-analyzer
/// processes pointed at them: runs, locks and jobs of different tests never meet.
final class AnalyzerFixture: @unchecked Sendable {
    let schema: String
    let database: PostgresClient
    let queue: String
    let lockPrefix: String
    var environment: [String: String]
    private(set) var analyzers: [(process: WorkerProcess, port: Int)] = []

    init(_ name: String, environment extra: [String: String] = [:]) async throws {
        self.schema = uniqueName("an_\(name)").replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
        let bootstrap = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
        try await bootstrap.query("CREATE SCHEMA \(identifier: self.schema)")
        await bootstrap.shutdown()
        self.database = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 4, searchPath: self.schema))
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Shared/Migrations")
        try await PostgresMigrator(client: self.database, logger: TestServers.logger).migrate(try Migration.load(from: dir))
        self.queue = uniqueName("analysis.user")
        self.lockPrefix = "test:\(self.queue):lock:"
        self.environment = [
            "AIRA_DATABASE_SCHEMA": self.schema, "AIRA_ANALYSIS_QUEUE": self.queue, "AIRA_ANALYZER_LOCK_PREFIX": self.lockPrefix,
            "AIRA_ANALYZER_TIMEZONE": "UTC", "AIRA_ANALYZER_CHECK_INTERVAL": "300ms", "AIRA_ANALYZER_CATCH_UP_DAYS": "0",
            "AIRA_RETRY_TIERS": "200ms", "AIRA_MAX_ATTEMPTS": "2", "AIRA_SHUTDOWN_TIMEOUT": "3s",
        ]
        self.environment.merge(extra) { $1 }
    }

    @discardableResult
    func startAnalyzer(_ name: String, environment extra: [String: String] = [:]) throws -> WorkerProcess {
        let port = try freePort()
        let env = self.environment.merging(extra) { $1 }.merging(["AIRA_HTTP_PORT": "\(port)"]) { $1 }
        let process = try WorkerProcess(executable: "aira-analyzer", name: name, environment: env)
        self.analyzers.append((process, port))
        return process
    }

    /// Accounts made directly (the analysis needs rows in `users`, not logins).
    func makeUsers(_ n: Int) async throws -> [UUID] {
        let ids = (0..<n).map { _ in UUID() }
        try await self.database.query("""
            INSERT INTO users (id, email, password_hash)
            SELECT id, id::text || '@example.com', 'not-a-hash' FROM unnest(\(PostgresArray(ids.map(\.lowercasedString)))::uuid[]) AS id
            """)
        return ids
    }

    struct Event {
        var user: UUID
        var type: String
        var at: Date
        var attributes: [String: String] = [:]
    }

    /// Audit rows as the audit writer stores them.
    func insert(_ events: [Event]) async throws {
        for chunk in stride(from: 0, to: events.count, by: 5000).map({ Array(events[$0..<min($0 + 5000, events.count)]) }) {
            try await self.database.query("""
                INSERT INTO audit_log (message_id, type, user_id, occurred_at, attributes)
                SELECT * FROM unnest(\(PostgresArray(chunk.map { _ in MessageID.random() }))::text[], \(PostgresArray(chunk.map(\.type)))::text[],
                                     \(PostgresArray(chunk.map { $0.user.lowercasedString }))::uuid[],
                                     \(PostgresArray(chunk.map { iso8601($0.at) }))::timestamptz[],
                                     \(PostgresArray(chunk.map { JSONText.object($0.attributes) }))::jsonb[])
                """)
        }
    }

    /// Noon UTC of `day`.
    static func noon(_ day: Day) -> Date { Date(timeIntervalSince1970: Double(day.ordinal * 86_400 + 43_200)) }

    func run(_ day: Day) async throws -> AnalysisRun? { try await AnalysisRuns(database: self.database).run(day) }

    /// Waits until the run of `day` completes.
    func waitForCompletion(_ day: Day, timeout: Duration = .seconds(60)) async throws -> AnalysisRun {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let run = try await self.run(day), run.status == .completed { return run }
            try await Task.sleep(for: .milliseconds(200))
        }
        let run = try await self.run(day)
        Issue.record("run of \(day) not completed: \(run.map { "\($0.status) \($0.published)/\($0.usersTotal) done \($0.succeeded) failed \($0.failed)" } ?? "no row")\n\(self.analyzers.map(\.process.log).joined(separator: "\n---\n").suffix(6000))")
        throw CancellationError()
    }

    func count(_ sql: PostgresQuery) async throws -> Int { try await self.database.query(sql).first?.decode("n") ?? -1 }

    func stop() async {
        for a in self.analyzers where a.process.isRunning { a.process.terminate() }
        for a in self.analyzers where await a.process.waitForExit(timeout: .seconds(15)) == nil { a.process.kill9() }
        if let connection = try? await TestServers.connect(name: "aira-test-cleanup"), let channel = try? await connection.openChannel() {
            for q in AnalysisJobQueue.names(self.queue) { _ = try? await channel.deleteQueue(q) }
            await connection.close()
        }
        _ = try? await self.database.query("DROP SCHEMA \(identifier: self.schema) CASCADE")
        await self.database.shutdown()
    }

    static func with(_ name: String, environment: [String: String] = [:], _ body: (AnalyzerFixture) async throws -> Void) async throws {
        let fixture = try await AnalyzerFixture(name, environment: environment)
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }
}

enum AnalysisJobQueue {
    static func names(_ queue: String) -> [String] {
        QueueSpec(name: queue, bindings: [queue], retry: RetryPolicy(tiers: [.milliseconds(200)], maxAttempts: 2)).allQueues
    }
}

/// Users whose habit (how many of the 29 days they are active) decides both their history and
/// whether they come back on the last day: a signal the model must find.
func plantedPopulation(_ users: [UUID], lastDay: Day, seed: UInt64) -> [AnalyzerFixture.Event] {
    var rng = seed
    func random() -> Double {
        rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(rng >> 11) / Double(1 << 53)
    }
    var events: [AnalyzerFixture.Event] = []
    for user in users {
        let habit = random()
        for offset in 0...28 where random() < habit {
            let at = AnalyzerFixture.noon(lastDay - 28 + offset)
            events.append(.init(user: user, type: "login", at: at))
            if random() < 0.5 { events.append(.init(user: user, type: "gpt.asked", at: at, attributes: ["question": "how do I bake sourdough bread"])) }
        }
    }
    return events
}

@Suite("aira-analyzer: nightly runs across instances", .enabled(if: TestServers.available))
struct AnalyzerTests {
    @Test("two instances at the trigger time: exactly one run, every active user analysed once; missed days caught up")
    func scheduledOnce() async throws {
        // Keep the trigger (a few seconds ahead) on today's date.
        let secondOfDay = Int(Date().timeIntervalSince1970) % 86_400
        if secondOfDay > 86_400 - 40 { try await Task.sleep(for: .seconds(Double(86_400 - secondOfDay + 2))) }
        let now = Date()
        let today = Day(secondsSinceEpoch: now.timeIntervalSince1970, offsetSeconds: 0)
        let yesterday = today - 1
        let trigger = Int(now.timeIntervalSince1970) % 86_400 + 15
        let triggerDate = Date(timeIntervalSince1970: Double(Int(now.timeIntervalSince1970) + 15))
        let time = "\(trigger / 3600):\(trigger % 3600 / 60):\(trigger % 60)".split(separator: ":").map { $0.count == 1 ? "0\($0)" : String($0) }.joined(separator: ":")
        try await AnalyzerFixture.with("sched", environment: ["AIRA_ANALYZER_TIME": time, "AIRA_ANALYZER_CATCH_UP_DAYS": "2"]) { f in
            let users = try await f.makeUsers(30)
            // 20 active yesterday, 10 the day before; one event for someone without an account.
            var events = users.prefix(20).map { AnalyzerFixture.Event(user: $0, type: "video_played", at: AnalyzerFixture.noon(yesterday)) }
            events += users.suffix(10).map { AnalyzerFixture.Event(user: $0, type: "login", at: AnalyzerFixture.noon(yesterday - 1)) }
            events.append(.init(user: UUID(), type: "login", at: AnalyzerFixture.noon(yesterday)))
            // A stranger's failed logins are not the user's activity.
            events.append(.init(user: users[25], type: "login_failed", at: AnalyzerFixture.noon(yesterday)))
            try await f.insert(events)

            try f.startAnalyzer("a")
            try f.startAnalyzer("b")
            // Before the trigger: the two missed days (yesterday-1, yesterday-2) are caught up.
            let caughtUp = try await f.waitForCompletion(yesterday - 1)
            #expect(caughtUp.trigger == "catch_up" && caughtUp.usersTotal == 10 && caughtUp.succeeded == 10)
            #expect(try await f.waitForCompletion(yesterday - 2).usersTotal == 0)
            if Date() < triggerDate - 1 {
                #expect(try await f.run(yesterday) == nil, "yesterday's run waits for its time")
            }

            let run = try await f.waitForCompletion(yesterday, timeout: .seconds(40))
            #expect(run.trigger == "schedule")
            #expect(run.usersTotal == 20 && run.succeeded == 20 && run.failed == 0 && run.published == 20, "\(run)")
            #expect(run.durationMs != nil && run.generation == 1)
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_runs") == 3)
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_results WHERE day = \(yesterday.description)::date") == 20)
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_run_users WHERE state <> 'done'") == 0)
            // Both instances shared the consuming; the counters add up to the users (no double work in effect).
            let logs = f.analyzers.map(\.process.log).joined()
            #expect(logs.components(separatedBy: "\"run started\"").count - 1 == 3, "one 'run started' per day across both instances")
        }
    }

    @Test("the lock holder killed mid-fan-out: another instance resumes, every user counted once; the model finds the planted signal")
    func resumeAfterKill() async throws {
        try await AnalyzerFixture.with("resume", environment: ["AIRA_ANALYZER_LOCK_TTL": "2s", "AIRA_ANALYSIS_FANOUT_BATCH": "20"]) { f in
            let day = Day(ordinal: Int.random(in: 20_000...30_000))
            let users = try await f.makeUsers(400)
            try await f.insert(plantedPopulation(users, lastDay: day, seed: 42))
            let active = try await f.count("""
                SELECT count(DISTINCT user_id) AS n FROM audit_log
                WHERE occurred_at >= \(day.description)::date::timestamp AT TIME ZONE 'UTC'
                  AND occurred_at < (\(day.description)::date + 1)::timestamp AT TIME ZONE 'UTC'
                """)
            try #require(active > 100)
            let requested = try aira(["analysis", "run", "--date", day.description, "--timezone", "UTC"], environment: ["AIRA_DATABASE_SCHEMA": f.schema])
            #expect(requested.status == 0 && requested.stdout.contains("generation 1"), "\(requested)")

            // The first instance fans out slowly (50 users/s) and is killed part-way.
            let first = try f.startAnalyzer("holder", environment: ["AIRA_ANALYSIS_FANOUT_RATE": "50"])
            let deadline = ContinuousClock.now + .seconds(30)
            var published = 0
            while ContinuousClock.now < deadline {
                if let run = try await f.run(day), run.status == .fanningOut, run.published >= 40 { published = run.published; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            first.kill9()
            try #require(published >= 40 && published < active, "killed at \(published) of \(active)")
            let successor = try f.startAnalyzer("successor")
            let run = try await f.waitForCompletion(day)
            #expect(successor.log.contains("resuming a run another instance left"))
            #expect(run.usersTotal == active && run.published == active && run.succeeded == active && run.failed == 0, "\(run)")
            #expect(run.holder != nil)
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_results WHERE day = \(day.description)::date") == active)
            let model = try #require(run.model)
            let auc = try #require(model.fit.auc)
            // The held-out set is small (a fifth of a few hundred users), so its AUC varies from
            // run to run (0.68 in one CI run); above 0.65 is well clear of chance (0.5).
            #expect(auc > 0.65, "held-out AUC \(auc) on a planted signal")
            #expect(model.coefficients.count == ReturnFeatures.names.count && model.fit.testSize > 0)
            // Those who came often score higher than those who hardly came.
            let scores = try await f.database.query("""
                SELECT avg(return_likelihood) FILTER (WHERE active_days >= 20) AS busy, avg(return_likelihood) FILTER (WHERE active_days <= 5) AS idle
                FROM analysis_results WHERE day = \(day.description)::date
                """).first
            #expect(try scores?.decode("busy", as: Double.self) ?? 0 > (try scores?.decode("idle", as: Double.self) ?? 1))

            let status = try aira(["analysis", "status", "--json"], environment: ["AIRA_DATABASE_SCHEMA": f.schema])
            #expect(status.status == 0 && status.stdout.contains("\"completed\"") && status.stdout.contains(day.description), "\(status)")
        }
    }

    @Test("with many users the model and vocabulary are learnt from a sample, and every user is still analysed")
    func sampledPreparation() async throws {
        try await AnalyzerFixture.with("sample", environment: ["AIRA_ANALYSIS_SAMPLE_USERS": "100"]) { f in
            let day = Day(ordinal: Int.random(in: 20_000...30_000))
            let users = try await f.makeUsers(300)
            try await f.insert(plantedPopulation(users, lastDay: day, seed: 7))
            try f.startAnalyzer("a")
            try await AnalysisRuns(database: f.database).request(day, timezone: "UTC")
            let run = try await f.waitForCompletion(day)
            let model = try #require(run.model)
            let learnt = model.fit.trainSize + model.fit.testSize
            #expect(learnt >= 50 && learnt <= 170, "about 100 of 300 users sampled, got \(learnt)")
            #expect(run.population <= 170, "vocabulary population \(run.population)")
            #expect(run.succeeded == run.usersTotal && run.usersTotal > 100)
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_results WHERE return_likelihood IS NOT NULL") == run.usersTotal)
        }
    }

    @Test("a user whose analysis fails is dead-lettered with the reason and counted as failed; the run completes")
    func failingUser() async throws {
        try await AnalyzerFixture.with("fail", environment: ["AIRA_ANALYSIS_MAX_EVENTS": "25"]) { f in
            let day = Day(ordinal: Int.random(in: 20_000...30_000))
            let users = try await f.makeUsers(11)
            var events = users.prefix(10).map { AnalyzerFixture.Event(user: $0, type: "login", at: AnalyzerFixture.noon(day)) }
            events += (0..<30).map { _ in AnalyzerFixture.Event(user: users[10], type: "playlist_created", at: AnalyzerFixture.noon(day)) }
            try await f.insert(events)
            try f.startAnalyzer("a")
            try await AnalysisRuns(database: f.database).request(day, timezone: "UTC")
            let run = try await f.waitForCompletion(day)
            #expect(run.usersTotal == 11 && run.succeeded == 10 && run.failed == 1, "\(run)")
            let reason: String? = try await f.database.query("""
                SELECT reason FROM analysis_run_users WHERE day = \(day.description)::date AND user_id = \(users[10]) AND state = 'failed'
                """).first?.decodeOptional("reason")
            #expect(reason?.contains("AIRA_ANALYSIS_MAX_EVENTS") == true, "\(reason ?? "no failed row")")
            let letter = try await takeDeadLetter(from: "\(f.queue).dlq") { $0.bodyText.lowercased().contains(users[10].lowercasedString) }
            #expect(letter?.errorType == "analysis_failed", "\(String(describing: letter))")
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_results WHERE user_id = \(users[10])") == 0)

            // A deliberate re-run is the next generation, with the same outcome and no double counting.
            try await AnalysisRuns(database: f.database).request(day, timezone: "UTC")
            let again = try await f.waitForCompletion(day)
            #expect(again.generation == 2 && again.succeeded == 10 && again.failed == 1, "\(again)")
            #expect(try await f.count("SELECT count(*) AS n FROM analysis_results WHERE day = \(day.description)::date AND generation = 2") == 10)
            _ = try await takeDeadLetter(from: "\(f.queue).dlq") { $0.bodyText.lowercased().contains(users[10].lowercasedString) }
        }
    }
}

@Suite("GET /api/users/me/insights", .enabled(if: TestServers.available))
struct InsightsTests {
    @Test("each user reads their own latest insights only; none yet → 404; anonymous → 401")
    func ownInsights() async throws {
        try await AnalyzerFixture.with("insights") { f in
            try await ServiceStack.with(environment: ["AIRA_DATABASE_SCHEMA": f.schema]) { stack in
                var sessions: [ServiceStack.Session] = []
                for name in ["alice", "bob", "carol"] {
                    let (email, password) = try await stack.signup(name)
                    sessions.append(try await stack.login(email, password))
                }
                let (alice, bob, carol) = (UUID(uuidString: sessions[0].userID)!, UUID(uuidString: sessions[1].userID)!, sessions[2])
                let day = Day(secondsSinceEpoch: Date().timeIntervalSince1970, offsetSeconds: 0) - 1
                let video = UUID()
                try await f.database.query("""
                    INSERT INTO videos (id, owner_id, title, media_type, size_bytes, status)
                    VALUES (\(video), \(bob), 'Knitting a winter scarf', 'video/mp4', 1, 'ready')
                    """)
                let noon = AnalyzerFixture.noon(day)
                try await f.insert([
                    .init(user: alice, type: "gpt.asked", at: noon, attributes: ["question": "What is a good telescope for astronomy?"]),
                    .init(user: alice, type: "gpt.asked", at: noon - 86_400, attributes: ["question": "Astronomy apps for stargazing"]),
                    .init(user: bob, type: "video_played", at: noon, attributes: ["videoId": video.lowercasedString]),
                    .init(user: bob, type: "video_played", at: noon, attributes: ["videoId": "not-a-uuid"]),
                ])
                try f.startAnalyzer("a")
                try await AnalysisRuns(database: f.database).request(day, timezone: "UTC")
                _ = try await f.waitForCompletion(day)

                let a = try await stack.call("GET", "/api/users/me/insights", token: sessions[0].access)
                #expect(a.status == 200, "\(a)")
                #expect(a["userId"] == alice.lowercasedString && a["day"] == day.description)
                let aTerms = (a.json["interests"] as? [[String: Any]])?.compactMap { $0["term"] as? String } ?? []
                #expect(aTerms.contains("astronomy") && aTerms.contains("telescope") && !aTerms.contains("knitting"), "\(aTerms)")
                // Signup and login happened today, outside the window; the two questions count.
                #expect((a.json["countsByType"] as? [String: Int])?["gpt.asked"] == 2, "\(a)")
                #expect((a.json["countsByDay"] as? [[String: Any]])?.count == 28)

                let b = try await stack.call("GET", "/api/users/me/insights", token: sessions[1].access)
                #expect(b.status == 200 && b["userId"] == bob.lowercasedString, "\(b)")
                let bTerms = (b.json["interests"] as? [[String: Any]])?.compactMap { $0["term"] as? String } ?? []
                #expect(bTerms.contains("knitting") && !bTerms.contains("astronomy"), "\(bTerms)")
                #expect((b.json["countsByType"] as? [String: Int])?["video_played"] == 2)

                let c = try await stack.call("GET", "/api/users/me/insights", token: carol.access)
                #expect(c.status == 404 && c.errorCode == "no_insights", "\(c)")
                let anonymous = try await stack.call("GET", "/api/users/me/insights")
                #expect(anonymous.status == 401)
            }
        }
    }
}
