import AiraAnalysis
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import Logging
import Prometheus
import ServiceLifecycle

/// aira-analyzer as a service group: the database and Redis clients, the batcher, the consumer
/// of the analysis queue and the scheduler.
func buildAnalyzer(_ configuration: AnalyzerConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                   signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    let spec = configuration.queue
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        // Declared before the first fan-out: jobs are published `mandatory`.
        try await spec.declare(on: publisher.channel)
        let batcher = AnalysisBatcher(database: database, options: configuration.batch, logger: logger)
        let consumer = QueueConsumer(spec: spec, handler: AnalysisHandler(batcher: batcher, maxAttempts: spec.retry.maxAttempts),
                                     connection: connection, publisher: publisher, options: settings.consumer, logger: logger)
        let coordinator = RunCoordinator(database: database, redis: redis, publisher: publisher, options: configuration.coordinator,
                                         logger: logger)
        let scheduler = AnalysisScheduler(schedule: configuration.schedule, checkInterval: configuration.checkInterval,
                                          coordinator: coordinator, runs: AnalysisRuns(database: database), logger: logger)
        logger.info("analyzer configured", metadata: ["instance": "\(configuration.coordinator.instance)",
                                                      LogKey.queue: "\(spec.name)", "batch": "\(configuration.batch.maxBatch)",
                                                      "parallel_batches": "\(configuration.batch.parallelBatches)"])
        // Stopped in reverse order: the scheduler first (a fan-out stops between batches and leaves
        // the rest to another instance), then the consumer drains, then the batcher, then the clients.
        return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                 clients: [database, redis], services: [batcher, consumer, scheduler],
                                 readiness: [ReadinessCheck("broker") { connection.isConnected },
                                             ReadinessCheck("postgres") { await database.ping() },
                                             ReadinessCheck("redis") { await redis.ping() }],
                                 signals: signals)
    }
}
