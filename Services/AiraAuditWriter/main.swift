// aira-audit-writer: consumes `audit.events` (bound to `audit.#`) and stores each event once in
// PostgreSQL's `audit_log`, in batches. See docs/workers.md.
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation

/// Hands each event to the batcher and returns when its batch is committed: the runtime acks
/// after that, so an event is acknowledged only once it is stored.
struct AuditHandler: MessageHandler {
    let batcher: AuditBatcher

    func handle(_ event: AuditEvent, context: MessageContext) async throws {
        guard !context.messageID.isEmpty else {
            throw PermanentError(code: "missing_message_id", "an audit event needs a message id (it is the idempotency key)")
        }
        guard !event.type.isEmpty, event.type.utf8.count <= 100 else {
            throw PermanentError(code: "invalid_event", "event type must be 1–100 bytes")
        }
        try await self.batcher.store(AuditRow(messageID: context.messageID, event: event))
    }
}

do {
    // Many handlers in flight, each waiting for its batch: concurrency is the batch pipeline's depth.
    let settings = try ServiceSettings(name: "aira-audit-writer", defaultPort: 8083,
                                       consumerDefaults: ConsumerOptions(concurrency: 4000, prefetch: 4000))
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)
    let options = AuditBatcher.Options(maxBatch: try env.int("AIRA_AUDIT_BATCH_SIZE", default: 1000, range: 1...50_000),
                                       maxDelay: try env.duration("AIRA_AUDIT_BATCH_DELAY", default: .milliseconds(50)),
                                       parallelWrites: try env.int("AIRA_AUDIT_PARALLEL_WRITES", default: 2, range: 1...16))
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let batcher = AuditBatcher(database: database, options: options, logger: logger)
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    let consumer = QueueConsumer(spec: AuditEvent.queue, handler: AuditHandler(batcher: batcher), connection: connection,
                                 publisher: publisher, options: settings.consumer, logger: logger)
    logger.info("audit writer configured", metadata: ["batch": "\(options.maxBatch)", "delay_ms": "\(options.maxDelay.milliseconds)"])
    // The consumer is listed after the batcher, so it stops (and drains) first.
    try await ServiceHost.run(settings: settings, logger: logger, registry: registry, connection: connection,
                              services: [batcher, consumer],
                              readiness: [ReadinessCheck("broker") { connection.isConnected },
                                          ReadinessCheck("postgres") { await database.ping() }])
    await database.shutdown()
} catch {
    exitOnStartupFailure("aira-audit-writer", error)
}
