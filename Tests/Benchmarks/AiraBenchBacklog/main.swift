// aira-bench-backlog (scripts/bench-scale): a backlog of real work for a worker, and how fast the
// worker's instances drain it. The script pauses the worker (`scripts/run scale W 0`), has this tool
// publish the backlog, scales the worker to N, then has it time the drain from the stored effects.
//
//   publish audit N TAG       N audit events of type TAG, one message each, confirmed
//   publish thumbnail N TAG   a user TAG@bench.invalid, N videos (status processing) whose uploads are
//                             hard links of BENCH_CLIP, and their N thumbnail jobs, confirmed
//   drain audit|thumbnail N TAG
//                             waits (BENCH_TIME_LIMIT, 600 s) until N effects exist (audit rows of
//                             type TAG; videos of the user marked ready); prints one JSON line:
//                             effects already there at the start, seconds from the start to the
//                             last effect's commit time (the database's clock), effects/s over it
//   clean thumbnail TAG       deletes the user (its videos go with it) and their files
import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Logging

let env = EnvironmentReader()
var logger = Logger(label: "bench")
logger.logLevel = .warning
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3, ["publish", "drain", "clean"].contains(arguments[0]), ["audit", "thumbnail"].contains(arguments[1]) else {
    FileHandle.standardError.write(Data("usage: aira-bench-backlog publish|drain audit|thumbnail N TAG | clean thumbnail TAG\n".utf8))
    exit(2)
}
let (command, kind) = (arguments[0], arguments[1])
let count = command == "clean" ? 0 : (Int(arguments[2]) ?? 0)
let tag = arguments.last!
let database = PostgresClient(configuration: PostgresConfiguration(url: env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira"),
                                                                   poolSize: 2))
let mediaRoot = URL(fileURLWithPath: env.string("AIRA_MEDIA_DIR", default: ".data/media"), isDirectory: true)
let owner = UUID(uuidString: "00000000-0000-4000-8000-" + String(String(tag.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }, radix: 16).suffix(12)).leftPad(12))!

extension String {
    func leftPad(_ n: Int) -> String { String(repeating: "0", count: max(0, n - self.count)) + self }
}

func publishAll<M: MessageContract>(_ messages: [(M, String, String)]) async throws {
    let amqp = try AMQPConfiguration(url: env.string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/"),
                                     connectionName: "aira-bench-backlog")
    let connection = try await AMQPConnection.connect(configuration: amqp, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    try await withThrowingTaskGroup(of: Void.self) { group in
        let lanes = 256
        for lane in 0..<lanes {
            group.addTask {
                var i = lane
                while i < messages.count {
                    let (message, key, id) = messages[i]
                    _ = try await publisher.publish(message, routingKey: key, messageID: id)
                    i += lanes
                }
            }
        }
        try await group.waitForAll()
    }
    await connection.close()
}

switch (command, kind) {
case ("publish", "audit"):
    try await publishAll((0..<count).map { i in
        let e = AuditEvent(id: "\(tag)-\(i)", type: tag, userId: nil, ip: "10.2.\(i % 250).\(i % 200)", attributes: ["n": String(i)])
        return (e, e.routingKey, "\(tag)-\(i)")
    })
case ("publish", "thumbnail"):
    let clip = env.string("BENCH_CLIP", default: "")
    guard FileManager.default.fileExists(atPath: clip) else { fatalError("BENCH_CLIP: no file at '\(clip)'") }
    try await database.query("""
        INSERT INTO users (id, email, password_hash) VALUES (\(owner), \(tag + "@bench.invalid"), 'x') ON CONFLICT (id) DO NOTHING
        """)
    let uploads = mediaRoot.appendingPathComponent("uploads")
    try FileManager.default.createDirectory(at: uploads, withIntermediateDirectories: true)
    let size = (try FileManager.default.attributesOfItem(atPath: clip)[.size] as? Int) ?? 0
    var jobs: [(ThumbnailJob, String, String)] = []
    for i in 0..<count {
        let id = UUID()
        try FileManager.default.linkItem(atPath: clip, toPath: mediaRoot.appendingPathComponent(ThumbnailJob.uploadPath(for: id)).path)
        try await database.query("""
            INSERT INTO videos (id, owner_id, title, media_type, size_bytes) VALUES (\(id), \(owner), \("bench \(i)"), 'video/mp4', \(size))
            """)
        jobs.append((ThumbnailJob(videoId: id, ownerId: owner, sourcePath: ThumbnailJob.uploadPath(for: id), mediaType: "video/mp4"),
                     ThumbnailJob.routingKey, "\(tag)-\(i)"))
    }
    try await publishAll(jobs)
case ("drain", _):
    // Started before the workers are scaled up. Timed from the first effect's commit to the last
    // (the database's clock): the instances' start-up does not count, the consuming does.
    func measure() async throws -> (n: Int, first: Double?, last: Double?) {
        let row = kind == "audit"
            ? try await database.query("""
                SELECT count(*) AS n, extract(epoch FROM min(stored_at))::float8 AS first, extract(epoch FROM max(stored_at))::float8 AS last
                FROM audit_log WHERE type = \(tag)
                """).first
            : try await database.query("""
                SELECT count(*) AS n, extract(epoch FROM min(updated_at))::float8 AS first, extract(epoch FROM max(updated_at))::float8 AS last
                FROM videos WHERE owner_id = \(owner) AND status = 'ready'
                """).first
        return (try row?.decode("n") ?? 0, try row?.decodeOptional("first"), try row?.decodeOptional("last"))
    }
    let start = Date().timeIntervalSince1970
    let deadline = ContinuousClock.now + (try env.duration("BENCH_TIME_LIMIT", default: .seconds(600)))
    var effects = try await measure()
    let before = effects.n
    while effects.n < count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(250))
        effects = try await measure()
    }
    let span = max(0.001, (effects.last ?? start) - (effects.first ?? start))
    let rate = effects.n > 1 ? Double(effects.n - 1) / span : 0
    print(#"{"at_start": \#(before), "done": \#(effects.n), "seconds": \#(String(format: "%.2f", span)), "# +
          #""until_last": \#(String(format: "%.2f", (effects.last ?? start) - start)), "per_second": \#(Int(rate.rounded()))}"#)
    if effects.n < count { exit(1) }
case ("clean", "thumbnail"):
    let ids = try await database.query("SELECT id FROM videos WHERE owner_id = \(owner)").rows.map { try $0.decode("id") as UUID }
    for id in ids {
        try? FileManager.default.removeItem(at: mediaRoot.appendingPathComponent(ThumbnailJob.uploadPath(for: id)))
        try? FileManager.default.removeItem(at: mediaRoot.appendingPathComponent(ThumbnailJob.thumbnailPath(for: id)))
    }
    try await database.query("DELETE FROM users WHERE id = \(owner)")
default:
    fatalError("clean applies to thumbnail backlogs only")
}
await database.shutdown()
