import AiraAnalysis
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// One user to analyse for one run.
struct AnalysisRequest: Sendable {
    var day: Day
    var generation: Int
    var userID: UUID
}

enum AnalysisOutcome: Sendable {
    /// Insights stored (or the user's account is gone): counted as done.
    case done
    /// The analysis refused this user: counted as failed; the message dead-letters.
    case failed(String)
    /// The job belongs to an older generation (the day was re-run): acknowledged, no effect.
    case stale
}

/// Consumes `analysis.user`: hands the job to the batcher and turns its outcome into the
/// message's fate.
struct AnalysisHandler: MessageHandler {
    let batcher: AnalysisBatcher
    let maxAttempts: Int

    func handle(_ job: AnalysisJob, context: MessageContext) async throws {
        guard let day = Day(job.day), job.generation >= 1 else {
            throw PermanentError(code: "invalid_job", "day '\(job.day.prefix(40))' is not yyyy-MM-dd or generation \(job.generation) < 1")
        }
        let request = AnalysisRequest(day: day, generation: job.generation, userID: job.userId)
        let outcome: AnalysisOutcome
        do {
            outcome = try await self.batcher.analyse(request)
        } catch {
            // The last attempt: the message dead-letters, so the user counts as failed now
            // (best effort; a replay from the DLQ analyses them again).
            if context.attempts + 1 >= self.maxAttempts {
                await self.batcher.recordFailure(request, reason: "gave up after \(self.maxAttempts) attempts: \(error)")
            }
            throw error
        }
        switch outcome {
        case .done: return
        case .stale: context.logger.debug("job of an older generation of the run, ignored", metadata: ["day": "\(day)"])
        case .failed(let reason): throw PermanentError(code: "analysis_failed", reason)
        }
    }
}

/// Analyses users in batches: one query loads the 28-day events of every user of the batch, the
/// CPU work runs on the cooperative pool (never on an event loop), and one transaction stores the
/// results, moves each user from pending to done or failed (once: a redelivered job finds them
/// moved and counts nothing), adds the moves to the run's counts and completes the run when
/// nobody is left.
final class AnalysisBatcher: Service, Sendable {
    struct Options: Sendable {
        var maxBatch: Int
        var maxDelay: Duration
        var parallelBatches: Int
        var maxEvents: Int
    }

    private let database: PostgresClient
    private let options: Options
    private let logger: Logger
    private let queue: BatchQueue<AnalysisRequest, AnalysisOutcome>
    private let contexts: RunContexts
    private let titles: VideoTitles
    private static let analysed = Counter(label: "aira_analysis_users_total", dimensions: [("outcome", "done")])
    private static let failed = Counter(label: "aira_analysis_users_total", dimensions: [("outcome", "failed")])
    private static let stale = Counter(label: "aira_analysis_users_total", dimensions: [("outcome", "stale")])
    private static let userSeconds = Timer(label: "aira_analysis_user_seconds")
    private static let batchSeconds = Timer(label: "aira_analysis_batch_seconds")
    private static let batchSize = Recorder(label: "aira_analysis_batch_size")

    init(database: PostgresClient, options: Options, logger: Logger) {
        self.database = database
        self.options = options
        self.logger = logger
        self.contexts = RunContexts(database: database, maxEvents: options.maxEvents)
        self.titles = VideoTitles(database: database)
        self.queue = BatchQueue(maxBatch: options.maxBatch, maxDelay: options.maxDelay) {
            TransientError(code: "shutting_down", "the analyzer is shutting down")
        }
    }

    func analyse(_ request: AnalysisRequest) async throws -> AnalysisOutcome { try await self.queue.submit(request) }

    func run() async throws {
        await self.queue.serveUntilShutdown(takers: self.options.parallelBatches, late: {
            TransientError(code: "shutting_down", "the analyzer stopped before analysing this user")
        }) { await self.process($0) }
    }

    private func process(_ batch: [BatchQueue<AnalysisRequest, AnalysisOutcome>.Entry]) async {
        let start = ContinuousClock.now
        Self.batchSize.record(batch.count)
        let groups = Dictionary(grouping: batch) { RunKey(day: $0.item.day, generation: $0.item.generation) }
        for (key, entries) in groups {
            do {
                let outcomes = try await self.process(key, users: entries.map(\.item.userID))
                // Every user of the group has an outcome (process(_:users:) answers for each).
                for entry in entries { entry.succeed(outcomes[entry.item.userID]!) }
            } catch {
                self.logger.warning("analysis batch failed", metadata: ["day": "\(key.day)", "users": "\(entries.count)", LogKey.error: "\(error)"])
                for entry in entries { entry.fail(TransientError(code: "analysis_unavailable", "\(error)")) }
            }
        }
        Self.batchSeconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }

    private func process(_ key: RunKey, users: [UUID]) async throws -> [UUID: AnalysisOutcome] {
        guard let context = try await self.contexts.context(key) else {
            Self.stale.increment(by: users.count)
            return Dictionary(users.map { ($0, .stale) }, uniquingKeysWith: { a, _ in a })
        }
        let unique = Array(Set(users))
        let events = try await self.loadEvents(unique, context: context)
        var results: [(UUID, UserInsights)] = []
        var outcomes: [UUID: AnalysisOutcome] = [:]
        for user in unique {
            let t0 = ContinuousClock.now
            do {
                results.append((user, try context.analyzer.analyse(events[user] ?? [])))
                outcomes[user] = .done
            } catch {
                outcomes[user] = .failed("\(error)")
            }
            Self.userSeconds.recordNanoseconds((ContinuousClock.now - t0).nanoseconds)
        }
        let failures = outcomes.compactMap { user, outcome -> (UUID, String)? in
            if case .failed(let reason) = outcome { return (user, reason) }
            return nil
        }
        guard try await self.store(key, results: results, failures: failures) else {
            Self.stale.increment(by: users.count)
            return Dictionary(unique.map { ($0, .stale) }, uniquingKeysWith: { a, _ in a })
        }
        Self.analysed.increment(by: results.count)
        Self.failed.increment(by: failures.count)
        return outcomes
    }

    /// The window's activity events of `users`, each with its day offset and (questions, plays) text.
    private func loadEvents(_ users: [UUID], context: RunContext) async throws -> [UUID: [UserEvent]] {
        let first = context.day - (ActivityEvents.windowDays - 1)
        // Questions come with their text; plays with the video id (titles are looked up apart).
        let rows = try await self.database.query("""
            SELECT a.user_id, (a.occurred_at AT TIME ZONE \(context.timezone))::date - \(first.description)::date AS off, a.type,
                   CASE a.type WHEN \(ActivityEvents.question) THEN a.attributes->>'question'
                               WHEN \(ActivityEvents.play) THEN a.attributes->>'videoId' END AS text
            FROM audit_log a
            WHERE a.user_id = ANY(\(PostgresArray(users.map(\.lowercasedString)))::uuid[])
              AND a.type <> ALL(\(PostgresArray(ActivityEvents.passive))::text[])
              AND a.occurred_at >= (\(first.description)::date::timestamp AT TIME ZONE \(context.timezone))
              AND a.occurred_at < ((\(context.day.description)::date + 1)::timestamp AT TIME ZONE \(context.timezone))
            """, prepared: true).rows
        let titles = try await self.titles.titles(rows.lazy.filter { $0.values[2] == ActivityEvents.play }.compactMap { $0.values[3] })
        var events: [UUID: [UserEvent]] = [:]
        events.reserveCapacity(users.count)
        for row in rows {
            guard let id = row.values[0].flatMap(UUID.init(text:)), let off = row.values[1].flatMap({ Int($0) }),
                  let type = row.values[2] else { continue }
            let text = type == ActivityEvents.play ? row.values[3].flatMap { titles[$0] } : row.values[3]
            events[id, default: []].append(UserEvent(type: type, dayOffset: off, text: text))
        }
        return events
    }

    /// Records what happened to the failed user on its last attempt (see ``AnalysisHandler``).
    func recordFailure(_ request: AnalysisRequest, reason: String) async {
        do {
            _ = try await self.store(RunKey(day: request.day, generation: request.generation), results: [],
                                     failures: [(request.userID, String(reason.prefix(1000)))])
            Self.failed.increment()
        } catch {
            self.logger.error("cannot record a failed user", metadata: ["user": "\(request.userID)", LogKey.error: "\(error)"])
        }
    }

    private struct StaleGeneration: Error {}

    /// One transaction; false if the run moved to another generation meanwhile (nothing stored).
    private func store(_ key: RunKey, results: [(UUID, UserInsights)], failures: [(UUID, String)]) async throws -> Bool {
        let day = key.day.description
        do {
            try await self.database.withTransaction { conn in
                if !results.isEmpty {
                    // A user whose account was deleted since the fan-out gets no row (and counts as done).
                    try await conn.query("""
                        INSERT INTO analysis_results (user_id, day, generation, events, active_days, counts_by_type, counts_by_day,
                                                      interests, return_likelihood)
                        SELECT x.u, \(day)::date, \(key.generation), x.e, x.a, x.t, x.d, x.i, x.r
                        FROM unnest(\(PostgresArray(results.map { $0.0.lowercasedString }))::uuid[],
                                    \(PostgresArray(results.map { String($0.1.events) }))::int[],
                                    \(PostgresArray(results.map { String($0.1.activeDays) }))::int[],
                                    \(PostgresArray(results.map { InsightsJSON.object($0.1.countsByType) }))::jsonb[],
                                    \(PostgresArray(results.map { InsightsJSON.array($0.1.countsByDay) }))::jsonb[],
                                    \(PostgresArray(results.map { InsightsJSON.interests($0.1.interests) }))::jsonb[],
                                    \(PostgresArray(results.map { $0.1.returnLikelihood.map { String($0) } }))::float8[])
                             AS x(u, e, a, t, d, i, r)
                        WHERE EXISTS (SELECT 1 FROM users WHERE users.id = x.u)
                        ON CONFLICT (user_id, day) DO UPDATE SET generation = EXCLUDED.generation, events = EXCLUDED.events,
                            active_days = EXCLUDED.active_days, counts_by_type = EXCLUDED.counts_by_type,
                            counts_by_day = EXCLUDED.counts_by_day, interests = EXCLUDED.interests,
                            return_likelihood = EXCLUDED.return_likelihood, computed_at = now()
                        """, prepared: true)
                }
                let ids = results.map { $0.0.lowercasedString } + failures.map { $0.0.lowercasedString }
                let states = Array(repeating: "done", count: results.count) + Array(repeating: "failed", count: failures.count)
                let reasons: [String?] = Array(repeating: nil, count: results.count) + failures.map { $0.1 }
                let moved = try await conn.query("""
                    UPDATE analysis_run_users r SET state = x.s, reason = x.reason
                    FROM unnest(\(PostgresArray(ids))::uuid[], \(PostgresArray(states))::text[], \(PostgresArray(reasons))::text[]) AS x(u, s, reason)
                    WHERE r.day = \(day)::date AND r.user_id = x.u AND r.state = 'pending'
                    RETURNING r.state
                    """, prepared: true).rows
                let done = try moved.filter { try $0.decode("state", as: String.self) == "done" }.count
                let failed = moved.count - done
                let updated = try await conn.query("""
                    UPDATE analysis_runs SET succeeded = succeeded + \(done), failed = failed + \(failed),
                        status = CASE WHEN status = 'running' AND succeeded + failed + \(done + failed) >= users_total
                                      THEN 'completed' ELSE status END,
                        completed_at = CASE WHEN status = 'running' AND succeeded + failed + \(done + failed) >= users_total
                                            THEN now() ELSE completed_at END,
                        duration_ms = CASE WHEN status = 'running' AND succeeded + failed + \(done + failed) >= users_total
                                           THEN (extract(epoch FROM now() - started_at) * 1000)::bigint ELSE duration_ms END
                    WHERE day = \(day)::date AND generation = \(key.generation)
                    RETURNING status
                    """, prepared: true)
                guard updated.affectedRows == 1 else { throw StaleGeneration() }
                if try updated.first?.decode("status", as: String.self) == "completed" {
                    self.logger.info("run completed", metadata: ["day": "\(day)", "generation": "\(key.generation)"])
                }
            }
            return true
        } catch is StaleGeneration {
            return false
        }
    }
}

struct RunKey: Hashable, Sendable {
    var day: Day
    var generation: Int
}

/// What a worker needs of a run to analyse its users, loaded once per run and generation.
struct RunContext: Sendable {
    var day: Day
    var timezone: String
    var analyzer: UserAnalyzer
}

/// The runs' contexts, loaded from `analysis_runs` on first use (concurrent first uses share
/// one load).
final class RunContexts: Sendable {
    private let database: PostgresClient
    private let maxEvents: Int
    private let loads = Mutex<[RunKey: Task<RunContext?, any Error>]>([:])

    init(database: PostgresClient, maxEvents: Int) {
        self.database = database
        self.maxEvents = maxEvents
    }

    /// Nil when the run no longer has this generation (re-run) or no longer exists.
    func context(_ key: RunKey) async throws -> RunContext? {
        let task = self.loads.withLock { loads in
            if let task = loads[key] { return task }
            if loads.count >= 8 { loads.removeAll() }
            let task = Task { try await self.load(key) }
            loads[key] = task
            return task
        }
        do {
            return try await task.value
        } catch {
            self.loads.withLock { _ = $0.removeValue(forKey: key) }
            throw error
        }
    }

    private func load(_ key: RunKey) async throws -> RunContext? {
        guard let row = try await self.database.query("""
            SELECT generation, status, timezone, model::text AS model, vocabulary::text AS vocabulary, population
            FROM analysis_runs WHERE day = \(key.day.description)::date
            """).first else { return nil }
        let generation: Int = try row.decode("generation")
        guard generation == key.generation else {
            if generation < key.generation {
                throw TransientError(code: "run_not_ready", "run \(key.day) is at generation \(generation), the job at \(key.generation)")
            }
            return nil
        }
        let model = try row.decodeOptional("model", as: String.self).map { try JSONDecoder().decode(LogisticModel.self, from: Data($0.utf8)) }
        let terms = try row.decodeOptional("vocabulary", as: String.self)
            .map { try JSONDecoder().decode([String: Int].self, from: Data($0.utf8)) } ?? [:]
        let vocabulary = Vocabulary(population: try row.decode("population"), documentFrequency: terms)
        return RunContext(day: key.day, timezone: try row.decode("timezone"),
                          analyzer: UserAnalyzer(model: model, vocabulary: vocabulary, maxEvents: self.maxEvents))
    }
}
