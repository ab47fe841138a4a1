/// What can go wrong with PostgreSQL. Descriptions are for logs; the gateway shows clients its
/// own generic message, never these. A description holds no row data: the server's `detail`
/// (which quotes the values of a violated constraint: an email, a name) and the text of a value
/// that did not decode stay in the error's cases for code that needs them.
public enum PostgresError: Error, Sendable, CustomStringConvertible {
    case connectFailed(String)
    /// The connection broke (server gone, network) or a query timed out; it is discarded.
    case connectionLost(String)
    case timeout(Duration)
    /// The server rejected the statement.
    case server(sqlState: String, message: String, detail: String?)
    case decoding(column: String, value: String?, expected: String)
    case invalidMigration(String)

    public var sqlState: String? {
        if case .server(let state, _, _) = self { return state }
        return nil
    }

    /// 23505: a unique constraint said no.
    public var isUniqueViolation: Bool { self.sqlState == "23505" }

    /// Worth retrying: connection trouble, timeouts, serialization failures, deadlocks, shutdown.
    public var isRetriable: Bool {
        switch self {
        case .connectFailed, .connectionLost, .timeout: return true
        case .server(let state, _, _):
            return ["40001", "40P01", "57P01", "57P02", "57P03", "53300"].contains(state) || state.hasPrefix("08")
        case .decoding, .invalidMigration: return false
        }
    }

    public var description: String {
        switch self {
        case .connectFailed(let s): "cannot connect to PostgreSQL: \(s)"
        case .connectionLost(let s): "PostgreSQL connection lost: \(s)"
        case .timeout(let d): "PostgreSQL query timed out after \(d)"
        case .server(let state, let message, _): "PostgreSQL error \(state): \(message)"
        case .decoding(let column, let value, let expected):
            "cannot decode column '\(column)' (\(value.map { "\($0.utf8.count) bytes" } ?? "NULL")): expected \(expected)"
        case .invalidMigration(let s): "invalid migration: \(s)"
        }
    }
}
