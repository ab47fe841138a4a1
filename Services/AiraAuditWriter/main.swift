// aira-audit-writer: consumes `audit.events` (bound to `audit.#`: batches and single events) and
// stores each event once in PostgreSQL's `audit_log`, in batches. See docs/workers.md.
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation

/// Hands the events of a message (a batch, or a single event) to the batcher and returns when
/// they are committed: the runtime acks after that, so an event is acknowledged only once it is
/// stored. A batched event is keyed by its `id`, a single event by the message id.
struct AuditHandler: MessageHandler {
    let batcher: AuditBatcher

    func handle(_ batch: AuditBatch, context: MessageContext) async throws {
        var rows: [AuditRow] = []
        rows.reserveCapacity(batch.events.count)
        var invalid: [String] = []
        for event in batch.events {
            guard let id = event.id ?? (context.messageID.isEmpty ? nil : context.messageID) else {
                throw PermanentError(code: "missing_message_id", "an audit event needs a message id (it is the idempotency key)")
            }
            guard !event.type.isEmpty, event.type.utf8.count <= 100 else {
                invalid.append(id)
                continue
            }
            rows.append(AuditRow(messageID: id, event: event))
        }
        // The valid events are stored even when others are not: the message then goes to the
        // dead-letter queue naming the rest, and a replay stores nothing twice.
        let refused = try await self.batcher.store(rows)
        if !invalid.isEmpty {
            throw PermanentError(code: "invalid_event", "event type must be 1–100 bytes (events \(Self.list(invalid)))")
        }
        if !refused.isEmpty {
            throw PermanentError(code: "audit_row_refused", "the database refused \(Self.list(refused.map { "\($0.id): \($0.reason)" }))")
        }
    }

    static func list(_ items: [String]) -> String {
        items.count <= 5 ? items.joined(separator: ", ") : items.prefix(5).joined(separator: ", ") + " and \(items.count - 5) more"
    }
}

do {
    // Many messages in flight, each waiting for its batch: the pipeline's depth. Producers send batches
    // (up to AIRA_AUDIT_PUBLISH_BATCH events each), so a few hundred messages are many thousand events.
    let settings = try ServiceSettings(name: "aira-audit-writer", defaultPort: 8083,
                                       consumerDefaults: ConsumerOptions(concurrency: 300, prefetch: 300))
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)
    let options = AuditBatcher.Options(maxBatch: try env.int("AIRA_AUDIT_BATCH_SIZE", default: 1000, range: 1...50_000),
                                       maxDelay: try env.duration("AIRA_AUDIT_BATCH_DELAY", default: .milliseconds(50)),
                                       parallelWrites: try env.int("AIRA_AUDIT_PARALLEL_WRITES", default: 2, range: 1...16),
                                       maxMessages: settings.consumer.concurrency)
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
