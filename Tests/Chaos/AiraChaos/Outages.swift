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

/// RabbitMQ killed (SIGKILL to the broker) and started again while audit events stream in and
/// clients call the gateway: confirmed messages all stored, every service back without a restart,
/// the gateway answering 503 (not 500, not a hang) while the broker is gone.
func killRabbitMQ(count: Int, perSecond: Int) async throws -> Outcome {
    try await withStack("kill-rabbitmq") { stack in try await killRabbitMQ(count: count, perSecond: perSecond, stack: stack) }
}

func killRabbitMQ(count: Int, perSecond: Int, stack: LocalRun) async throws -> Outcome {
    var outcome = Outcome(name: "kill -9 RabbitMQ, restart", load: "\(count) audit messages at \(perSecond)/s + gateway calls every 100 ms",
                          faults: "SIGKILL to the broker at 30 %, started again 5 s later")
    // The calls are failed logins from one address: limits above them, so each answer is the path's own.
    stack.extraEnvironment.merge(["AIRA_RATE_LIMIT_AUTH": "100000/1m", "AIRA_RATE_LIMIT_AUTH_IP": "100000/1m",
                                  "AIRA_TRUST_FORWARDED_FOR": "true"]) { $1 }
    try await stack.start("gateway,auth,audit-writer")
    let work = Workload(kind: .audit, tag: "chaos_broker_\(UUID().uuidString.prefix(6).lowercased())", database: database,
                        mediaRoot: URL(fileURLWithPath: stack.environment["AIRA_MEDIA_DIR"]!))
    let (confirmed, retried) = (Counter(), Counter())
    let gatewayPort = stack.portBase
    // Clients: a login attempt (gateway → RPC → aira-auth) every 100 ms, 5 s limit each.
    let stopCalls = Counter()
    let statuses = Tally()
    let calls = Task {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(gatewayPort)/api/auth/login")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.timeoutInterval = 5
        while stopCalls.current == 0 {
            // A new address and account each time: aira-auth's login throttling stays out of it.
            request.setValue("10.9.\(Int.random(in: 0...255)).\(Int.random(in: 1...254))", forHTTPHeaderField: "X-Forwarded-For")
            request.httpBody = Data(#"{"email":"nobody-\#(UUID().uuidString.prefix(8))@example.com","password":"not the password"}"#.utf8)
            let sent = ContinuousClock.now
            let status = await withCheckedContinuation { (c: CheckedContinuation<Int, Never>) in
                URLSession.shared.dataTask(with: request) { _, response, _ in
                    c.resume(returning: (response as? HTTPURLResponse)?.statusCode ?? 0)
                }.resume()
            }
            statuses.add(status, took: ContinuousClock.now - sent)
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
    async let streaming: Void = stream(work, count: count, perSecond: perSecond, stack: stack, videos: [], confirmed: confirmed, retried: retried)
    while confirmed.current < count * 3 / 10 { try await Task.sleep(for: .milliseconds(50)) }
    let pidFile = dataDirectory.appendingPathComponent("rabbitmq/rabbitmq.pid")
    guard let text = try? String(contentsOf: pidFile, encoding: .utf8), let brokerPID = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw ChaosError("no broker pid in \(pidFile.path)")
    }
    kill(brokerPID, SIGKILL)
    let killedAt = ContinuousClock.now
    log("RabbitMQ: SIGKILL (pid \(brokerPID)) after \(confirmed.current) of \(count) messages")
    try await Task.sleep(for: .seconds(5))
    let started = try await stack.script("servers", ["start"], timeout: .seconds(120))
    guard started.status == 0 else { throw ChaosError("RabbitMQ did not start again:\n\(started.output.suffix(2000))") }
    log("RabbitMQ: running again \(seconds(ContinuousClock.now - killedAt)) after the kill")
    // Every service ready again, by itself.
    var back: Duration?
    for _ in 0..<600 {
        let status = try await stack.status()
        if status.instances.allSatisfy({ $0.alive && $0.ready == "ready" && ($0.service == "gateway" || !$0.queues.isEmpty) }) {
            back = ContinuousClock.now - killedAt
            break
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    try await streaming
    stopCalls.add()
    await calls.value
    outcome.sent = confirmed.current
    let effects = try await settle(work, count: count, timeout: .seconds(120))
    outcome.effects = effects.total
    outcome.lost = count - effects.distinct
    outcome.duplicated = effects.duplicated
    let seen = statuses.all
    outcome.serverErrors = seen.filter { $0.key >= 500 && $0.key != 503 }.values.reduce(0, +)
    let hung = seen[0] ?? 0
    if hung > 0 { outcome.failures.append("\(hung) gateway calls got no answer") }
    let longest = statuses.longest
    let answers = seen.sorted { $0.key < $1.key }.map {
        "\($0.key == 0 ? "no answer" : String($0.key)) ×\($0.value) (slowest \(Int((Double(longest[$0.key]?.components.attoseconds ?? 0) / 1e15 + Double(longest[$0.key]?.components.seconds ?? 0) * 1000).rounded())) ms)"
    }
    outcome.notes.append("gateway: \(answers.joined(separator: ", "))")
    outcome.notes.append("publishes retried \(retried.current)")
    if let back { outcome.notes.append("every service ready again \(seconds(back)) after the kill") }
    else { outcome.failures.append("not every service was ready again within 120 s") }
    let restarts = try await stack.status().instances.map(\.restarts).reduce(0, +)
    outcome.notes.append("process restarts \(restarts)")
    if restarts > 0 { outcome.failures.append("\(restarts) service processes had to be restarted") }
    _ = try await stack.run(["stop"])
    return outcome
}


/// Calls through the gateway in loops, each answer counted by phase (before, during and after a
/// fault) and kind.
final class PhasedCalls: Sendable {
    let phase = Mutex("before")
    private let tallies = Mutex<[String: Tally]>([:])
    private let stopped = Atomic<Bool>(false)

    func tally(_ kind: String, _ phase: String) -> Tally {
        self.tallies.withLock { t in
            if let existing = t["\(kind) \(phase)"] { return existing }
            let new = Tally()
            t["\(kind) \(phase)"] = new
            return new
        }
    }

    /// Runs `attempt` every `every` until stopped.
    func loop(_ kind: String, every: Duration = .milliseconds(100), _ attempt: @escaping @Sendable () async -> Answer) -> Task<Void, Never> {
        Task {
            while !self.stopped.load(ordering: .relaxed) {
                let phase = self.phase.withLock { $0 }
                let answer = await attempt()
                self.tally(kind, phase).add(answer.status, took: answer.took)
                if answer.status >= 500 && answer.status != 503 { log("\(kind) (\(phase)): \(answer.status) \(answer.body.prefix(300))") }
                try? await Task.sleep(for: every)
            }
        }
    }

    func stop() { self.stopped.store(true, ordering: .relaxed) }
    var all: [(String, Tally)] { self.tallies.withLock { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } } }
}

/// Waits (up to `timeout`) until every instance of the stack is alive, ready and consuming.
func allReady(_ stack: LocalRun, timeout: Duration = .seconds(120)) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let status = try await stack.status()
        if status.instances.allSatisfy({ $0.alive && $0.ready == "ready" && ($0.service == "gateway" || $0.service == "mock-llm" || !$0.queues.isEmpty) }) {
            return true
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    return false
}

/// Redis killed for `outage` while clients log in and ask GPT questions (cached and not) through
/// the gateway: logins work, answers are served (uncached: the cache is Redis), and nothing
/// answers 5xx beyond the documented 503.
func redisDown(outage: Duration, around: Duration) async throws -> Outcome {
    try await withStack("redis-down") { stack in
        var outcome = Outcome(name: "Redis down \(seconds(outage))",
                              load: "a login, a cached and an uncached GPT question through the gateway, each every 100 ms",
                              faults: "SIGKILL to Redis, started again \(seconds(outage)) later")
        stack.extraEnvironment.merge(floodSettings) { $1 }
        try await stack.start("gateway,auth,gpt-proxy,mock-llm")
        let tag = "chaos-redis-\(UUID().uuidString.prefix(6).lowercased())"
        let port = stack.portBase
        let email = "\(tag)@chaos.example"
        let user = try await signUpAndLogIn(port: port, email: email)
        let cachedQuestion = #"{"question":"\#(tag): what is the cached question?"}"#
        let primed = await call(.POST, port: port, "/api/gpt/qna", json: cachedQuestion, token: user.token, timeout: .seconds(30))
        guard primed.status == 200 else { throw ChaosError("the first question: \(primed.status) \(primed.body)") }
        let calls = PhasedCalls()
        let counter = Counter()
        let loops = [
            calls.loop("login") {
                await call(.POST, port: port, "/api/auth/login", json: #"{"email":"\#(email)","password":"chaos-password-1"}"#)
            },
            calls.loop("cached question") { await call(.POST, port: port, "/api/gpt/qna", json: cachedQuestion, token: user.token) },
            calls.loop("new question") {
                counter.add()
                return await call(.POST, port: port, "/api/gpt/qna", json: #"{"question":"\#(tag): new question \#(counter.current)?"}"#, token: user.token)
            },
        ]
        try await Task.sleep(for: around)
        let killed = try await stack.script("servers", ["kill", "redis"], timeout: .seconds(30))
        guard killed.status == 0 else { throw ChaosError("cannot kill Redis: \(killed.output)") }
        calls.phase.withLock { $0 = "during" }
        log("Redis: killed")
        try await Task.sleep(for: outage)
        let started = try await stack.script("servers", ["start"], timeout: .seconds(120))
        guard started.status == 0 else { throw ChaosError("Redis did not start again:\n\(started.output.suffix(2000))") }
        calls.phase.withLock { $0 = "after" }
        log("Redis: running again")
        let back = try await allReady(stack)
        try await Task.sleep(for: around)
        calls.stop()
        for loop in loops { await loop.value }
        var answered = 0
        for (name, tally) in calls.all {
            outcome.notes.append("\(name): \(tally.summary)")
            answered += tally.total
            outcome.serverErrors = (outcome.serverErrors ?? 0) + tally.serverErrors
            if let none = tally.all[0] { outcome.failures.append("\(none) \(name) calls got no answer") }
        }
        outcome.sent = answered
        outcome.effects = calls.all.map { $0.1.all[200] ?? 0 }.reduce(0, +)
        // The promise: while Redis is down, questions are still answered (uncached), and logins
        // work (sessions live in PostgreSQL; the login throttle falls back to each process's memory).
        for kind in ["cached question", "new question", "login"] {
            let during = calls.tally(kind, "during")
            let ok = during.all[200] ?? 0
            if ok * 10 < during.total * 9 { outcome.failures.append("\(kind): only \(ok) of \(during.total) answered 200 while Redis was down") }
        }
        let logins = calls.tally("login", "during")
        outcome.notes.append("logins while Redis was down: \(logins.all[200] ?? 0) of \(logins.total) answered 200")
        if !back { outcome.failures.append("not every service was ready again within 120 s") }
        let restarts = try await stack.status().instances.map(\.restarts).reduce(0, +)
        if restarts > 0 { outcome.failures.append("\(restarts) service processes had to be restarted") }
        _ = try await stack.run(["stop"])
        _ = try await database.query("DELETE FROM users WHERE email = \(email)")
        return outcome
    }
}

/// PostgreSQL stopped (immediate shutdown, as a crash) for `outage` while audit events stream
/// in: the writer holds them unacknowledged, retries, and the backlog drains once the database is
/// back; every confirmed event stored once.
func postgresDown(count: Int, perSecond: Int, outage: Duration) async throws -> Outcome {
    try await withStack("postgres-down") { stack in
        var outcome = Outcome(name: "PostgreSQL down \(seconds(outage))", load: "\(count) audit messages at \(perSecond)/s",
                              faults: "PostgreSQL stopped (immediate) at 20 %, started again \(seconds(outage)) later")
        try await stack.start("audit-writer")
        let work = Workload(kind: .audit, tag: "chaos_pg_\(UUID().uuidString.prefix(6).lowercased())", database: database,
                            mediaRoot: URL(fileURLWithPath: stack.environment["AIRA_MEDIA_DIR"]!))
        let (confirmed, retried) = (Counter(), Counter())
        async let streaming: Void = stream(work, count: count, perSecond: perSecond, stack: stack, videos: [], confirmed: confirmed, retried: retried)
        while confirmed.current < count / 5 { try await Task.sleep(for: .milliseconds(50)) }
        let stopped = try await stack.script("servers", ["kill", "postgresql"], timeout: .seconds(60))
        guard stopped.status == 0 else { throw ChaosError("cannot stop PostgreSQL: \(stopped.output)") }
        let downAt = ContinuousClock.now
        log("PostgreSQL: stopped after \(confirmed.current) of \(count) messages")
        // The backlog while it is down and after, from the management API (its figures lag ~5 s).
        var peak = 0
        while ContinuousClock.now < downAt + outage {
            peak = max(peak, try await stack.status().queues.first { $0.queue == "audit.events" }?.depth ?? 0)
            try await Task.sleep(for: .seconds(1))
        }
        let started = try await stack.script("servers", ["start"], timeout: .seconds(120))
        guard started.status == 0 else {
            outcome.failures.append("PostgreSQL did not start again")
            throw ChaosError("PostgreSQL did not start again:\n\(started.output.suffix(2000))")
        }
        let upAt = ContinuousClock.now
        log("PostgreSQL: running again")
        // This driver's own pooled connections died with the server: each fails once.
        for _ in 0..<20 {
            if (try? await database.query("SELECT 1 AS one")) != nil { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await streaming
        outcome.sent = confirmed.current
        let effects = try await settle(work, count: count, timeout: .seconds(180))
        let drained = ContinuousClock.now - upAt
        outcome.effects = effects.total
        outcome.lost = count - effects.distinct
        outcome.duplicated = effects.duplicated
        outcome.notes.append("backlog peaked at \(peak) messages (management API); all \(effects.distinct) stored \(seconds(drained)) after the database was back (stream included)")
        let restarts = try await stack.status().instances.map(\.restarts).reduce(0, +)
        outcome.notes.append("process restarts \(restarts)")
        if restarts > 0 { outcome.failures.append("\(restarts) service processes had to be restarted") }
        _ = try await stack.run(["stop"])
        try await work.clean()
        return outcome
    }
}

/// The media folder on a small volume of its own (tmpfs, 6 MiB), filled by uploads: the gateway
/// answers 507 with a clear error once it is full, keeps nothing half-written, and stores again
/// once space is freed.
func diskFull() async throws -> Outcome {
    try await withStack("disk-full") { stack in
        var outcome = Outcome(name: "disk full (uploads)", load: "1-MiB uploads, one after another, until the volume is full",
                              faults: "the media folder on a 6-MiB tmpfs")
        stack.extraEnvironment.merge(floodSettings) { $1 }
        let media = stack.environment["AIRA_MEDIA_DIR"]!
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        let mounted = try await stack.spawn("/bin/mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", media]).wait(timeout: .seconds(10))
        guard mounted.status == 0 else { throw ChaosError("cannot mount a tmpfs on \(media) (root needed): \(mounted.output)") }
        defer { _ = try? stack.spawn("/bin/umount", ["-l", media]) }
        try await stack.start("gateway,auth")
        let email = "chaos-disk-\(UUID().uuidString.prefix(6).lowercased())@chaos.example"
        let user = try await signUpAndLogIn(port: stack.portBase, email: email)
        // An MP4's head (sniffed), padded to 1 MiB.
        var file = try Array(Data(contentsOf: URL(fileURLWithPath: environment["CHAOS_CLIP"] ?? "")))
        file += [UInt8](repeating: 0, count: max(0, (1 << 20) - file.count))
        let statuses = Tally()
        var stored = 0
        var full: Answer?
        for i in 0..<12 {
            let answer = await call(.POST, port: stack.portBase, "/api/videos?title=fill-\(i)", body: file, token: user.token,
                                    headers: [("Content-Type", "application/octet-stream")], timeout: .seconds(30))
            statuses.add(answer.status, took: answer.took)
            if answer.status == 201 { stored += 1 } else if answer.status == 507 { full = full ?? answer }
        }
        outcome.sent = 12
        outcome.effects = stored
        outcome.serverErrors = statuses.all.filter { $0.key >= 500 && $0.key != 503 && $0.key != 507 }.values.reduce(0, +)
        outcome.notes.append("uploads: \(statuses.summary)")
        if let full {
            let code = (full.json?["error"] as? [String: Any])?["code"] as? String
            outcome.notes.append("507 says: \(full.body.prefix(160)), Retry-After \(full.headers.first(name: "Retry-After") ?? "none")")
            if code != "insufficient_storage" { outcome.failures.append("507 without the insufficient_storage code") }
        } else {
            outcome.failures.append("no upload was answered 507")
        }
        // Nothing half-written: the files are exactly the stored uploads, no `.part` left.
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: media + "/uploads")) ?? []
        let partial = files.filter { $0.hasSuffix(".part") }
        outcome.notes.append("files on the volume: \(files.count), partial: \(partial.count)")
        if !partial.isEmpty { outcome.failures.append("\(partial.count) partial files left") }
        let rows = try await database.query("SELECT count(*) AS n FROM videos v JOIN users u ON u.id = v.owner_id WHERE u.email = \(email)").first
        let videoRows = try rows?.decode("n", as: Int.self) ?? -1
        if videoRows != stored || files.count != stored { outcome.failures.append("\(stored) uploads stored, \(videoRows) videos rows, \(files.count) files") }
        outcome.lost = max(0, stored - min(videoRows, files.count))
        // Space freed (an operator grows the volume or removes files): uploads work again.
        if let first = files.first { try? FileManager.default.removeItem(atPath: media + "/uploads/" + first) }
        if let second = files.dropFirst().first { try? FileManager.default.removeItem(atPath: media + "/uploads/" + second) }
        let again = await call(.POST, port: stack.portBase, "/api/videos?title=after", body: file, token: user.token,
                               headers: [("Content-Type", "application/octet-stream")], timeout: .seconds(30))
        outcome.notes.append("after freeing 2 MiB: \(again.status)")
        if again.status != 201 { outcome.failures.append("an upload after space was freed: \(again.status)") }
        _ = try await stack.run(["stop"])
        _ = try await database.query("DELETE FROM videos WHERE owner_id = (SELECT id FROM users WHERE email = \(email))")
        _ = try await database.query("DELETE FROM users WHERE email = \(email)")
        return outcome
    }
}
