import AiraContracts
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Logging
import Prometheus
import ServiceLifecycle

/// aira-audit-writer as a service group: the database client, the batcher and the consumer of
/// `audit.events`. Run it (`main` does, and so do the tests) and trigger its graceful shutdown.
func buildAuditWriter(_ configuration: AuditWriterConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                      signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let batcher = AuditBatcher(database: database, options: configuration.batch, logger: logger)
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        let consumer = QueueConsumer(spec: AuditEvent.queue, handler: AuditHandler(batcher: batcher), connection: connection,
                                     publisher: publisher, options: settings.consumer, logger: logger)
        logger.info("audit writer configured",
                    metadata: ["batch": "\(configuration.batch.maxBatch)", "delay_ms": "\(configuration.batch.maxDelay.milliseconds)"])
        // The consumer is listed after the batcher, so it stops (and drains) first.
        return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                 clients: [database], services: [batcher, consumer],
                                 readiness: [ReadinessCheck("broker") { connection.isConnected },
                                             ReadinessCheck("postgres") { await database.ping() }],
                                 signals: signals)
    }
}
