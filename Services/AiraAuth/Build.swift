import AiraAccounts
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import AiraTokens
import Logging
import NIOPosix
import Prometheus
import ServiceLifecycle

/// aira-auth as a service group: the Redis and database clients, the bcrypt thread pool, the
/// audit trail, the session purger and the two RPC servers.
func buildAuth(_ configuration: AuthConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
               signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    if configuration.bcryptCost < 10 {
        logger.warning("bcrypt cost below 10: for tests and benchmarks only", metadata: ["cost": "\(configuration.bcryptCost)"])
    }
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        try await EmailMessage.queue.declare(on: publisher.channel)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let pool = NIOThreadPool(numberOfThreads: configuration.bcryptThreads)
        pool.start()
        do {
            let hasher = PasswordHasher(cost: UInt8(configuration.bcryptCost), niceness: Int32(configuration.bcryptNice), pool: pool)
            let refreshTokens = RefreshTokens(database: database, lifetime: configuration.refreshTokenTTL)
            let trail = AuditTrail(publisher: publisher, options: configuration.trail, logger: logger)
            let service = AuthService(
                accounts: AccountStore(database: database), hasher: hasher,
                issuer: try await AccessTokenIssuer(signingKey: configuration.signingKey, lifetime: configuration.accessTokenTTL),
                refreshTokens: refreshTokens,
                throttle: LoginThrottle(redis: redis, policy: configuration.loginThrottle, logger: logger), redis: redis,
                timingHash: try await hasher.hash(OpaqueToken.random(prefix: "")),
                verifyURL: configuration.verifyURL, verificationLifetime: configuration.verificationTTL,
                trail: trail)
            let routes = service.routes
            let servers: [any Service] = [
                SessionPurger(tokens: refreshTokens, interval: configuration.sessionPurgeInterval, logger: logger),
                RPCServer(spec: AuthRPC.credentials, routes: routes.credentials, connection: connection, publisher: publisher,
                          options: configuration.credentialsConsumer, logger: logger),
                RPCServer(spec: AuthRPC.sessions, routes: routes.sessions, connection: connection, publisher: publisher,
                          options: settings.consumer, logger: logger),
            ]
            logger.info("auth configured", metadata: ["bcryptCost": "\(configuration.bcryptCost)",
                                                      "bcryptThreads": "\(configuration.bcryptThreads)",
                                                      "signingKid": "\(configuration.signingKey.kid)"])
            return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                     clients: [redis, database, ClosingService { try await pool.shutdownGracefully() }],
                                     publishers: [trail], services: servers,
                                     readiness: [ReadinessCheck("broker") { connection.isConnected },
                                                 ReadinessCheck("postgres") { await database.ping() }],
                                     signals: signals)
        } catch {
            try? await pool.shutdownGracefully()
            throw error
        }
    }
}
