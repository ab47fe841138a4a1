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
import AiraWorkload
import Foundation
import Logging

let env = EnvironmentReader()
var logger = Logger(label: "bench")
logger.logLevel = .warning
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3, ["publish", "drain", "clean"].contains(arguments[0]),
      let kind = Workload.Kind(rawValue: arguments[1]), kind != .email else {
    FileHandle.standardError.write(Data("usage: aira-bench-backlog publish|drain audit|thumbnail N TAG | clean thumbnail TAG\n".utf8))
    exit(2)
}
let command = arguments[0]
let count = command == "clean" ? 0 : (Int(arguments[2]) ?? 0)
let database = PostgresClient(configuration: PostgresConfiguration(url: env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira"),
                                                                   poolSize: 2))
let work = Workload(kind: kind, tag: arguments.last!, database: database,
                    mediaRoot: URL(fileURLWithPath: env.string("AIRA_MEDIA_DIR", default: ".data/media"), isDirectory: true),
                    clip: env.optionalString("BENCH_CLIP"))

switch command {
case "publish":
    let videos = try await work.prepare(count: count)
    let amqp = try AMQPConfiguration(url: env.string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/"),
                                     connectionName: "aira-bench-backlog")
    let connection = try await AMQPConnection.connect(configuration: amqp, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    try await work.publishAll(0..<count, on: publisher, videos: videos)
    await connection.close()
case "drain":
    // Started before the workers are scaled up. Timed from the first effect's commit to the last
    // (the database's clock): the instances' start-up does not count, the consuming does.
    let start = Date().timeIntervalSince1970
    let deadline = ContinuousClock.now + (try env.duration("BENCH_TIME_LIMIT", default: .seconds(600)))
    var effects = try await work.effects()
    let before = effects.distinct
    while effects.distinct < count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(250))
        effects = try await work.effects()
    }
    let span = max(0.001, (effects.last ?? start) - (effects.first ?? start))
    let rate = effects.distinct > 1 ? Double(effects.distinct - 1) / span : 0
    print(#"{"at_start": \#(before), "done": \#(effects.distinct), "seconds": \#(String(format: "%.2f", span)), "# +
          #""until_last": \#(String(format: "%.2f", (effects.last ?? start) - start)), "per_second": \#(Int(rate.rounded()))}"#)
    if effects.distinct < count { exit(1) }
default:
    try await work.clean()
}
await database.shutdown()
