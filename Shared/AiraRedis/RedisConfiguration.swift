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
    /// Set: the primary is found through Redis Sentinel, not at `host`/`port`.
    public var sentinel: Sentinel?

    /// Sentinels that name the current primary of a replicated Redis. Each new connection asks
    /// them (starting at the next in turn) for the primary's address, connects there and checks
    /// with `ROLE` that it is the primary. A connection that gets a `READONLY` reply (its server
    /// was demoted by a failover) is discarded, so the next one follows the new primary.
    public struct Sentinel: Sendable, Hashable {
        public var nodes: [HostList.Endpoint]
        /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
        public var primaryName: String
        public init(nodes: [HostList.Endpoint], primaryName: String) {
            self.nodes = nodes
            self.primaryName = primaryName
        }
    }

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

    /// `redis://[:password@]host[:port][/db]`, or through Sentinel:
    /// `redis-sentinel://[:password@]sentinel1[:26379][,sentinel2…][/db]#primary-name` (the
    /// password is the Redis servers'; sentinels are asked without one unless they demand it).
    public init(url: String) throws {
        if url.hasPrefix("redis-sentinel://") {
            try self.init(sentinelURL: url)
            return
        }
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

    private init(sentinelURL url: String) throws {
        let invalid = RedisError.invalidURL(URLText.redacted(url))
        guard let (hosts, single) = HostList.split(url), !hosts.isEmpty,
              let c = URLComponents(string: single), let name = c.fragment?.removingPercentEncoding, !name.isEmpty else {
            throw invalid
        }
        var nodes: [HostList.Endpoint] = []
        for text in hosts {
            guard let node = HostList.endpoint(text, defaultPort: 26379) else { throw invalid }
            nodes.append(node)
        }
        self.init(host: nodes[0].host, port: nodes[0].port)
        self.sentinel = Sentinel(nodes: nodes, primaryName: name)
        self.password = c.password?.removingPercentEncoding ?? c.password
        let path = c.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let db = Int(path) else { throw invalid }
            self.database = db
        }
    }
}
