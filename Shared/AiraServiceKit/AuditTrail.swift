import AiraContracts
import AiraCore
import AiraMessaging
import Logging
import Metrics
import ServiceLifecycle

/// How services record audit events: `record` queues the event, and the trail publishes what
/// has gathered as one ``AuditBatch`` (confirmed) while earlier batches are being confirmed — so
/// at low traffic each event goes out at once, and under load many share a message. `record`
/// returns once the broker has confirmed the batch holding the event, the same guarantee as
/// publishing it alone; it throws if that publish failed.
///
/// A `Service`: list it among ServiceHost's `publishers` so that it stops after the HTTP server
/// and the consumers that record through it (what is queued is still published).
public final class AuditTrail: Service, Sendable {
    public struct Options: Sendable {
        /// Most events in one message.
        public var maxBatch: Int
        /// How long the first event of a batch may wait for company when a publisher is free.
        public var maxDelay: Duration
        /// Batches being published (awaiting their confirm) at once.
        public var parallelPublishes: Int

        public init(maxBatch: Int = 200, maxDelay: Duration = .milliseconds(1), parallelPublishes: Int = 2) {
            self.maxBatch = maxBatch
            self.maxDelay = maxDelay
            self.parallelPublishes = parallelPublishes
        }

        /// `AIRA_AUDIT_PUBLISH_BATCH`, `AIRA_AUDIT_PUBLISH_DELAY`, `AIRA_AUDIT_PUBLISH_PARALLEL`
        /// (a service may have its own defaults).
        public static func from(_ env: EnvironmentReader, defaults d: Options = Options()) throws -> Options {
            return Options(maxBatch: try env.int("AIRA_AUDIT_PUBLISH_BATCH", default: d.maxBatch, range: 1...10_000),
                           maxDelay: try env.duration("AIRA_AUDIT_PUBLISH_DELAY", default: d.maxDelay),
                           parallelPublishes: try env.int("AIRA_AUDIT_PUBLISH_PARALLEL", default: d.parallelPublishes, range: 1...64))
        }
    }

    private let publisher: MessagePublisher
    private let options: Options
    private let logger: Logger
    private let queue: BatchQueue<AuditEvent, Void>
    private let batchSize = Recorder(label: "aira_audit_publish_batch_size")
    private let failures = Counter(label: "aira_audit_publish_failures_total")

    public init(publisher: MessagePublisher, options: Options = Options(), logger: Logger) {
        self.publisher = publisher
        self.options = options
        self.logger = logger
        self.queue = BatchQueue(maxBatch: options.maxBatch, maxDelay: options.maxDelay) {
            TransientError(code: "shutting_down", "the audit trail is closed")
        }
    }

    /// Queues `event` (given an `id` if it has none) and returns once it is confirmed.
    public func record(_ event: AuditEvent) async throws {
        var event = event
        if (event.id ?? "").isEmpty { event.id = MessageID.random() }
        try await self.queue.submit(event)
    }

    /// Queues `event` (given an `id` if it has none) without waiting for its confirm: for events
    /// recorded after the work they describe is answered, where nobody could act on a failure.
    /// A failed publish is logged and counted (`aira_audit_publish_failures_total`), as for
    /// `record`; after shutdown has closed the trail, the event is dropped with an error log.
    public func post(_ event: AuditEvent) {
        var event = event
        if (event.id ?? "").isEmpty { event.id = MessageID.random() }
        if !self.queue.post(event) {
            self.failures.increment()
            self.logger.error("audit event dropped: the trail is closed", metadata: ["type": "\(event.type)"])
        }
    }

    public func run() async throws {
        await self.queue.serveUntilShutdown(takers: self.options.parallelPublishes, late: {
            TransientError(code: "shutting_down", "the audit trail stopped before publishing this event")
        }) { await self.publish($0) }
    }

    private func publish(_ batch: [BatchQueue<AuditEvent, Void>.Entry]) async {
        do {
            try await self.publisher.publish(AuditBatch(events: batch.map(\.item)), routingKey: AuditBatch.routingKey)
            self.batchSize.record(batch.count)
            for entry in batch { entry.succeed(()) }
        } catch {
            self.failures.increment(by: batch.count)
            self.logger.error("audit batch not published", metadata: [LogKey.error: "\(error)", "events": "\(batch.count)"])
            for entry in batch { entry.fail(error) }
        }
    }
}
