// aira-bench-analyzer (scripts/bench-analyzer): one full nightly run over a synthetic population,
// with 1 and with 2 aira-analyzer processes. Bounded: BENCH_USERS users, each round with a time
// limit. The population lives in a schema of its own (BENCH_SCHEMA), kept between invocations so
// seeding is paid once (BENCH_RESEED=1 seeds again).
//
// Users get a "habit" (share of days active) from a hash of their id; on each active day of the
// 29 days ending on the analysed day they log in, and half the time also ask a question and
// play a video. Reported per round: run duration (started → completed, from the run row),
// users/s, and users per CPU-second — of the analyzer processes alone, and of the whole
// machine (analyzers + PostgreSQL + RabbitMQ + Redis) over the run.
import AiraAnalysis
import AiraCore
import AiraPostgres
import Foundation
import Logging

let env = EnvironmentReader()
let users = try env.int("BENCH_USERS", default: 100_000, range: 100...2_000_000)
let instancesList = env.string("BENCH_INSTANCES", default: "1,2").split(separator: ",").compactMap { Int($0) }
let limit = try env.duration("BENCH_TIME_LIMIT", default: .seconds(900))
let schema = env.string("BENCH_SCHEMA", default: "bench_analyzer")
let analyzerPath = env.string("BENCH_ANALYZER", default: ".build/release/aira-analyzer")
let migrations = env.string("AIRA_MIGRATIONS_DIR", default: "Shared/Migrations")
let url = env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira")
let day = Day("2026-01-31")!
var logger = Logger(label: "bench")
logger.logLevel = .warning

let bootstrap = PostgresClient(configuration: PostgresConfiguration(url: url, poolSize: 1))
let reseed = env.string("BENCH_RESEED", default: "0") == "1"
if reseed { try await bootstrap.query("DROP SCHEMA IF EXISTS \(identifier: schema) CASCADE") }
try await bootstrap.query("CREATE SCHEMA IF NOT EXISTS \(identifier: schema)")
await bootstrap.shutdown()
let database = PostgresClient(configuration: PostgresConfiguration(url: url, poolSize: 2, queryTimeout: .seconds(1800), searchPath: schema))
try await PostgresMigrator(client: database, logger: logger).migrate(try Migration.load(from: URL(fileURLWithPath: migrations)))

let have: Int = try await database.query("SELECT count(*) AS n FROM users").first?.decode("n") ?? 0
if have != users {
    let seedStart = ContinuousClock.now
    print("seeding \(users) users with 29 days of activity in schema \(schema) …")
    try await database.query("TRUNCATE users, audit_log, videos, analysis_runs, analysis_results CASCADE")
    try await database.query("""
        INSERT INTO users (id, email, password_hash)
        SELECT md5('bench-user-' || i)::uuid, 'bench-' || i || '@example.com', 'x' FROM generate_series(1, \(users)) AS i
        """)
    let topics = ["sourdough bread baking", "marathon training plan", "python asyncio tutorial", "astronomy telescope guide",
                  "knitting winter scarf", "guitar chord progressions", "vegan protein recipes", "chess opening theory",
                  "watercolor landscape painting", "rust ownership explained", "kubernetes autoscaling", "birdwatching in spring",
                  "home espresso extraction", "japanese grammar particles", "bouldering technique", "tax return deadlines"]
    try await database.query("""
        INSERT INTO videos (id, owner_id, title, media_type, size_bytes, status)
        SELECT md5('bench-video-' || i)::uuid, md5('bench-user-1')::uuid,
               (\(PostgresArray(topics))::text[])[1 + i % \(topics.count)] || ' part ' || i, 'video/mp4', 1, 'ready'
        FROM generate_series(0, 499) AS i
        """)
    // Day by day (keeps each statement's memory small).
    for offset in 0...28 {
        let d = day - 28 + offset
        try await database.query("""
            WITH u AS (
                SELECT id, (abs(hashtext(id::text)) % 1000) / 1000.0 AS habit, abs(hashtext(id::text || \(d.description))) AS h
                FROM users
            ), active AS (SELECT id, h FROM u WHERE (h % 1000) / 1000.0 < habit)
            INSERT INTO audit_log (message_id, type, user_id, occurred_at, attributes)
            SELECT 'b-' || \(d.description) || '-' || e.kind || '-' || a.id, e.kind, a.id,
                   \(d.description)::date + make_interval(secs => 3600 + (a.h % 72000)),
                   CASE e.kind
                     WHEN 'gpt.asked' THEN jsonb_build_object('question', 'how to get better at ' ||
                                (\(PostgresArray(topics))::text[])[1 + (a.h / 7) % \(topics.count)] || ' quickly')
                     WHEN 'video_played' THEN jsonb_build_object('videoId', md5('bench-video-' || ((a.h / 13) % 500))::uuid::text)
                     ELSE '{}'::jsonb END
            FROM active a CROSS JOIN (VALUES ('login'), ('gpt.asked'), ('video_played')) AS e(kind)
            WHERE e.kind = 'login' OR (a.h / 3) % 2 = 0
            """)
    }
    try await database.query("ANALYZE")
    let events: Int = try await database.query("SELECT count(*) AS n FROM audit_log").first?.decode("n") ?? 0
    print("seeded \(events) audit events in \((ContinuousClock.now - seedStart).milliseconds / 1000) s")
}


for instances in instancesList {
    let runs = AnalysisRuns(database: database)
    _ = try await database.query("DELETE FROM analysis_results WHERE day = \(day.description)::date")
    var analyzers: [Process] = []
    for i in 0..<instances {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: analyzerPath)
        var environment = ProcessInfo.processInfo.environment
        environment["AIRA_HTTP_PORT"] = "\(18_600 + i)"
        environment["AIRA_LOG_LEVEL"] = env.string("BENCH_LOG_LEVEL", default: "warning")
        environment["AIRA_DATABASE_SCHEMA"] = schema
        environment["AIRA_ANALYSIS_QUEUE"] = "bench.analysis.user"
        environment["AIRA_ANALYZER_LOCK_PREFIX"] = "bench:analysis:lock:"
        environment["AIRA_ANALYZER_CATCH_UP_DAYS"] = "0"
        environment["AIRA_ANALYZER_CHECK_INTERVAL"] = "200ms"
        p.environment = environment
        // BENCH_LOG_DIR: keep each analyzer's log (e.g. with BENCH_LOG_LEVEL=info, "run prepared" and its ms).
        let logDir = env.string("BENCH_LOG_DIR", default: "")
        if !logDir.isEmpty {
            let path = "\(logDir)/analyzer-\(instances)-\(i).log"
            FileManager.default.createFile(atPath: path, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: path)
        }
        try p.run()
        analyzers.append(p)
    }
    try await Task.sleep(for: .seconds(2)) // connected and consuming
    let cpuBefore = analyzers.map { CPUTime.process($0.processIdentifier) }.reduce(0, +)
    let machineBefore = CPUTime.machine()
    let started = ContinuousClock.now
    let requested = try await runs.request(day, timezone: "UTC", trigger: "manual")
    var run = requested
    while ContinuousClock.now - started < limit {
        try await Task.sleep(for: .milliseconds(100))
        guard let current = try await runs.run(day) else { continue }
        run = current
        if run.status == .completed { break }
    }
    let cpu = analyzers.map { CPUTime.process($0.processIdentifier) }.reduce(0, +) - cpuBefore
    let machine = (CPUTime.machine() - machineBefore).busy
    for p in analyzers { p.terminate() }
    for p in analyzers { while p.isRunning { try await Task.sleep(for: .milliseconds(50)) } }
    guard run.status == .completed, run.generation == requested.generation, let ms = run.durationMs else {
        print("FAILED: run not completed within \(limit): \(run.status.rawValue) \(run.published)/\(run.usersTotal), done \(run.succeeded), failed \(run.failed)")
        exit(1)
    }
    let seconds = Double(ms) / 1000
    func f(_ x: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", x) }
    print("| \(instances) | \(run.usersTotal) | \(run.failed) | \(f(seconds, 1)) s | \(f(Double(run.usersTotal) / seconds)) | \(f(cpu, 1)) s | **\(f(Double(run.usersTotal) / cpu))** | \(f(machine, 1)) s | \(f(Double(run.usersTotal) / machine)) | \(f(run.model?.fit.auc ?? 0, 3)) |")
}
await database.shutdown()
