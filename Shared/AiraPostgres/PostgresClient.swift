import AiraCore
import Logging
import Metrics
import ServiceLifecycle

/// A PostgreSQL client: a pool of libpq connections, each on its own thread.
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let pool: ConnectionPool<PostgresConnection>

    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        let usage = PoolGauges(pool: configuration.poolName, size: configuration.poolSize)
        self.pool = ConnectionPool(maxConnections: configuration.poolSize, leaseTimeout: configuration.leaseTimeout,
                                   observer: { usage.record($0) }) {
            try await PostgresConnection.connect(configuration)
        }
    }

    /// Runs one statement (parameters bound). `prepared` reuses a per-connection prepared statement.
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await self.withConnection { try await $0.query(query, prepared: prepared) }
    }

    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await self.pool.withConnection(body)
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

/// The pool's use as gauges (from the pool's own state, ``ConnectionPool/Usage``):
/// `aira_postgres_pool_connections{pool, state="in_use"|"max"}` and `aira_postgres_pool_waiting{pool}`
/// (callers queued for a connection).
private struct PoolGauges: Sendable {
    private let inUse: Gauge
    private let waiting: Gauge

    init(pool: String, size: Int) {
        self.inUse = Gauge(label: "aira_postgres_pool_connections", dimensions: [("pool", pool), ("state", "in_use")])
        self.waiting = Gauge(label: "aira_postgres_pool_waiting", dimensions: [("pool", pool)])
        Gauge(label: "aira_postgres_pool_connections", dimensions: [("pool", pool), ("state", "max")]).record(size)
    }

    func record(_ usage: ConnectionPool<PostgresConnection>.Usage) {
        self.inUse.record(usage.leased)
        self.waiting.record(usage.waiting)
    }
}

extension PostgresClient: Service {
    /// Holds the pool while its service group runs; when the group shuts down (gracefully or
    /// cancelled) it closes every connection. A client is listed before the services that use it,
    /// so it stops after them. Connections open on first use: a client never run opened nothing.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.shutdown()
    }
}
