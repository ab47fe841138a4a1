import AiraPostgres
import Foundation

/// One row of `analysis_runs`: a run of the nightly analysis for one day.
public struct AnalysisRun: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case requested, preparing, fanningOut = "fanning_out", running, completed
    }

    public var day: Day
    public var status: Status
    public var generation: Int
    public var trigger: String
    public var timezone: String
    public var holder: String?
    public var requestedAt: Date
    public var startedAt: Date?
    public var fannedOutAt: Date?
    public var completedAt: Date?
    public var durationMs: Int?
    public var usersTotal: Int
    public var published: Int
    public var succeeded: Int
    public var failed: Int
    public var population: Int
    public var model: LogisticModel?

    /// Users done or failed so far.
    public var finished: Int { self.succeeded + self.failed }

    static let columns = """
        day::text AS day, status, generation, trigger, timezone, holder, requested_at, started_at, fanned_out_at, completed_at,
        duration_ms, users_total, published, succeeded, failed, population, model::text AS model
        """

    init(row: PostgresRow) throws {
        let dayText: String = try row.decode("day")
        guard let day = Day(dayText) else { throw PostgresError.decoding(column: "day", value: dayText, expected: "a date") }
        let statusText: String = try row.decode("status")
        guard let status = Status(rawValue: statusText) else {
            throw PostgresError.decoding(column: "status", value: statusText, expected: "a run status")
        }
        self.day = day
        self.status = status
        self.generation = try row.decode("generation")
        self.trigger = try row.decode("trigger")
        self.timezone = try row.decode("timezone")
        self.holder = try row.decodeOptional("holder")
        self.requestedAt = try row.decode("requested_at")
        self.startedAt = try row.decodeOptional("started_at")
        self.fannedOutAt = try row.decodeOptional("fanned_out_at")
        self.completedAt = try row.decodeOptional("completed_at")
        self.durationMs = try row.decodeOptional("duration_ms")
        self.usersTotal = try row.decode("users_total")
        self.published = try row.decode("published")
        self.succeeded = try row.decode("succeeded")
        self.failed = try row.decode("failed")
        self.population = try row.decode("population")
        self.model = try row.decodeOptional("model", as: String.self).flatMap { try? JSONDecoder().decode(LogisticModel.self, from: Data($0.utf8)) }
    }
}

/// Reading and requesting runs: what aira-admin and the analyzer's scheduler share.
public struct AnalysisRuns: Sendable {
    public let database: PostgresClient

    public init(database: PostgresClient) { self.database = database }

    public func run(_ day: Day) async throws -> AnalysisRun? {
        try await self.database.query("SELECT \(unsafeRaw: AnalysisRun.columns) FROM analysis_runs WHERE day = \(day.description)::date")
            .first.map(AnalysisRun.init(row:))
    }

    /// The newest runs first.
    public func list(limit: Int) async throws -> [AnalysisRun] {
        try await self.database.query("SELECT \(unsafeRaw: AnalysisRun.columns) FROM analysis_runs ORDER BY day DESC LIMIT \(limit)")
            .rows.map(AnalysisRun.init(row:))
    }

    /// Runs an analyzer must pick up: requested, or left half-way by a holder that stopped.
    public func unfinished() async throws -> [AnalysisRun] {
        try await self.database.query("""
            SELECT \(unsafeRaw: AnalysisRun.columns) FROM analysis_runs
            WHERE status IN ('requested', 'preparing', 'fanning_out') ORDER BY day
            """).rows.map(AnalysisRun.init(row:))
    }

    /// Which of `days` have a run row already.
    public func existing(_ days: [Day]) async throws -> Set<Day> {
        let rows = try await self.database.query("""
            SELECT day::text AS day FROM analysis_runs WHERE day = ANY(\(PostgresArray(days.map(\.description)))::date[])
            """).rows
        return Set(try rows.compactMap { Day(try $0.decode("day", as: String.self)) })
    }

    /// Asks for a run of `day` on purpose: a new run, or a re-run (the next generation) of an
    /// existing one, whatever its state: its counts start again, and messages of the previous
    /// generation still queued are ignored. An analyzer instance picks it up at its next check.
    @discardableResult
    public func request(_ day: Day, timezone: String, trigger: String = "manual") async throws -> AnalysisRun {
        let row = try await self.database.query("""
            INSERT INTO analysis_runs (day, status, trigger, timezone)
            VALUES (\(day.description)::date, 'requested', \(trigger), \(timezone))
            ON CONFLICT (day) DO UPDATE SET
                status = 'requested', generation = analysis_runs.generation + 1, trigger = EXCLUDED.trigger,
                timezone = EXCLUDED.timezone, holder = NULL, requested_at = now(), started_at = NULL, fanned_out_at = NULL,
                completed_at = NULL, duration_ms = NULL, users_total = 0, published = 0, fanout_cursor = NULL,
                succeeded = 0, failed = 0, model = NULL, vocabulary = NULL, population = 0
            RETURNING \(unsafeRaw: AnalysisRun.columns)
            """)
        guard let first = row.first else { throw PostgresError.decoding(column: "day", value: nil, expected: "the requested run") }
        return try AnalysisRun(row: first)
    }
}
