import AiraCore
import Logging
import Metrics
import Synchronization

/// A PostgreSQL client: a pool of libpq connections, each on its own thread.
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let pool: ConnectionPool<PostgresConnection>
    private let usage: PoolUsage

    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.pool = ConnectionPool(maxConnections: configuration.poolSize, leaseTimeout: configuration.leaseTimeout) {
            try await PostgresConnection.connect(configuration)
        }
        self.usage = PoolUsage(pool: configuration.poolName, size: configuration.poolSize)
    }

    /// Runs one statement (parameters bound). `prepared` reuses a per-connection prepared statement.
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await self.withConnection { try await $0.query(query, prepared: prepared) }
    }

    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        self.usage.waiting(+1)
        var leased = false
        defer { if leased { self.usage.inUse(-1) } else { self.usage.waiting(-1) } }
        return try await self.pool.withConnection { connection in
            self.usage.waiting(-1)
            self.usage.inUse(+1)
            leased = true
            return try await body(connection)
        }
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    public func withTransaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await self.withConnection { connection in
            try await connection.query("BEGIN")
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT")
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    /// Bulk insert with COPY.
    @discardableResult
    public func copyIn(table: String, columns: [String], rows: [[(any PostgresBindable)?]]) async throws -> Int {
        try await self.withConnection { try await $0.copyIn(table: table, columns: columns, rows: rows) }
    }

    /// True if the database answers now (readiness).
    public func ping() async -> Bool {
        (try? await self.query("SELECT 1")) != nil
    }

    public func shutdown() async { await self.pool.shutdown() }
}

/// The pool's use as gauges: `aira_postgres_pool_connections{pool, state="in_use"|"max"}` and
/// `aira_postgres_pool_waiting{pool}` (callers queued for a connection).
private final class PoolUsage: Sendable {
    private let leased = Atomic<Int>(0)
    private let queued = Atomic<Int>(0)
    private let inUseGauge: Gauge
    private let waitingGauge: Gauge

    init(pool: String, size: Int) {
        self.inUseGauge = Gauge(label: "aira_postgres_pool_connections", dimensions: [("pool", pool), ("state", "in_use")])
        self.waitingGauge = Gauge(label: "aira_postgres_pool_waiting", dimensions: [("pool", pool)])
        Gauge(label: "aira_postgres_pool_connections", dimensions: [("pool", pool), ("state", "max")]).record(size)
        self.inUseGauge.record(0)
        self.waitingGauge.record(0)
    }

    func inUse(_ delta: Int) { self.inUseGauge.record(self.leased.add(delta, ordering: .relaxed).newValue) }
    func waiting(_ delta: Int) { self.waitingGauge.record(self.queued.add(delta, ordering: .relaxed).newValue) }
}
