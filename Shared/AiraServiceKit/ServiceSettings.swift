import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import Logging
import Prometheus
import ServiceLifecycle

/// What every Aira executable reads from its environment. docs/configuration.md lists each
/// variable with its default; a bad value stops start-up with a message naming the variable.
public struct ServiceSettings: Sendable {
    /// The executable's name (logs, metrics).
    public var name: String
    /// `AIRA_INSTANCE` (default: `name`): this process among copies of the same executable, e.g.
    /// `aira-audit-writer#2` from scripts/run. It names the broker connection and the PostgreSQL
    /// session, so `scripts/run status`, the management UI and `pg_stat_activity` tell copies apart.
    public var instance: String
    /// `AIRA_HTTP_HOST` (default 127.0.0.1) and `AIRA_HTTP_PORT`: /health and /metrics (0 = any free port).
    public var httpHost: String
    public var httpPort: Int
    /// `AIRA_AMQP_URL`, `AIRA_REDIS_URL`, `AIRA_DATABASE_URL`.
    public var amqpURL: String
    public var redisURL: String
    public var databaseURL: String
    /// `AIRA_DATABASE_SCHEMA`: a schema to use instead of the default `search_path` (isolated
    /// deployments and tests).
    public var databaseSchema: String?
    /// `AIRA_LOG_LEVEL` (trace…critical, default info) and `AIRA_LOG_FORMAT` (json or text).
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// `AIRA_AMQP_STARTUP_TIMEOUT`: how long start-up waits for the broker before giving up.
    public var brokerStartupTimeout: Duration
    /// `AIRA_CONCURRENCY`, `AIRA_PREFETCH`, `AIRA_SHUTDOWN_TIMEOUT`.
    public var consumer: ConsumerOptions
    /// `AIRA_DB_POOL_SIZE`, `AIRA_REDIS_POOL_SIZE`.
    public var databasePoolSize: Int
    public var redisPoolSize: Int
    /// Redis round trips under way at once (``RedisConfiguration/pipelines``).
    public var redisPipelines: Int
    public let environment: EnvironmentReader

    public enum LogFormat: String, Sendable { case json, text }

    public init(name: String, defaultPort: Int, consumerDefaults: ConsumerOptions = ConsumerOptions(),
                environment: EnvironmentReader = EnvironmentReader()) throws {
        self.name = name
        self.environment = environment
        self.instance = environment.string("AIRA_INSTANCE", default: name)
        self.httpHost = environment.string("AIRA_HTTP_HOST", default: "127.0.0.1")
        self.httpPort = try environment.int("AIRA_HTTP_PORT", default: defaultPort, range: 0...65_535)
        self.amqpURL = environment.string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")
        self.redisURL = environment.string("AIRA_REDIS_URL", default: "redis://127.0.0.1:6379")
        self.databaseURL = environment.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira")
        self.databaseSchema = environment.optionalString("AIRA_DATABASE_SCHEMA")
        let level = environment.string("AIRA_LOG_LEVEL", default: "info")
        guard let parsedLevel = Logger.Level(rawValue: level) else {
            throw ConfigurationError(key: "AIRA_LOG_LEVEL", value: level, expected: "trace, debug, info, notice, warning, error or critical")
        }
        self.logLevel = parsedLevel
        let format = environment.string("AIRA_LOG_FORMAT", default: "json")
        guard let parsedFormat = LogFormat(rawValue: format) else {
            throw ConfigurationError(key: "AIRA_LOG_FORMAT", value: format, expected: "json or text")
        }
        self.logFormat = parsedFormat
        self.brokerStartupTimeout = try environment.duration("AIRA_AMQP_STARTUP_TIMEOUT", default: .seconds(60))
        self.consumer = try ConsumerOptions(environment: environment, defaults: consumerDefaults)
        self.databasePoolSize = try environment.int("AIRA_DB_POOL_SIZE", default: 8, range: 1...200)
        self.redisPoolSize = try environment.int("AIRA_REDIS_POOL_SIZE", default: 8, range: 1...200)
        self.redisPipelines = try environment.int("AIRA_REDIS_PIPELINES", default: 2, range: 1...200)
        // Read where queues are declared (QueueSpec); checked here so a typo stops start-up.
        _ = try environment.value("AIRA_RPC_QUEUE_TYPE", default: "quorum", shown: "quorum", expected: "quorum or classic") {
            $0 == "quorum" || $0 == "classic" ? $0 : nil
        }
    }

    public func amqpConfiguration() throws -> AMQPConfiguration {
        try AMQPConfiguration(url: self.amqpURL, connectionName: self.instance)
    }

    public func redisConfiguration() throws -> RedisConfiguration {
        var c = try RedisConfiguration(url: self.redisURL)
        c.poolSize = self.redisPoolSize
        c.pipelines = max(1, min(self.redisPipelines, self.redisPoolSize))
        return c
    }

    /// `spec` with its retry tiers and attempts overridable by `AIRA_RETRY_TIERS` (e.g. `1s,10s,1m`)
    /// and `AIRA_MAX_ATTEMPTS`; the queue's arguments do not change, so overriding is safe.
    public func queueSpec(_ spec: QueueSpec) throws -> QueueSpec {
        var spec = spec
        spec.retry = RetryPolicy(tiers: try self.environment.durations("AIRA_RETRY_TIERS", default: spec.retry.tiers),
                                 maxAttempts: try self.environment.int("AIRA_MAX_ATTEMPTS", default: spec.retry.maxAttempts, range: 1...100))
        return spec
    }

    public func postgresConfiguration() -> PostgresConfiguration {
        PostgresConfiguration(url: self.databaseURL, poolSize: self.databasePoolSize, searchPath: self.databaseSchema,
                              applicationName: self.instance)
    }
}

/// A service's whole configuration: the settings every executable shares plus its own, read
/// from the environment with documented defaults (docs/configuration.md, checked against what
/// each configuration reads by `ConfigurationDocsTests`).
public protocol ServiceConfiguration: Sendable {
    /// The executable's name (logs, metrics, start-up errors).
    static var serviceName: String { get }
    var settings: ServiceSettings { get }
    init(environment: EnvironmentReader) throws
}

extension ServiceHost {
    /// A service's `main`: reads its configuration, sets up logging and metrics, builds its
    /// service group with `build` and runs it until SIGTERM/SIGINT. A bad setting or a failed
    /// start exits 1 with a message naming the cause.
    public static func main<C: ServiceConfiguration>(
        _: C.Type, build: (C, Logger, PrometheusCollectorRegistry) async throws -> ServiceGroup
    ) async {
        do {
            let configuration = try C(environment: EnvironmentReader())
            let (logger, registry) = Self.bootstrap(configuration.settings)
            let group = try await build(configuration, logger, registry)
            try await Self.run(group, logger: logger)
        } catch {
            exitOnStartupFailure(C.serviceName, error)
        }
    }
}
