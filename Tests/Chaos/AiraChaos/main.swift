// aira-chaos (scripts/chaos): faults injected into a running Aira under load, and what was lost
// counted where the effects land. Each case starts its own stack with `scripts/run` (a vhost,
// ports and folders of its own), streams real work at it, injects the faults, waits for the
// work to settle, and reports one row: case, load, faults, messages sent, effects counted, lost,
// duplicated, 5xx. Exit 1 when any case lost, doubled or answered 5xx where it must not.
//
//   aira-chaos [--short] [CASE ...]      cases: kill-audit-writer kill-email-worker
//                                        kill-thumbnail-worker kill-rabbitmq (default: all)
//
// CHAOS_CLIP: the video the thumbnail jobs read (scripts/chaos makes a small one).
import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraWorkload
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization

let env = EnvironmentReader()
let environment = ProcessInfo.processInfo.environment
var arguments = Array(CommandLine.arguments.dropFirst())
let short = arguments.contains("--short")
arguments.removeAll { $0 == "--short" }
let allCases = ["kill-audit-writer", "kill-email-worker", "kill-thumbnail-worker", "kill-rabbitmq"]
let chosen = arguments.isEmpty ? allCases : arguments
if let unknown = chosen.first(where: { !allCases.contains($0) }) {
    FileHandle.standardError.write(Data("aira-chaos: unknown case \(unknown) (one of: \(allCases.joined(separator: ", ")))\n".utf8))
    exit(2)
}
let dataDirectory = URL(fileURLWithPath: environment["AIRA_DATA"] ?? LocalRun.root.appendingPathComponent(".data").path)
let database = PostgresClient(configuration: PostgresConfiguration(url: env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira"),
                                                                   poolSize: 2))

/// One row of the report.
struct Outcome {
    var name: String
    var load: String
    var faults: String
    var sent = 0
    var effects = 0
    var lost = 0
    var duplicated = 0
    var serverErrors: Int?
    /// Duplicates the case's guarantee allows (0 but for mail: see killWorker).
    var allowedDuplicates = 0
    var notes: [String] = []
    var failures: [String] = []
    var passed: Bool {
        self.failures.isEmpty && self.lost == 0 && self.duplicated <= self.allowedDuplicates && (self.serverErrors ?? 0) == 0
    }
}

/// Counts up from any task.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    var current: Int { self.value.load(ordering: .relaxed) }
    func add(_ n: Int = 1) { self.value.add(n, ordering: .relaxed) }
}

let began = ContinuousClock.now
func seconds(_ d: Duration) -> String {
    String(format: "%.1f s", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
}
func log(_ text: String) {
    FileHandle.standardError.write(Data("[chaos +\(seconds(ContinuousClock.now - began))] \(text)\n".utf8))
}

/// Answers seen, by HTTP status (0: no answer within the time limit).
final class Tally: Sendable {
    private let counts = Mutex<[Int: Int]>([:])
    private let slowest = Mutex<[Int: Duration]>([:])
    func add(_ status: Int, took: Duration) {
        self.counts.withLock { $0[status, default: 0] += 1 }
        self.slowest.withLock { $0[status] = max($0[status] ?? .zero, took) }
    }
    var all: [Int: Int] { self.counts.withLock { $0 } }
    var longest: [Int: Duration] { self.slowest.withLock { $0 } }
}

/// Publishes work 0..<count at `perSecond`, each confirmed before the next. A publish the broker
/// did not confirm (it is down) is tried again, as a producer that must not lose work does:
/// `confirmed` counts work the broker took responsibility for.
func stream(_ work: Workload, count: Int, perSecond: Int, stack: LocalRun, videos: [UUID], confirmed: Counter, retried: Counter) async throws {
    let connection = try await stack.connect()
    defer { Task { await connection.close() } }
    var publisher = try await MessagePublisher.open(on: connection)
    let start = ContinuousClock.now
    for i in 0..<count {
        let giveUp = ContinuousClock.now + .seconds(120)
        while true {
            do {
                try await work.publish(i, on: publisher, videos: videos)
                break
            } catch {
                guard ContinuousClock.now < giveUp else { throw error }
                retried.add()
                try await Task.sleep(for: .milliseconds(200))
                if let reopened = try? await MessagePublisher.open(on: connection) { publisher = reopened }
            }
        }
        confirmed.add()
        let due = start + .milliseconds(i * 1000 / perSecond)
        if ContinuousClock.now < due { try await Task.sleep(until: due) }
    }
}

/// Waits until `count` pieces of work have their effect (or `timeout`), and counts them.
func settle(_ work: Workload, count: Int, timeout: Duration) async throws -> Workload.Effects {
    let deadline = ContinuousClock.now + timeout
    var effects = try await work.effects()
    while effects.distinct < count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(500))
        effects = try await work.effects()
    }
    // A moment more: a duplicate lands after its first copy.
    try await Task.sleep(for: .seconds(2))
    return try await work.effects()
}

/// Runs `body` on a stack of its own, stopped and removed (vhost, folders) afterwards, whatever happens.
func withStack(_ name: String, _ body: (LocalRun) async throws -> Outcome) async throws -> Outcome {
    let directory = dataDirectory.appendingPathComponent("chaos/\(name)")
    try? FileManager.default.removeItem(at: directory)
    let stack = try await LocalRun(prefix: "aira-chaos", environment: environment, directory: directory)
    // Each kill is the instance's first crash in a row once it has run 3 s: restarted after 1 s,
    // so the next kill lands while the stream still runs.
    stack.extraEnvironment["AIRA_RUN_STABLE_AFTER"] = "3s"
    do {
        let outcome = try await body(stack)
        await stack.tearDown()
        return outcome
    } catch {
        log("failed: \(error); supervisor log:\n\(stack.supervisorLog.suffix(2000))")
        await stack.tearDown()
        throw error
    }
}

/// kill -9 of a worker three times while a stream of its work arrives; the supervisor restarts it.
func killWorker(_ service: String, kind: Workload.Kind, count: Int, perSecond: Int) async throws -> Outcome {
    try await withStack("kill-\(service)") { stack in try await killWorker(service, kind: kind, count: count, perSecond: perSecond, stack: stack) }
}

func killWorker(_ service: String, kind: Workload.Kind, count: Int, perSecond: Int, stack: LocalRun) async throws -> Outcome {
    var outcome = Outcome(name: "kill -9 \(service)", load: "\(count) \(kind.rawValue) messages at \(perSecond)/s",
                          faults: "SIGKILL ×3 (at 25/50/75 % of the stream)")
    let up = try await stack.run(["--detach", "--only", service])
    guard up.status == 0 else { throw ChaosError("\(service) did not start:\n\(up.output.suffix(2000))") }
    let work = Workload(kind: kind, tag: "chaos_\(kind.rawValue)_\(UUID().uuidString.prefix(6).lowercased())", database: database,
                        mediaRoot: URL(fileURLWithPath: stack.environment["AIRA_MEDIA_DIR"]!),
                        mailDirectory: stack.directory.appendingPathComponent("mail"), clip: environment["CHAOS_CLIP"])
    let videos = try await work.prepare(count: count)
    let (confirmed, retried) = (Counter(), Counter())
    async let streaming: Void = stream(work, count: count, perSecond: perSecond, stack: stack, videos: videos, confirmed: confirmed, retried: retried)
    var kills = 0
    var atKill: [Int] = []
    for share in [0.25, 0.5, 0.75] {
        while confirmed.current < Int(Double(count) * share) { try await Task.sleep(for: .milliseconds(50)) }
        // The instance that runs now (after an earlier kill: the restarted one, once it is back).
        var pid: Int32?
        for _ in 0..<100 {
            if let i = try await stack.instances(service).first, i.alive, !i.queues.isEmpty { pid = i.pid; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard let pid else { outcome.failures.append("\(service) was not back before kill \(kills + 1)"); break }
        kill(pid, SIGKILL)
        kills += 1
        log("\(service): SIGKILL \(kills) (pid \(pid)) after \(confirmed.current) of \(count) messages")
        atKill.append(confirmed.current)
        try await Task.sleep(for: .seconds(3))  // it runs 3 s before the next kill: a fresh crash, not a crash loop
    }
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
    let up = try await stack.run(["--detach", "--only", "gateway,auth,audit-writer"])
    guard up.status == 0 else { throw ChaosError("the stack did not start:\n\(up.output.suffix(2000))") }
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

struct ChaosError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

var outcomes: [Outcome] = []
for name in chosen {
    log("case \(name)")
    do {
        switch name {
        case "kill-audit-writer":
            outcomes.append(try await killWorker("audit-writer", kind: .audit, count: short ? 3_000 : 10_000, perSecond: short ? 200 : 500))
        case "kill-email-worker":
            outcomes.append(try await killWorker("email-worker", kind: .email, count: short ? 600 : 10_000, perSecond: short ? 40 : 150))
        case "kill-thumbnail-worker":
            outcomes.append(try await killWorker("thumbnail-worker", kind: .thumbnail, count: short ? 180 : 10_000, perSecond: short ? 12 : 30))
        default:
            outcomes.append(try await killRabbitMQ(count: short ? 3_000 : 10_000, perSecond: short ? 150 : 300))
        }
    } catch {
        var failed = Outcome(name: name, load: "-", faults: "-")
        failed.failures.append("\(error)")
        outcomes.append(failed)
    }
    log("\(outcomes.last!.passed ? "passed" : "FAILED"): \(name)")
}
await database.shutdown()

print("| case | load | faults injected | messages sent (confirmed) | effects counted | lost | duplicated | 5xx | result | notes |")
print("|---|---|---|---|---|---|---|---|---|---|")
for o in outcomes {
    let result = o.passed ? "pass" : "**FAIL**" + (o.failures.isEmpty ? "" : ": " + o.failures.joined(separator: "; "))
    print("| \(o.name) | \(o.load) | \(o.faults) | \(o.sent) | \(o.effects) | \(o.lost) | \(o.duplicated) | \(o.serverErrors.map(String.init) ?? "—") | \(result) | \(o.notes.joined(separator: "; ")) |")
}
exit(outcomes.allSatisfy(\.passed) ? 0 : 1)
