/// How to reach PostgreSQL.
public struct PostgresConfiguration: Sendable, Hashable {
    /// A libpq connection string or URI: `postgres://user:pass@host:port/db`.
    public var url: String
    public var poolSize: Int
    public var leaseTimeout: Duration
    /// Client-side limit on one statement; past it the connection is dropped and the call fails.
    public var queryTimeout: Duration
    /// libpq's connect timeout (whole seconds, at least 2).
    public var connectTimeoutSeconds: Int
    /// Tests run in their own schema.
    public var searchPath: String?
    public var applicationName: String
    /// The `pool` label of the pool's metrics (`primary`, `replica`).
    public var poolName: String = "primary"

    public init(url: String, poolSize: Int = 8, leaseTimeout: Duration = .seconds(2), queryTimeout: Duration = .seconds(30),
                connectTimeoutSeconds: Int = 2, searchPath: String? = nil, applicationName: String = "aira") {
        self.url = url
        self.poolSize = poolSize
        self.leaseTimeout = leaseTimeout
        self.queryTimeout = queryTimeout
        self.connectTimeoutSeconds = max(2, connectTimeoutSeconds)
        self.searchPath = searchPath
        self.applicationName = applicationName
    }

    /// The conninfo handed to libpq, with timeouts and the application name added.
    var conninfo: String {
        let extra = "connect_timeout=\(self.connectTimeoutSeconds)&application_name=\(self.applicationName)"
        if self.url.contains("://") {
            return self.url + (self.url.contains("?") ? "&" : "?") + extra
        }
        return self.url + " connect_timeout=\(self.connectTimeoutSeconds) application_name=\(self.applicationName)"
    }
}
