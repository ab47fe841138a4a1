// aira-analyzer: the nightly per-user analysis. Every instance runs the schedule (one of them
// wins each day's run and fans it out) and consumes `analysis.user` (all of them share the
// work). See docs/analyzer.md.
import AiraAnalysis
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import Foundation

do {
    // Many handlers in flight, each waiting for its batch: concurrency is the batches' depth.
    let settings = try ServiceSettings(name: "aira-analyzer", defaultPort: 8086,
                                       consumerDefaults: ConsumerOptions(concurrency: 600, prefetch: 600))
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)
    let schedule = try Schedule(environment: env)
    let queueName = env.string("AIRA_ANALYSIS_QUEUE", default: "analysis.user")
    let spec = try settings.queueSpec(AnalysisJob.queue(named: queueName))
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let batchOptions = AnalysisBatcher.Options(
        maxBatch: try env.int("AIRA_ANALYSIS_BATCH_SIZE", default: 200, range: 1...5_000),
        maxDelay: try env.duration("AIRA_ANALYSIS_BATCH_DELAY", default: .milliseconds(20)),
        parallelBatches: try env.int("AIRA_ANALYSIS_PARALLEL_BATCHES", default: max(2, cores), range: 1...64),
        maxEvents: try env.int("AIRA_ANALYSIS_MAX_EVENTS", default: 20_000, range: 1...10_000_000))
    let instance = "\(ProcessInfo.processInfo.hostName)-\(getpid())"
    let coordinatorOptions = RunCoordinator.Options(
        lockPrefix: env.string("AIRA_ANALYZER_LOCK_PREFIX", default: "aira:analysis:lock:"),
        lockTTL: try env.duration("AIRA_ANALYZER_LOCK_TTL", default: .seconds(30)),
        fanOutBatch: try env.int("AIRA_ANALYSIS_FANOUT_BATCH", default: 500, range: 1...10_000),
        fanOutRate: try env.int("AIRA_ANALYSIS_FANOUT_RATE", default: 0, range: 0...1_000_000),
        queue: queueName, instance: instance,
        sampleUsers: try env.int("AIRA_ANALYSIS_SAMPLE_USERS", default: 20_000, range: 100...100_000_000))

    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    // Declared before the first fan-out: jobs are published `mandatory`.
    try await spec.declare(on: publisher.channel)
    let batcher = AnalysisBatcher(database: database, options: batchOptions, logger: logger)
    let consumer = QueueConsumer(spec: spec, handler: AnalysisHandler(batcher: batcher, maxAttempts: spec.retry.maxAttempts),
                                 connection: connection, publisher: publisher, options: settings.consumer, logger: logger)
    let coordinator = RunCoordinator(database: database, redis: redis, publisher: publisher, options: coordinatorOptions, logger: logger)
    let scheduler = AnalysisScheduler(schedule: schedule,
                                      checkInterval: try env.duration("AIRA_ANALYZER_CHECK_INTERVAL", default: .seconds(30)),
                                      coordinator: coordinator, runs: AnalysisRuns(database: database), logger: logger)
    logger.info("analyzer configured", metadata: ["instance": "\(instance)", LogKey.queue: "\(queueName)",
                                                  "batch": "\(batchOptions.maxBatch)", "parallel_batches": "\(batchOptions.parallelBatches)"])
    // Stopped in reverse order: the scheduler first (a fan-out stops between batches and leaves
    // the rest to another instance), then the consumer drains, then the batcher.
    try await ServiceHost.run(settings: settings, logger: logger, registry: registry, connection: connection,
                              services: [batcher, consumer, scheduler],
                              readiness: [ReadinessCheck("broker") { connection.isConnected },
                                          ReadinessCheck("postgres") { await database.ping() },
                                          ReadinessCheck("redis") { await redis.ping() }])
    await database.shutdown()
    await redis.shutdown()
} catch {
    exitOnStartupFailure("aira-analyzer", error)
}
