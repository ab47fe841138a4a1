import AiraAnalysis
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import Foundation
import Logging
import Metrics
import Synchronization

/// Brings one day's run as far as this instance can, holding the day's Redis lock: creates the
/// run row (once per day: the primary key), prepares it (model, vocabulary, the user list) and
/// fans it out (one `analysis.user` message per user, in batches with publisher confirms, the
/// position recorded after each batch so another instance resumes where this one stopped).
/// Every step is conditional on the run's generation and state, so a second holder after a lock
/// expiry, or a re-run requested meanwhile, can never double-count or resurrect old work.
final class RunCoordinator: Sendable {
    struct Options: Sendable {
        var lockPrefix: String
        var lockTTL: Duration
        var fanOutBatch: Int
        /// Users published per second at most (0: as fast as the broker confirms).
        var fanOutRate: Int
        var queue: String
        var instance: String
        /// Users the model and the vocabulary are learnt from, at most (about).
        var sampleUsers: Int
    }

    let database: PostgresClient
    let redis: RedisClient
    let publisher: MessagePublisher
    let options: Options
    let logger: Logger
    private let population: Population
    private let stopping = Atomic<Bool>(false)
    private static let published = Counter(label: "aira_analysis_fanout_published_total")
    private static let prepareSeconds = Timer(label: "aira_analysis_prepare_seconds")

    init(database: PostgresClient, redis: RedisClient, publisher: MessagePublisher, options: Options, logger: Logger) {
        self.database = database
        self.redis = redis
        self.publisher = publisher
        self.options = options
        self.logger = logger
        self.population = Population(database: database, titles: VideoTitles(database: database), sampleUsers: options.sampleUsers)
    }

    /// Stops between fan-out batches (graceful shutdown): the lock is released and another
    /// instance resumes.
    func stop() { self.stopping.store(true, ordering: .releasing) }
    private var isStopping: Bool { self.stopping.load(ordering: .acquiring) }

    /// Returns false if another instance holds the day's lock.
    @discardableResult
    func drive(_ day: Day, trigger: String, timezone: String) async throws -> Bool {
        guard let lease = try await RedisLease.acquire(self.options.lockPrefix + day.description, ttl: self.options.lockTTL,
                                                       on: self.redis) else {
            self.logger.debug("another instance holds the run's lock", metadata: ["day": "\(day)"])
            return false
        }
        var logger = self.logger
        logger[metadataKey: "day"] = "\(day)"
        do {
            try await lease.whileRenewed {
                guard var run = try await self.claim(day, trigger: trigger, timezone: timezone, logger: logger) else { return }
                logger[metadataKey: "generation"] = "\(run.generation)"
                if run.status == .preparing {
                    guard let prepared = try await self.prepare(run, logger: logger) else { return }
                    run = prepared
                }
                if run.status == .fanningOut { try await self.fanOut(run, lease: lease, logger: logger) }
            }
        } catch {
            try? await lease.release()
            throw error
        }
        try? await lease.release()
        return true
    }

    /// The run to work on, or nil when there is nothing to do (running or completed: a second
    /// lock winner finds the run and leaves it alone).
    private func claim(_ day: Day, trigger: String, timezone: String, logger: Logger) async throws -> AnalysisRun? {
        let runs = AnalysisRuns(database: self.database)
        let inserted = try await self.database.query("""
            INSERT INTO analysis_runs (day, status, trigger, timezone, holder, started_at)
            VALUES (\(day.description)::date, 'preparing', \(trigger), \(timezone), \(self.options.instance), now())
            ON CONFLICT (day) DO NOTHING
            """)
        if inserted.affectedRows == 1 {
            logger.info("run started", metadata: ["trigger": "\(trigger)", "timezone": "\(timezone)"])
            return try await runs.run(day)
        }
        guard let run = try await runs.run(day) else { return nil }
        switch run.status {
        case .running, .completed:
            return nil
        case .requested:
            try await self.database.query("""
                UPDATE analysis_runs SET status = 'preparing', holder = \(self.options.instance), started_at = now()
                WHERE day = \(day.description)::date AND generation = \(run.generation) AND status = 'requested'
                """)
            logger.info("requested run started", metadata: ["generation": "\(run.generation)"])
        case .preparing, .fanningOut:
            try await self.database.query("""
                UPDATE analysis_runs SET holder = \(self.options.instance) WHERE day = \(day.description)::date AND generation = \(run.generation)
                """)
            logger.info("resuming a run another instance left", metadata: ["status": "\(run.status.rawValue)", "published": "\(run.published)",
                                                                          "previous_holder": "\(run.holder ?? "-")"])
        }
        return try await runs.run(day)
    }

    /// Fits the model, builds the vocabulary, and fixes the run's users (everyone with an
    /// account who was active on the day), all in one commit that moves the run to fan-out.
    private func prepare(_ run: AnalysisRun, logger: Logger) async throws -> AnalysisRun? {
        let start = ContinuousClock.now
        let sample = try await self.population.sampleCondition()
        let model = try await self.population.fitModel(day: run.day, timezone: run.timezone, sample: sample, logger: logger)
        let vocabulary = try await self.population.vocabulary(day: run.day, timezone: run.timezone, sample: sample)
        let modelJSON = try model.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let vocabularyJSON = InsightsJSON.object(vocabulary.documentFrequency)
        let day = run.day.description
        let moved: Bool
        do {
        moved = try await self.database.withTransaction { conn in
            try await conn.query("DELETE FROM analysis_run_users WHERE day = \(day)::date")
            let users = try await conn.query("""
                INSERT INTO analysis_run_users (day, user_id)
                SELECT DISTINCT \(day)::date, a.user_id FROM audit_log a JOIN users u ON u.id = a.user_id
                WHERE a.type <> ALL(\(PostgresArray(ActivityEvents.passive))::text[])
                  AND a.occurred_at >= (\(day)::date::timestamp AT TIME ZONE \(run.timezone))
                  AND a.occurred_at < ((\(day)::date + 1)::timestamp AT TIME ZONE \(run.timezone))
                """).affectedRows
            let updated = try await conn.query("""
                UPDATE analysis_runs SET status = 'fanning_out', users_total = \(users), published = 0, fanout_cursor = NULL,
                    model = \(modelJSON)::jsonb, vocabulary = \(vocabularyJSON)::jsonb, population = \(vocabulary.population)
                WHERE day = \(day)::date AND generation = \(run.generation) AND status = 'preparing'
                """).affectedRows
            guard updated == 1 else { throw StaleRun() }
            return true
        }
        } catch is StaleRun {
            moved = false // re-requested meanwhile: the next check starts the new generation
        }
        guard moved else { return nil }
        Self.prepareSeconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        let prepared = try await AnalysisRuns(database: self.database).run(run.day)
        logger.info("run prepared", metadata: [
            "users": "\(prepared?.usersTotal ?? 0)", "population": "\(vocabulary.population)", "terms": "\(vocabulary.documentFrequency.count)",
            "auc": "\(model?.fit.auc.map { String($0) } ?? "-")", "sample": "\(sample)", "model_samples": "\((model?.fit.trainSize ?? 0) + (model?.fit.testSize ?? 0))", "ms": "\((ContinuousClock.now - start).milliseconds)"])
        return prepared
    }

    private struct StaleRun: Error {}

    /// Publishes the run's users after the recorded position, batch by batch.
    private func fanOut(_ run: AnalysisRun, lease: RedisLease, logger: Logger) async throws {
        let day = run.day.description
        var cursor: UUID? = try await self.database.query("SELECT fanout_cursor FROM analysis_runs WHERE day = \(day)::date")
            .first?.decodeOptional("fanout_cursor")
        let start = ContinuousClock.now
        var sent = 0
        while true {
            guard lease.isHeld else {
                logger.warning("lost the run's lock during fan-out; another instance resumes it")
                return
            }
            guard !self.isStopping else {
                logger.info("stopping: fan-out left for another instance", metadata: ["published_now": "\(sent)"])
                return
            }
            let after = cursor?.lowercasedString ?? "00000000-0000-0000-0000-000000000000"
            let users: [UUID] = try await self.database.query("""
                SELECT user_id FROM analysis_run_users WHERE day = \(day)::date AND user_id > \(after)::uuid
                ORDER BY user_id LIMIT \(self.options.fanOutBatch)
                """).rows.map { try $0.decode("user_id") }
            guard let last = users.last else { break }
            let batchStart = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for user in users {
                    group.addTask {
                        let job = AnalysisJob(day: day, generation: run.generation, userId: user)
                        try await self.publisher.publish(job, routingKey: self.options.queue, messageID: job.messageID)
                    }
                }
                try await group.waitForAll()
            }
            let recorded = try await self.database.query("""
                UPDATE analysis_runs SET fanout_cursor = \(last), published = published + \(users.count)
                WHERE day = \(day)::date AND generation = \(run.generation) AND status = 'fanning_out'
                """).affectedRows
            guard recorded == 1 else {
                logger.info("the run changed under the fan-out (re-run requested); stopping")
                return
            }
            Self.published.increment(by: users.count)
            sent += users.count
            cursor = last
            if self.options.fanOutRate > 0 {
                let budget = Duration.seconds(Double(users.count) / Double(self.options.fanOutRate))
                let spent = ContinuousClock.now - batchStart
                if spent < budget { try await Task.sleep(for: budget - spent) }
            }
        }
        // Everyone is published; workers may even have finished already.
        try await self.database.query("""
            UPDATE analysis_runs SET fanned_out_at = now(),
                status = CASE WHEN succeeded + failed >= users_total THEN 'completed' ELSE 'running' END,
                completed_at = CASE WHEN succeeded + failed >= users_total THEN now() END,
                duration_ms = CASE WHEN succeeded + failed >= users_total
                                   THEN (extract(epoch FROM now() - started_at) * 1000)::bigint END
            WHERE day = \(day)::date AND generation = \(run.generation) AND status = 'fanning_out'
            """)
        logger.info("run fanned out", metadata: ["published_now": "\(sent)", "ms": "\((ContinuousClock.now - start).milliseconds)"])
    }
}
