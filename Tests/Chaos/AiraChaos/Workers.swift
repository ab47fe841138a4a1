import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraWorkload
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// kill -9 of a worker three times while a stream of its work arrives; the supervisor restarts it.
func killWorker(_ service: String, kind: Workload.Kind, count: Int, perSecond: Int) async throws -> Outcome {
    try await withStack("kill-\(service)") { stack in try await killWorker(service, kind: kind, count: count, perSecond: perSecond, stack: stack) }
}

func killWorker(_ service: String, kind: Workload.Kind, count: Int, perSecond: Int, stack: LocalRun) async throws -> Outcome {
    var outcome = Outcome(name: "kill -9 \(service)", load: "\(count) \(kind.rawValue) messages at \(perSecond)/s",
                          faults: "SIGKILL ×3 (at 25/50/75 % of the stream)")
    try await stack.start(service)
    let work = Workload(kind: kind, tag: "chaos_\(kind.rawValue)_\(UUID().uuidString.prefix(6).lowercased())", database: database,
                        mediaRoot: URL(fileURLWithPath: stack.environment["AIRA_MEDIA_DIR"]!),
                        mailDirectory: stack.directory.appendingPathComponent("mail"), clip: environment["CHAOS_CLIP"])
    let videos = try await work.prepare(count: count)
    let (confirmed, retried) = (Counter(), Counter())
    async let streaming: Void = stream(work, count: count, perSecond: perSecond, stack: stack, videos: videos, confirmed: confirmed, retried: retried)
    let atKill = try await killRepeatedly(service, stack: stack, total: count, progress: { confirmed.current }, failures: &outcome.failures)
    let kills = atKill.count
    try await streaming
    outcome.sent = confirmed.current
    let effects = try await settle(work, count: count, timeout: .seconds(max(120, count / 20)))
    outcome.effects = effects.total
    outcome.lost = count - effects.distinct
    outcome.duplicated = effects.duplicated
    let after = try await stack.instances(service)
    outcome.notes.append("killed after \(atKill.map(String.init).joined(separator: ", ")) messages; restarts \(after.map(\.restarts).reduce(0, +))")
    if kind == .email {
        // SMTP has no transactions: a worker killed after the server accepted a mail and before
        // the send was recorded sends it again on redelivery (same Message-ID). At most the mails
        // in flight at each kill: its concurrency (docs/reliability.md).
        let concurrency = Int(environment["AIRA_CONCURRENCY"] ?? "") ?? 4
        outcome.allowedDuplicates = kills * concurrency
        outcome.notes.append("at-least-once: up to \(outcome.allowedDuplicates) resends allowed (\(kills) kills × \(concurrency) in flight)")
    }
    if after.first?.restarts != kills { outcome.failures.append("restarts \(after.first?.restarts ?? -1), expected \(kills)") }
    _ = try await stack.run(["stop"])
    try await work.clean()
    return outcome
}


/// One client's request, tried again as a careful client does while the answer is "try again"
/// (503, or no answer at all) for up to `patience`. The answers seen, first to last.
func persist(patience: Duration = .seconds(90), _ attempt: () async -> Answer) async -> [Answer] {
    let giveUp = ContinuousClock.now + patience
    var answers: [Answer] = []
    while true {
        let answer = await attempt()
        answers.append(answer)
        guard answer.status == 503 || answer.status == 0, ContinuousClock.now < giveUp else { return answers }
        let retryAfter = answer.headers.first(name: "Retry-After").flatMap(Double.init) ?? 0.5
        try? await Task.sleep(for: .milliseconds(Int(min(max(retryAfter, 0.2), 2) * 1000)))
    }
}

/// `count` requests at `perSecond`, at most `lanes` at once; `body(i)` makes request i.
func paced(count: Int, perSecond: Int, lanes: Int = 64, _ body: @escaping @Sendable (Int) async -> Void) async {
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for i in 0..<count {
            if i >= lanes { await group.next() }
            let due = start + .milliseconds(i * 1000 / perSecond)
            if ContinuousClock.now < due { try? await Task.sleep(until: due) }
            group.addTask { await body(i) }
        }
    }
}

/// The settings of a stack whose gateway takes a flood from one machine: limits above the load
/// (each answer is the path's own), client addresses from X-Forwarded-For, cheap bcrypt.
let floodSettings = ["AIRA_RATE_LIMIT_AUTH": "1000000/1m", "AIRA_RATE_LIMIT_AUTH_IP": "1000000/1m",
                     "AIRA_RATE_LIMIT_READ": "1000000/1m", "AIRA_RATE_LIMIT_READ_IP": "1000000/1m",
                     "AIRA_RATE_LIMIT_WRITE": "1000000/1m", "AIRA_RATE_LIMIT_WRITE_IP": "1000000/1m",
                     "AIRA_RATE_LIMIT_GPT": "1000000/1m", "AIRA_RATE_LIMIT_GPT_IP": "1000000/1m",
                     "AIRA_TRUST_FORWARDED_FOR": "true", "AIRA_BCRYPT_COST": "4", "AIRA_GPT_QUOTA_USER": "1000000"]

/// kill -9 of aira-auth three times while sign-ups stream through the gateway (gateway → RPC →
/// aira-auth). Every sign-up creates exactly one account: a client that saw 503 tries again, and a
/// retry answered 409 means an earlier try had landed.
func killAuth(count: Int, perSecond: Int) async throws -> Outcome {
    try await withStack("kill-auth") { stack in
        var outcome = Outcome(name: "kill -9 auth", load: "\(count) sign-ups through the gateway at \(perSecond)/s",
                              faults: "SIGKILL ×3 (at 25/50/75 % of the stream)")
        stack.extraEnvironment.merge(floodSettings) { $1 }
        try await stack.start("gateway,auth")
        let tag = "chaos-auth-\(UUID().uuidString.prefix(6).lowercased())"
        let port = stack.portBase
        let (done, statuses, retried, existed) = (Counter(), Tally(), Counter(), Counter())
        let unfinished = Mutex<[Int]>([])
        async let load: Void = paced(count: count, perSecond: perSecond) { i in
            let answers = await persist {
                await call(.POST, port: port, "/api/auth/signup", json: #"{"email":"\#(tag)-\#(i)@chaos.example","password":"chaos-password-1"}"#,
                           headers: [("X-Forwarded-For", "10.\(i % 250).\(i / 250 % 250).\(i % 199 + 1)")], timeout: .seconds(10))
            }
            answers.forEach { statuses.add($0.status, took: $0.took) }
            if answers.count > 1 { retried.add() }
            switch answers.last!.status {
            case 201: break
            case 409 where answers.count > 1: existed.add()
            default: unfinished.withLock { $0.append(i) }
            }
            done.add()
        }
        let atKill = try await killRepeatedly("auth", stack: stack, total: count, progress: { done.current }, failures: &outcome.failures)
        await load
        outcome.sent = count
        let rows = try await database.query("SELECT count(*) AS n, count(DISTINCT lower(email)) AS d FROM users WHERE email LIKE \(tag + "-%")").first
        outcome.effects = try rows?.decode("n", as: Int.self) ?? 0
        outcome.lost = count - (try rows?.decode("d", as: Int.self) ?? 0)
        outcome.duplicated = outcome.effects - (count - outcome.lost)
        outcome.serverErrors = statuses.serverErrors
        let left = unfinished.withLock { $0 }
        if !left.isEmpty { outcome.failures.append("\(left.count) sign-ups never answered 201 (first: \(left.prefix(5)))") }
        outcome.notes.append("killed after \(atKill.map(String.init).joined(separator: ", ")) sign-ups")
        outcome.notes.append("answers: \(statuses.summary)")
        outcome.notes.append("\(retried.current) clients tried again; \(existed.current) retries found their account already made")
        let after = try await stack.instances("auth")
        if after.first?.restarts != atKill.count { outcome.failures.append("restarts \(after.first?.restarts ?? -1), expected \(atKill.count)") }
        _ = try await stack.run(["stop"])
        _ = try await database.query("DELETE FROM users WHERE email LIKE \(tag + "-%")")
        return outcome
    }
}

/// kill -9 of aira-gpt-proxy three times while questions stream through the gateway. Every
/// question is answered once, and charged to the quota once (a redelivered question must not
/// count twice): the user's quota count equals the questions the upstream answered for it.
func killGPTProxy(count: Int, perSecond: Int) async throws -> Outcome {
    try await withStack("kill-gpt-proxy") { stack in
        var outcome = Outcome(name: "kill -9 gpt-proxy", load: "\(count) distinct GPT questions through the gateway at \(perSecond)/s",
                              faults: "SIGKILL ×3 (at 25/50/75 % of the stream)")
        stack.extraEnvironment.merge(floodSettings) { $1 }
        try await stack.start("gateway,auth,gpt-proxy,mock-llm")
        let tag = "chaos-gpt-\(UUID().uuidString.prefix(6).lowercased())"
        let port = stack.portBase
        let user = try await signUpAndLogIn(port: port, email: "\(tag)@chaos.example")
        let (done, statuses, retried, cachedRetries) = (Counter(), Tally(), Counter(), Counter())
        let unanswered = Mutex<[Int]>([])
        let highestUsed = Atomic<Int>(0)
        async let load: Void = paced(count: count, perSecond: perSecond) { i in
            let answers = await persist {
                await call(.POST, port: port, "/api/gpt/qna", json: #"{"question":"\#(tag) question number \#(i): why is the sky blue?"}"#,
                           token: user.token, timeout: .seconds(30))
            }
            answers.forEach { statuses.add($0.status, took: $0.took) }
            if answers.count > 1 { retried.add() }
            if let last = answers.last, last.status == 200, let json = last.json {
                if answers.count > 1, json["cached"] as? Bool == true { cachedRetries.add() }
                if let used = (json["quota"] as? [String: Any])?["used"] as? Int { highestUsed.max(used, ordering: .relaxed) }
            } else {
                unanswered.withLock { $0.append(i) }
            }
            done.add()
        }
        let atKill = try await killRepeatedly("gpt-proxy", stack: stack, total: count, progress: { done.current }, failures: &outcome.failures)
        await load
        outcome.sent = count
        let missing = unanswered.withLock { $0 }
        outcome.effects = count - missing.count
        outcome.lost = missing.count
        // Charged once per distinct question: a question answered from the cache (a retry whose
        // first try had reached the upstream) is free.
        let used = highestUsed.load(ordering: .relaxed)
        outcome.duplicated = max(0, used - count)
        outcome.serverErrors = statuses.serverErrors
        outcome.notes.append("killed after \(atKill.map(String.init).joined(separator: ", ")) questions")
        outcome.notes.append("answers: \(statuses.summary)")
        outcome.notes.append("quota charged \(used) for \(count) questions; \(retried.current) clients tried again, \(cachedRetries.current) of them answered from the cache")
        let after = try await stack.instances("gpt-proxy")
        if after.first?.restarts != atKill.count { outcome.failures.append("restarts \(after.first?.restarts ?? -1), expected \(atKill.count)") }
        _ = try await stack.run(["stop"])
        _ = try await database.query("DELETE FROM users WHERE email LIKE \(tag + "%")")
        return outcome
    }
}

/// kill -9 of the analyzer three times during a nightly run over `users` active users (in a
/// schema of the case's own); the supervisor restarts it, the run resumes (analyzer.md,
/// "Failures"). Each user must end with exactly one result for the day, and the run completed.
func killAnalyzer(users: Int) async throws -> Outcome {
    try await withStack("kill-analyzer") { stack in
        var outcome = Outcome(name: "kill -9 analyzer", load: "a nightly run over \(users) active users, fanned out at \(max(100, users / 20))/s",
                              faults: "SIGKILL ×3 (at 25/50/75 % of the users analysed), each time to the lock holder")
        let schema = "chaos_analyzer_\(UUID().uuidString.prefix(6).lowercased())"
        try await database.query("CREATE SCHEMA \(identifier: schema)")
        defer { Task { try? await database.query("DROP SCHEMA \(identifier: schema) CASCADE") } }
        stack.extraEnvironment["AIRA_DATABASE_SCHEMA"] = schema
        stack.extraEnvironment["AIRA_ANALYZER_LOCK_PREFIX"] = "\(schema):lock:"
        stack.extraEnvironment["AIRA_ANALYZER_CATCH_UP_DAYS"] = "0"  // only the run asked for below
        stack.extraEnvironment["AIRA_ANALYZER_CHECK_INTERVAL"] = "500ms"
        stack.extraEnvironment["AIRA_ANALYZER_TIMEZONE"] = "UTC"
        // The fan-out paced to take about 20 s, so each kill lands mid-run — on the instance that
        // holds the day's lock and publishes the jobs; a short lock lets the restarted one take over.
        stack.extraEnvironment["AIRA_ANALYSIS_FANOUT_RATE"] = "\(max(100, users / 20))"
        stack.extraEnvironment["AIRA_ANALYSIS_FANOUT_BATCH"] = "100"
        stack.extraEnvironment["AIRA_ANALYZER_LOCK_TTL"] = "5s"
        try await stack.start("analyzer")  // scripts/run migrates the schema first

        // `users` users, each active on the day and on some of the 28 before it.
        let day = "2020-01-29"
        let scoped = PostgresClient(configuration: PostgresConfiguration(url: database.configuration.url, poolSize: 2,
                                                                         queryTimeout: .seconds(300), searchPath: schema))
        defer { Task { await scoped.shutdown() } }
        try await scoped.query("""
            INSERT INTO users (id, email, password_hash)
            SELECT md5(\(schema) || '-user-' || i)::uuid, 'analysed-' || i || '@chaos.invalid', 'x' FROM generate_series(1, \(users)) AS i
            """)
        try await scoped.query("""
            INSERT INTO audit_log (message_id, type, user_id, occurred_at, attributes)
            SELECT 'c-' || d || '-' || k || '-' || u.id, k, u.id, \(day)::date - d + interval '10 hours',
                   CASE k WHEN 'gpt.asked' THEN jsonb_build_object('question', 'how do I learn topic ' || (abs(hashtext(u.id::text)) % 40))
                          ELSE '{}'::jsonb END
            FROM users u CROSS JOIN generate_series(0, 27) AS d CROSS JOIN (VALUES ('login'), ('gpt.asked')) AS e(k)
            WHERE d = 0 OR abs(hashtext(u.id::text || d::text)) % 3 = 0
            """)
        try await scoped.query("ANALYZE")

        let admin = try stack.spawn("\(binDirectory)/aira-admin", ["analysis", "run", "--date", day, "--timezone", "UTC"],
                                    environment: ["AIRA_DATABASE_SCHEMA": schema])
        let asked = try await admin.wait(timeout: .seconds(60))
        guard asked.status == 0 else { throw ChaosError("aira-admin analysis run: \(asked.output)") }

        // Progress: results stored for the day, polled.
        let analysed = Counter()
        let polling = Task {
            while !Task.isCancelled {
                if let n: Int = try? await scoped.query("SELECT count(*) AS n FROM analysis_results WHERE day = \(day)::date").first?.decode("n") {
                    analysed.add(n - analysed.current)
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { polling.cancel() }
        let atKill = try await killRepeatedly("analyzer", stack: stack, total: users, progress: { analysed.current },
                                              failures: &outcome.failures)
        // Settled: the run completed (or the time is up).
        let giveUp = ContinuousClock.now + .seconds(max(180, users / 20))
        var status = ""
        while ContinuousClock.now < giveUp {
            status = (try? await scoped.query("SELECT status FROM analysis_runs WHERE day = \(day)::date").first?.decode("status")) ?? ""
            if status == "completed" { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let rows: Int = try await scoped.query("SELECT count(*) AS n FROM analysis_results WHERE day = \(day)::date").first?.decode("n") ?? 0
        let distinct: Int = try await scoped.query("SELECT count(DISTINCT user_id) AS n FROM analysis_results WHERE day = \(day)::date")
            .first?.decode("n") ?? 0
        outcome.sent = users
        outcome.effects = rows
        outcome.lost = users - distinct
        outcome.duplicated = rows - distinct
        if status != "completed" { outcome.failures.append("the run is \(status.isEmpty ? "missing" : status), not completed") }
        let after = try await stack.instances("analyzer")
        outcome.notes.append("killed after \(atKill.map(String.init).joined(separator: ", ")) users analysed; restarts "
                             + "\(after.map(\.restarts).reduce(0, +)); run \(status)")
        if after.first?.restarts != atKill.count { outcome.failures.append("restarts \(after.first?.restarts ?? -1), expected \(atKill.count)") }
        _ = try await stack.run(["stop"])
        return outcome
    }
}
