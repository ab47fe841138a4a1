import AiraCore
import Foundation

/// Where Redis is and how long to wait for it. A dead Redis must fail callers fast: connect
/// and command timeouts are short by default.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int
    public var connectTimeout: Duration
    /// Read/write timeout of one command (or one pipeline).
    public var commandTimeout: Duration
    public var poolSize: Int
    /// Round trips under way at once; commands arriving meanwhile share the next one. At most `poolSize`.
    public var pipelines: Int
    /// How long a caller waits for a free connection when all are busy.
    public var leaseTimeout: Duration

    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, database: Int = 0,
                connectTimeout: Duration = .milliseconds(500), commandTimeout: Duration = .seconds(1),
                poolSize: Int = 8, pipelines: Int = 2, leaseTimeout: Duration = .seconds(1)) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.pipelines = max(1, min(pipelines, poolSize))
        self.leaseTimeout = leaseTimeout
    }

    /// `redis://[:password@]host[:port][/db]`
    public init(url: String) throws {
        guard let c = URLComponents(string: url), c.scheme == "redis", let host = c.host, !host.isEmpty else {
            throw RedisError.invalidURL(URLText.redacted(url))
        }
        self.init(host: host, port: c.port ?? 6379)
        self.password = c.password?.removingPercentEncoding ?? c.password
        let path = c.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let db = Int(path) else { throw RedisError.invalidURL(URLText.redacted(url)) }
            self.database = db
        }
    }
}
