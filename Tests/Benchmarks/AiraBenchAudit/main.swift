// aira-bench-audit (scripts/bench-audit): audit events end to end, publish → row committed in
// PostgreSQL by the aira-audit-writer processes the script started. Bounded: BENCH_EVENTS per
// round, BENCH_ROUNDS rounds, each with a time limit.
//
//   live   the writer runs while events are published (publisher, broker, writer and database
//          share the two cores): events/s from the first publish to the last row committed
//   drain  events published first, then the writer started: events/s from its start to the
//          last row committed (what a backlog drains at)
// The tool starts BENCH_WRITERS aira-audit-writer processes (BENCH_WRITER: the executable).
//
// BENCH_PRODUCER says how events are published:
//   trail  through an AuditTrail, as the services record them (batched messages, each event
//          awaited until its batch is confirmed; AIRA_AUDIT_PUBLISH_* tune it) — the default
//   single one persistent message per event, pre-encoded (the path before batching)
import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging

let env = EnvironmentReader()
let events = try env.int("BENCH_EVENTS", default: 200_000, range: 1_000...5_000_000)
let window = try env.int("BENCH_WINDOW", default: 1000, range: 1...10_000)
let mode = env.string("BENCH_MODE", default: "live")
let producer = env.string("BENCH_PRODUCER", default: "trail")
guard ["trail", "single"].contains(producer) else { fatalError("BENCH_PRODUCER must be trail or single") }
let limit = try env.duration("BENCH_TIME_LIMIT", default: .seconds(300))
var logger = Logger(label: "bench")
logger.logLevel = .warning

let amqp = try AMQPConfiguration(url: env.string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/"),
                                 connectionName: "aira-bench-audit")
let connection = try await AMQPConnection.connect(configuration: amqp, logger: logger)
let publisher = try await MessagePublisher.open(on: connection)
try await AuditEvent.queue.declare(on: publisher.channel)
let database = PostgresClient(configuration: PostgresConfiguration(url: env.string("AIRA_DATABASE_URL",
                                                                                  default: "postgres://aira:aira@127.0.0.1:5432/aira"),
                                                                   poolSize: 1))
let type = "bench_\(MessageID.random().prefix(8))"
let writerPath = env.string("BENCH_WRITER", default: ".build/release/aira-audit-writer")
let writerCount = try env.int("BENCH_WRITERS", default: 1, range: 1...8)

/// Starts the writers and waits until each consumes the queue.
func startWriters() async throws -> [Process] {
    var started: [Process] = []
    for i in 0..<writerCount {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: writerPath)
        var environment = ProcessInfo.processInfo.environment
        environment["AIRA_HTTP_PORT"] = "\(18_300 + i)"
        environment["AIRA_LOG_LEVEL"] = "warning"
        p.environment = environment
        try p.run()
        started.append(p)
    }
    for _ in 0..<600 {
        if try await publisher.channel.inspectQueue(AuditEvent.queue.name).consumerCount >= writerCount { return started }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw CancellationError()
}

// Realistic events (a user, an address, a few attributes), made before the clock starts. The
// trail encodes them as the services do; the single producer gets them pre-encoded.
let users = (0..<1000).map { _ in UUID() }
let made: [AuditEvent] = (0..<events).map { i in
    AuditEvent(id: "\(type)-\(i)", type: type, userId: users[i % users.count], ip: "10.1.\(i % 250).\(i % 200)",
               attributes: ["videoId": users[(i * 7) % users.count].lowercasedString, "n": String(i)])
}
let bodies: [[UInt8]] = producer == "single" ? made.map { $0.encoded() } : []
let trail = AuditTrail(publisher: publisher, options: try AuditTrail.Options.from(env), logger: logger)
let trailTask = Task { try await trail.run() }

/// Events the writers have committed so far, from their `/metrics` (stored + duplicates): cheap to
/// poll, unlike counting rows in the table, which would load the database being measured.
func committed() async -> Int {
    var total = 0
    for i in 0..<writerCount {
        guard let url = URL(string: "http://127.0.0.1:\(18_300 + i)/metrics"),
              let (data, _) = try? await URLSession.shared.data(from: url) else { continue }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n")
        where line.hasPrefix("aira_audit_events_stored_total ") || line.hasPrefix("aira_audit_events_duplicate_total ") {
            total += Int(Double(line.split(separator: " ").last ?? "") ?? 0)
        }
    }
    return total
}

func stored() async throws -> (count: Int, last: Date?) {
    let row = try await database.query("SELECT count(*) AS n, max(stored_at) AS last FROM audit_log WHERE type = \(type)").first
    return (try row?.decode("n") ?? 0, try row?.decodeOptional("last"))
}

func publishAll() async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for t in 0..<window {
            group.addTask {
                var i = t
                while i < events {
                    if producer == "trail" {
                        try await trail.record(made[i])
                    } else {
                        let properties = MessagePublisher.properties(type: AuditEvent.messageType, messageID: "\(type)-\(i)",
                                                                     correlationID: nil, traceparent: nil, headers: [:])
                        try await publisher.publishRaw(exchange: AiraExchange.name, routingKey: "audit.\(type)", body: bodies[i],
                                                       properties: properties)
                    }
                    i += window
                }
            }
        }
        try await group.waitForAll()
    }
}

var writers = mode == "drain" ? [] : try await startWriters()
var machineBefore = CPUTime.machine()
var ownBefore = CPUTime.process(getpid())
let start = Date()
try await publishAll()
let published = Date().timeIntervalSince(start)
var drainStart = start
if mode == "drain" {
    writers = try await startWriters()
    machineBefore = CPUTime.machine()
    ownBefore = CPUTime.process(getpid())
    drainStart = Date()
}
let deadline = ContinuousClock.now + limit
while await committed() < events && ContinuousClock.now < deadline {
    try await Task.sleep(for: .milliseconds(20))
}
// Machine CPU over the measured span (to a poll past the last commit): every process's work per
// event, without the time the hypervisor gave to other machines (steal), which wall time counts.
let machine = CPUTime.machine() - machineBefore
let writerCPU = writers.map { CPUTime.process($0.processIdentifier) }.reduce(0, +)
let ownCPU = CPUTime.process(getpid()) - ownBefore
var result = try await stored()
while result.count < events && ContinuousClock.now < deadline {
    try await Task.sleep(for: .milliseconds(50))
    result = try await stored()
}
for w in writers { w.terminate() }
guard result.count == events, let last = result.last else {
    print("FAILED: \(result.count) of \(events) events stored within \(limit)")
    exit(1)
}
let seconds = last.timeIntervalSince(drainStart)
func perEvent(_ cpu: Double) -> String { String(format: "%.1f", cpu / Double(events) * 1_000_000) }
print("| \(mode) | \(producer) | \(writerCount) | \(events) | \(Int((Double(events) / published).rounded())) | \(String(format: "%.2f", seconds)) s | **\(Int((Double(events) / seconds).rounded()))** | \(Int((Double(events) / machine.busy).rounded())) | \(perEvent(ownCPU)) / \(perEvent(writerCPU)) / \(perEvent(machine.busy - ownCPU - writerCPU)) | \(Int((machine.stealShare * 100).rounded())) % |")
_ = try await database.query("DELETE FROM audit_log WHERE type = \(type)")
trailTask.cancel()
await database.shutdown()
await connection.close()
