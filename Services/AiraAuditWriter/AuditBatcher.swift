import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// One audit event as a row of `audit_log`.
struct AuditRow: Sendable {
    var messageID: String
    var event: AuditEvent

    /// The columns, in order.
    static let columns = ["message_id", "type", "user_id", "actor_id", "occurred_at", "ip", "attributes"]

    var values: [(any PostgresBindable)?] {
        [Self.clean(self.messageID), Self.clean(self.event.type), self.event.userId, self.event.actorId,
         self.event.at, self.event.ip.map(Self.clean), Self.attributesJSON(self.event.attributes)]
    }

    /// PostgreSQL text cannot hold NUL; an event carrying one is stored without it rather than
    /// failing its whole batch.
    static func clean(_ s: String) -> String {
        s.utf8.contains(0) ? String(s.unicodeScalars.filter { $0 != "\u{0}" }.map(Character.init)) : s
    }

    static func attributesJSON(_ attributes: [String: String]) -> String {
        guard !attributes.isEmpty else { return "{}" }
        var cleaned = attributes
        if attributes.contains(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }) {
            cleaned = [:]
            for (k, v) in attributes { cleaned[Self.clean(k)] = Self.clean(v) }
        }
        var out: [UInt8] = []
        JSONText.appendObject(cleaned, sorted: false, to: &out) // jsonb orders keys itself
        return String(decoding: out, as: UTF8.self)
    }
}

/// Collects audit rows from many handlers (the events of one message each) and writes them in
/// batches: a batch is written when it holds `maxBatch` rows or its oldest message has waited
/// `maxDelay`. Each handler's `store` returns only when its rows are committed, so the runtime
/// acks a message only after its batch is in the database. A database outage is retried with backoff for as long as it lasts
/// (messages stay unacknowledged: prefetch stops the inflow, nothing is lost, nothing acked
/// early). A row the database refuses (a data error) is isolated by writing the batch row by
/// row, and only the message holding it fails (→ dead letter with the database's reason).
final class AuditBatcher: Service, Sendable {
    struct Options: Sendable {
        var maxBatch: Int
        var maxDelay: Duration
        /// Batches written at once (each on its own database connection).
        var parallelWrites: Int
        /// Messages that can wait at once (the consumer's concurrency): when all of them wait, the
        /// batch is written without waiting `maxDelay` (a backlog of single-event messages).
        var maxMessages: Int
    }

    /// A row the database refused, and why.
    typealias Refusal = (id: String, reason: String)
    private typealias Pending = BatchQueue<[AuditRow], [Refusal]>.Entry

    private let database: PostgresClient
    private let options: Options
    private let logger: Logger
    private let queue: BatchQueue<[AuditRow], [Refusal]>
    private let batchSize = Recorder(label: "aira_audit_batch_size")
    private let stored = Counter(label: "aira_audit_events_stored_total")
    private let duplicates = Counter(label: "aira_audit_events_duplicate_total")
    private let writeFailures = Counter(label: "aira_audit_write_failures_total")
    private let writeSeconds = Timer(label: "aira_audit_batch_write_seconds")

    init(database: PostgresClient, options: Options, logger: Logger) {
        self.database = database
        self.options = options
        self.logger = logger
        self.queue = BatchQueue(maxBatch: options.maxBatch, maxDelay: options.maxDelay, maxItems: options.maxMessages,
                                weight: { $0.count }) {
            TransientError(code: "shutting_down", "the audit writer is shutting down")
        }
    }

    /// Queues one message's `rows` for the next batch and returns once they are committed, with
    /// the rows the database refused (and why); throws if the writer is shutting down first.
    func store(_ rows: [AuditRow]) async throws -> [Refusal] {
        guard !rows.isEmpty else { return [] }
        return try await self.queue.submit(rows)
    }

    func run() async throws {
        // Several batches in flight: one fills while others are being written, so the
        // database's commit latency does not stall the inflow. Whatever arrives after the last
        // batch is handed back (the runtime retries it).
        await self.queue.serveUntilShutdown(takers: self.options.parallelWrites, late: {
            TransientError(code: "shutting_down", "the audit writer stopped before writing this event")
        }) { await self.write($0) }
    }

    private func write(_ batch: [Pending]) async {
        var attempt = 0
        let start = ContinuousClock.now
        while true {
            do {
                let rows = batch.flatMap(\.item)
                let inserted = try await self.insert(rows)
                self.batchSize.record(rows.count)
                self.stored.increment(by: inserted)
                self.duplicates.increment(by: rows.count - inserted)
                self.writeSeconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                for p in batch { p.succeed([]) }
                return
            } catch let error as PostgresError where !error.isRetriable && error.sqlState != nil {
                // The database refused the content: find the rows it refuses, one by one.
                self.logger.warning("batch refused, writing its rows one by one", metadata: [LogKey.error: "\(error)", "rows": "\(batch.count)"])
                await self.writeOneByOne(batch)
                return
            } catch {
                attempt += 1
                self.writeFailures.increment()
                let delay = Backoff(initial: .milliseconds(200), maximum: .seconds(5)).delay(attempt: attempt)
                self.logger.warning("cannot write audit batch, retrying", metadata: [
                    LogKey.error: "\(error)", "rows": "\(batch.count)", LogKey.attempts: "\(attempt)", "retry_in_ms": "\(delay.milliseconds)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    private func writeOneByOne(_ batch: [Pending]) async {
        for p in batch {
            var refused: [Refusal] = []
            for row in p.item {
                var attempt = 0
                while true {
                    do {
                        self.stored.increment(by: try await self.insert([row]))
                        break
                    } catch let error as PostgresError where !error.isRetriable && error.sqlState != nil {
                        refused.append((row.messageID, "\(error)"))
                        break
                    } catch {
                        attempt += 1
                        try? await Task.sleep(for: Backoff(initial: .milliseconds(200), maximum: .seconds(5)).delay(attempt: attempt))
                    }
                }
            }
            p.succeed(refused)
        }
    }

    /// One insert that skips message ids already stored (a redelivered or replayed event).
    /// Returns the rows inserted.
    private func insert(_ rows: [AuditRow]) async throws -> Int {
        // One column per parameter (array literals), one statement: a single round trip.
        var columns = Array(repeating: [String?](), count: AuditRow.columns.count)
        for row in rows {
            for (i, value) in row.values.enumerated() { columns[i].append(value?.postgresText) }
        }
        let result = try await self.database.query(PostgresQuery(unsafeSQL: """
            INSERT INTO audit_log (message_id, type, user_id, actor_id, occurred_at, ip, attributes)
            SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[], $7::jsonb[])
            ON CONFLICT (message_id) DO NOTHING
            """, binds: columns.map { PostgresArray($0) }), prepared: true)
        return result.affectedRows
    }
}
