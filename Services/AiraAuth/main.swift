// aira-auth: accounts, logins, sessions and roles, served over RPC (queues auth.credentials
// and auth.sessions). bcrypt runs on its own thread pool (AIRA_BCRYPT_THREADS), never on the
// cooperative pool. See docs/auth.md.
import AiraAccounts
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import AiraTokens
import Foundation
import NIOPosix
import ServiceLifecycle

do {
    let settings = try ServiceSettings(name: "aira-auth", defaultPort: 8081)
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)

    guard let keyText = env.optionalString("AIRA_JWT_SIGNING_KEY") else {
        throw ConfigurationError(key: "AIRA_JWT_SIGNING_KEY", value: "", expected: "kid:base64 Ed25519 seed (aira-admin keys generate)")
    }
    let signingKey = try TokenKey(signing: keyText)
    let cost = try env.int("AIRA_BCRYPT_COST", default: 10, range: 4...31)
    if cost < 10 { logger.warning("bcrypt cost below 10: for tests and benchmarks only", metadata: ["cost": "\(cost)"]) }
    let bcryptThreads = try env.int("AIRA_BCRYPT_THREADS", default: ProcessInfo.processInfo.activeProcessorCount, range: 1...256)
    let pool = NIOThreadPool(numberOfThreads: bcryptThreads)
    pool.start()
    let hasher = PasswordHasher(cost: UInt8(cost), niceness: Int32(try env.int("AIRA_BCRYPT_NICE", default: 10, range: 0...19)),
                                pool: pool)

    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let policy = LoginThrottle.Policy(
        accountFreeFailures: try env.int("AIRA_LOGIN_FREE_FAILURES", default: 5, range: 1...1000),
        addressFreeFailures: try env.int("AIRA_LOGIN_ADDRESS_FREE_FAILURES", default: 50, range: 1...100_000),
        baseDelay: try env.duration("AIRA_LOGIN_BASE_DELAY", default: .seconds(1)),
        maxLock: try env.duration("AIRA_LOGIN_MAX_LOCK", default: .seconds(300)),
        window: try env.duration("AIRA_LOGIN_WINDOW", default: .seconds(900)))
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    // What auth publishes waits in its consumers' queues even before they first start.
    try await EmailMessage.queue.declare(on: publisher.channel)
    try await AuditEvent.queue.declare(on: publisher.channel)
    let refreshTokens = RefreshTokens(database: database,
                                      lifetime: try env.duration("AIRA_REFRESH_TOKEN_TTL", default: .seconds(30 * 86_400)))
    let trail = AuditTrail(publisher: publisher, options: try AuditTrail.Options.from(env), logger: logger)
    let service = AuthService(
        accounts: AccountStore(database: database), hasher: hasher,
        issuer: try await AccessTokenIssuer(signingKey: signingKey,
                                            lifetime: try env.duration("AIRA_ACCESS_TOKEN_TTL", default: .seconds(900))),
        refreshTokens: refreshTokens,
        throttle: LoginThrottle(redis: redis, policy: policy, logger: logger), redis: redis,
        timingHash: try await hasher.hash(OpaqueToken.random(prefix: "")),
        verifyURL: env.string("AIRA_VERIFY_URL", default: "http://127.0.0.1:8080/#/verify?token="),
        verificationLifetime: try env.duration("AIRA_VERIFY_TOKEN_TTL", default: .seconds(48 * 3600)),
        trail: trail)

    // bcrypt-bound calls: enough in flight to keep every bcrypt thread busy, no more.
    let credentialsOptions = ConsumerOptions(
        concurrency: try env.int("AIRA_CREDENTIALS_CONCURRENCY", default: bcryptThreads * 4, range: 1...10_000),
        prefetch: UInt16(try env.int("AIRA_CREDENTIALS_PREFETCH", default: bcryptThreads * 8, range: 1...65_535)),
        shutdownTimeout: settings.consumer.shutdownTimeout)
    let routes = service.routes
    let purger = SessionPurger(tokens: refreshTokens, interval: try env.duration("AIRA_SESSION_PURGE_INTERVAL", default: .seconds(3600)),
                               logger: logger)
    let servers: [any Service] = [
        purger,
        RPCServer(spec: AuthRPC.credentials, routes: routes.credentials, connection: connection, publisher: publisher,
                  options: credentialsOptions, logger: logger),
        RPCServer(spec: AuthRPC.sessions, routes: routes.sessions, connection: connection, publisher: publisher,
                  options: settings.consumer, logger: logger),
    ]
    logger.info("auth configured", metadata: ["bcryptCost": "\(cost)", "bcryptThreads": "\(bcryptThreads)",
                                              "signingKid": "\(signingKey.kid)"])
    try await ServiceHost.run(settings: settings, logger: logger, registry: registry, connection: connection,
                              publishers: [trail], services: servers,
                              // Not Redis: logins, refreshes and logouts work without it (sign-up's
                              // verification links and the shared login throttle wait for it).
                              readiness: [ReadinessCheck("broker") { connection.isConnected },
                                          ReadinessCheck("postgres") { await database.ping() }])
    await redis.shutdown()
    await database.shutdown()
    try await pool.shutdownGracefully()
} catch {
    exitOnStartupFailure("aira-auth", error)
}
