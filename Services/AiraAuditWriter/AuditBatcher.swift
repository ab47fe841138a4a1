import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

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
        var cleaned: [String: String] = [:]
        for (k, v) in attributes { cleaned[Self.clean(k)] = Self.clean(v) }
        return FlatJSON.encode(cleaned)
    }
}

/// Collects audit rows from many handlers and writes them in batches: a batch is written when
/// it holds `maxBatch` rows or its oldest row has waited `maxDelay`. Each handler's `store`
/// returns only when its row is committed, so the runtime acks a message only after its batch
/// is in the database. A database outage is retried with backoff for as long as it lasts
/// (messages stay unacknowledged: prefetch stops the inflow, nothing is lost, nothing acked
/// early). A row the database refuses (a data error) is isolated by writing the batch row by
/// row, and only that message fails (→ dead letter with the database's reason).
final class AuditBatcher: Service, Sendable {
    struct Options: Sendable {
        var maxBatch: Int
        var maxDelay: Duration
        /// Batches written at once (each on its own database connection).
        var parallelWrites: Int
    }

    private struct Pending {
        var row: AuditRow
        var done: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var firstAt: ContinuousClock.Instant?
        /// Write loops waiting for rows.
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    private let database: PostgresClient
    private let options: Options
    private let logger: Logger
    private let state = Mutex(State())
    private let batchSize = Recorder(label: "aira_audit_batch_size")
    private let stored = Counter(label: "aira_audit_events_stored_total")
    private let duplicates = Counter(label: "aira_audit_events_duplicate_total")
    private let writeFailures = Counter(label: "aira_audit_write_failures_total")
    private let writeSeconds = Timer(label: "aira_audit_batch_write_seconds")

    init(database: PostgresClient, options: Options, logger: Logger) {
        self.database = database
        self.options = options
        self.logger = logger
    }

    /// Queues `row` for the next batch and returns once it is committed (or throws: the row was
    /// refused, or the writer is shutting down).
    func store(_ row: AuditRow) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let (closed, wake) = self.state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                if s.closed { return (true, []) }
                if s.pending.isEmpty { s.firstAt = .now }
                s.pending.append(Pending(row: row, done: done))
                guard s.pending.count == 1 || s.pending.count >= self.options.maxBatch else { return (false, []) }
                defer { s.waiters.removeAll() }
                return (false, s.waiters)
            }
            if closed {
                done.resume(throwing: TransientError(code: "shutting_down", "the audit writer is shutting down"))
            }
            for w in wake { w.resume() }
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            // Several batches in flight: one fills while others are being written, so the
            // database's commit latency does not stall the inflow.
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<self.options.parallelWrites {
                    group.addTask {
                        while let batch = await self.nextBatch() {
                            await self.write(batch)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            let wake = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.closed = true
                defer { s.waiters.removeAll() }
                return s.waiters
            }
            for w in wake { w.resume() }
        }
        // Whatever arrived after the last batch: handed back (the runtime retries it).
        let left = self.state.withLock { s in defer { s.pending.removeAll() }; return s.pending }
        for p in left { p.done.resume(throwing: TransientError(code: "shutting_down", "the audit writer stopped before writing this event")) }
    }

    /// Waits for rows, lets the batch fill up to `maxBatch` or `maxDelay`, and takes it. Nil once
    /// closed and drained: rows queued before the close are still written.
    private func nextBatch() async -> [Pending]? {
        while true {
            let (batch, firstAt, closed) = self.state.withLock { s -> ([Pending], ContinuousClock.Instant?, Bool) in
                let full = s.pending.count >= self.options.maxBatch
                let due = s.firstAt.map { ContinuousClock.now - $0 >= self.options.maxDelay } ?? false
                if !s.pending.isEmpty && (full || due || s.closed) {
                    let n = min(s.pending.count, self.options.maxBatch)
                    let taken = Array(s.pending.prefix(n))
                    s.pending.removeFirst(n)
                    s.firstAt = s.pending.isEmpty ? nil : .now
                    return (taken, nil, s.closed)
                }
                return ([], s.firstAt, s.closed)
            }
            if !batch.isEmpty { return batch }
            if closed { return nil }
            if let firstAt {
                // Filling: wake when full (the doorbell) or when the oldest row is due.
                await self.waitForDoorbell(until: firstAt + self.options.maxDelay)
            } else {
                await self.waitForDoorbell(until: nil)
            }
        }
    }

    /// Sleeps until a handler rings (first row, or a full batch), the close, or `deadline`.
    private func waitForDoorbell(until deadline: ContinuousClock.Instant?) async {
        guard let deadline else {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = self.state.withLock { s -> Bool in
                    if !s.pending.isEmpty || s.closed { return true }
                    s.waiters.append(c)
                    return false
                }
                if ready { c.resume() }
            }
            return
        }
        // A short bounded sleep while filling: rows keep arriving or the deadline comes soon.
        let remaining = deadline - .now
        if remaining > .zero { try? await Task.sleep(for: min(remaining, .milliseconds(2))) }
    }

    private func write(_ batch: [Pending]) async {
        var attempt = 0
        let start = ContinuousClock.now
        while true {
            do {
                let inserted = try await self.insert(batch.map(\.row))
                self.batchSize.record(batch.count)
                self.stored.increment(by: inserted)
                self.duplicates.increment(by: batch.count - inserted)
                self.writeSeconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                for p in batch { p.done.resume() }
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
            var attempt = 0
            while true {
                do {
                    self.stored.increment(by: try await self.insert([p.row]))
                    p.done.resume()
                    break
                } catch let error as PostgresError where !error.isRetriable && error.sqlState != nil {
                    p.done.resume(throwing: PermanentError(code: "audit_row_refused", "the database refused the event: \(error)"))
                    break
                } catch {
                    attempt += 1
                    try? await Task.sleep(for: Backoff(initial: .milliseconds(200), maximum: .seconds(5)).delay(attempt: attempt))
                }
            }
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
