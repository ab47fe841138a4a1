// aira-bench-audit (scripts/bench-audit): audit events end to end, publish → row committed in
// PostgreSQL by the aira-audit-writer processes the script started. Bounded: BENCH_EVENTS per
// round, BENCH_ROUNDS rounds, each with a time limit.
//
//   live   the writer runs while events are published (publisher, broker, writer and database
//          share the two cores): events/s from the first publish to the last row committed
//   drain  events published first, then the writer started: events/s from its start to the
//          last row committed (what a backlog drains at)
// The tool starts BENCH_WRITERS aira-audit-writer processes (BENCH_WRITER: the executable).
import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Logging

let env = EnvironmentReader()
let events = try env.int("BENCH_EVENTS", default: 200_000, range: 1_000...5_000_000)
let window = try env.int("BENCH_WINDOW", default: 1000, range: 1...10_000)
let mode = env.string("BENCH_MODE", default: "live")
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

// Realistic events (a user, an address, a few attributes), encoded before the clock starts so the
// publisher's JSON work does not count against the writer.
let users = (0..<1000).map { _ in UUID() }
let bodies: [[UInt8]] = try (0..<events).map { i in
    try MessageCoding.encode(AuditEvent(type: type, userId: users[i % users.count], ip: "10.1.\(i % 250).\(i % 200)",
                                        attributes: ["videoId": users[(i * 7) % users.count].lowercasedString, "n": String(i)]))
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
                    let properties = MessagePublisher.properties(type: AuditEvent.messageType, messageID: "\(type)-\(i)",
                                                                 correlationID: nil, traceparent: nil, headers: [:])
                    try await publisher.publishRaw(exchange: AiraExchange.name, routingKey: "audit.\(type)", body: bodies[i],
                                                   properties: properties)
                    i += window
                }
            }
        }
        try await group.waitForAll()
    }
}

var writers = mode == "drain" ? [] : try await startWriters()
let start = Date()
try await publishAll()
let published = Date().timeIntervalSince(start)
var drainStart = start
if mode == "drain" {
    writers = try await startWriters()
    drainStart = Date()
}
let deadline = ContinuousClock.now + limit
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
print("| \(mode) | \(writerCount) | \(events) | \(Int((Double(events) / published).rounded())) | \(String(format: "%.2f", seconds)) s | **\(Int((Double(events) / seconds).rounded()))** |")
_ = try await database.query("DELETE FROM audit_log WHERE type = \(type)")
await database.shutdown()
await connection.close()
