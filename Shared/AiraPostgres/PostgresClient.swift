import AiraCore
import Logging

/// A PostgreSQL client: a pool of libpq connections, each on its own thread.
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let pool: ConnectionPool<PostgresConnection>

    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.pool = ConnectionPool(maxConnections: configuration.poolSize, leaseTimeout: configuration.leaseTimeout) {
            try await PostgresConnection.connect(configuration)
        }
    }

    /// Runs one statement (parameters bound). `prepared` reuses a per-connection prepared statement.
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await self.pool.withConnection { try await $0.query(query, prepared: prepared) }
    }

    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await self.pool.withConnection(body)
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    public func withTransaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await self.pool.withConnection { connection in
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
        try await self.pool.withConnection { try await $0.copyIn(table: table, columns: columns, rows: rows) }
    }

    /// True if the database answers now (readiness).
    public func ping() async -> Bool {
        (try? await self.query("SELECT 1")) != nil
    }

    public func shutdown() async { await self.pool.shutdown() }
}
