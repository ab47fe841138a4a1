import AiraCore
import AiraMessaging
import AiraServiceKit

/// aira-audit-writer's configuration (docs/configuration.md, "aira-audit-writer").
struct AuditWriterConfiguration: ServiceConfiguration {
    static let serviceName = "aira-audit-writer"
    var settings: ServiceSettings
    /// `AIRA_AUDIT_BATCH_SIZE`, `AIRA_AUDIT_BATCH_DELAY`, `AIRA_AUDIT_PARALLEL_WRITES`; the
    /// messages a batch may wait for is the consumer's concurrency.
    var batch: AuditBatcher.Options

    init(environment env: EnvironmentReader) throws {
        // Many messages in flight, each waiting for its batch: the pipeline's depth. Producers send
        // batches (up to AIRA_AUDIT_PUBLISH_BATCH events each), so a few hundred messages are many
        // thousand events.
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8083,
                                            consumerDefaults: ConsumerOptions(concurrency: 300, prefetch: 300), environment: env)
        self.batch = AuditBatcher.Options(maxBatch: try env.int("AIRA_AUDIT_BATCH_SIZE", default: 1000, range: 1...50_000),
                                          maxDelay: try env.duration("AIRA_AUDIT_BATCH_DELAY", default: .milliseconds(50)),
                                          parallelWrites: try env.int("AIRA_AUDIT_PARALLEL_WRITES", default: 2, range: 1...16),
                                          maxMessages: self.settings.consumer.concurrency)
    }
}
