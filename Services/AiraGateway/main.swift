// aira-gateway: the HTTP API. Verifies access tokens locally, rate limits in Redis, and turns
// requests into RPCs (aira-auth) and messages. See docs/api.md and docs/configuration.md.
import AiraAccounts
import AiraContracts
import AiraLLM
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import AiraTokens
import Foundation
import Hummingbird

do {
    let settings = try ServiceSettings(name: "aira-gateway", defaultPort: 8080)
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)

    guard let keysText = env.optionalString("AIRA_JWT_PUBLIC_KEYS") else {
        throw ConfigurationError(key: "AIRA_JWT_PUBLIC_KEYS", value: "",
                                 expected: "comma-separated kid:base64 Ed25519 public keys (aira-admin keys generate)")
    }
    let keys = try keysText.split(separator: ",").map { try TokenKey(verifying: $0.trimmingCharacters(in: .whitespaces)) }
    let verifier = try await AccessTokenVerifier(keys: keys)
    let bodyLimit = try env.int("AIRA_MAX_BODY_BYTES", default: 64 * 1024, range: 1024...(64 << 20))
    let limits = (
        auth: try RateLimitClass.from(env, name: "auth", user: RateLimit(limit: 10, window: .seconds(60)),
                                      address: RateLimit(limit: 30, window: .seconds(60))),
        read: try RateLimitClass.from(env, name: "read", user: RateLimit(limit: 600, window: .seconds(60)),
                                      address: RateLimit(limit: 1200, window: .seconds(60))),
        write: try RateLimitClass.from(env, name: "write", user: RateLimit(limit: 120, window: .seconds(60)),
                                       address: RateLimit(limit: 600, window: .seconds(60))),
        admin: try RateLimitClass.from(env, name: "admin", user: RateLimit(limit: 60, window: .seconds(60)),
                                       address: RateLimit(limit: 120, window: .seconds(60))),
        gpt: try RateLimitClass.from(env, name: "gpt", user: RateLimit(limit: 60, window: .seconds(60)),
                                     address: RateLimit(limit: 300, window: .seconds(60))))

    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let presence = ConsumerPresence(connection: connection, queues: [AuthRPC.credentials.name, AuthRPC.sessions.name, GPTRPC.queue.name],
                                    logger: logger)
    let maxInFlight = try env.int("AIRA_MAX_IN_FLIGHT", default: 512, range: 1...100_000)
    let calls = ServiceCalls(client: try await RPCClient.open(on: connection), presence: presence,
                             inFlight: InFlightLimit(limit: maxInFlight))
    let credentialsTimeout = try env.duration("AIRA_AUTH_CREDENTIALS_TIMEOUT", default: .seconds(10))
    // bcrypt calls are admitted by a learned limit (AdaptiveLimit); 0s turns it off.
    let credentialsTarget = try env.duration("AIRA_AUTH_CREDENTIALS_TARGET_LATENCY", default: credentialsTimeout / 4)
    let credentialsLimit = credentialsTarget > .zero
        ? AdaptiveLimit(queue: AuthRPC.credentials.name,
                        options: .init(targetLatency: credentialsTarget, initial: min(16, maxInFlight), minimum: min(2, maxInFlight),
                                       maximum: maxInFlight))
        : nil
    let auth = AuthRoutes(calls: calls, accounts: AccountStore(database: database), bodyLimit: bodyLimit,
                          credentialsTimeout: credentialsTimeout, credentialsLimit: credentialsLimit,
                          sessionsTimeout: try env.duration("AIRA_AUTH_SESSIONS_TIMEOUT", default: .seconds(5)),
                          browser: BrowserSession(
                              maxAge: Int(try env.duration("AIRA_REFRESH_TOKEN_TTL", default: .seconds(30 * 86_400)).components.seconds),
                              secure: try env.bool("AIRA_COOKIE_SECURE", default: false)))
    let conversations = ConversationRoutes(
        store: ConversationStore(redis: redis, ttl: try env.duration("AIRA_GPT_CONVERSATION_TTL", default: .seconds(30 * 86_400))),
        bodyLimit: bodyLimit)
    let gptBatch = try env.int("AIRA_GPT_RPC_BATCH", default: 64, range: 1...1_000)
    // `auto`: one batch out per proxy consuming gpt.ask (up to 16); a number fixes it.
    let gptParallelText = env.optionalString("AIRA_GPT_RPC_BATCH_PARALLEL") ?? "auto"
    guard let gptParallel = gptParallelText == "auto" ? 16 : Int(gptParallelText), (1...256).contains(gptParallel) else {
        throw ConfigurationError(key: "AIRA_GPT_RPC_BATCH_PARALLEL", value: gptParallelText, expected: "auto or an integer in 1...256")
    }
    var gpt = GPTRoutes(calls: calls, bodyLimit: bodyLimit, timeout: try env.duration("AIRA_GPT_TIMEOUT", default: .seconds(60)),
                        batching: gptBatch == 1 ? nil : RPCBatch.Options(maxBatch: gptBatch, parallel: gptParallel))
    gpt.parallelFollowsConsumers = gptParallelText == "auto"
    let publisher = try await MessagePublisher.open(on: connection)
    // What the gateway publishes waits in its consumers' queues even before they first start.
    try await AuditEvent.queue.declare(on: publisher.channel)
    try await ThumbnailJob.queue.declare(on: publisher.channel)
    let trail = AuditTrail(publisher: publisher, options: try AuditTrail.Options.from(env), logger: logger)
    // Reads may go to a streaming replica (docs/search.md); unset, everything reads the primary.
    let readReplica = env.optionalString("AIRA_DATABASE_READ_URL").map { url in
        var c = settings.postgresConfiguration()
        c.url = url
        c.applicationName = "aira-gateway-read"
        c.poolName = "replica"
        return PostgresClient(configuration: c)
    }
    let reads = PostgresReadRouter(primary: database, replica: readReplica,
                                   maxLag: try env.duration("AIRA_READ_REPLICA_MAX_LAG", default: .seconds(2)))
    let freshWindow = try env.duration("AIRA_READ_YOUR_WRITES_WINDOW", default: .seconds(10))
    guard freshWindow > reads.maxLag else {
        throw ConfigurationError(key: "AIRA_READ_YOUR_WRITES_WINDOW", value: "\(freshWindow)",
                                 expected: "longer than AIRA_READ_REPLICA_MAX_LAG (\(reads.maxLag))")
    }
    let content = ContentContext(database: database, publisher: publisher, trail: trail, reads: reads, redis: redis,
                                 freshWindow: freshWindow)
    var posts = PostRoutes(content: content,
                           cache: PostsCache(redis: redis, ttl: try env.duration("AIRA_POSTS_CACHE_TTL", default: .seconds(30)),
                                             reads: reads, freshWindow: freshWindow, logger: logger),
                           bodyLimit: bodyLimit)
    // Search reads "newest matches" from the RUM index when migration 0007 could create it.
    switch env.string("AIRA_SEARCH_INDEX", default: "auto") {
    case "auto":
        posts.newestFromIndex = (try? await database.query(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'posts_search_rum' AND schemaname = current_schema()").first) != nil
    case "gin": posts.newestFromIndex = false
    case let other: throw ConfigurationError(key: "AIRA_SEARCH_INDEX", value: other, expected: "auto or gin")
    }
    logger.info("search index", metadata: ["newestMatches": "\(posts.newestFromIndex ? "rum" : "gin")"])
    let replicaWatch = ReplicaWatch(router: reads, interval: try env.duration("AIRA_READ_REPLICA_CHECK_INTERVAL", default: .milliseconds(500)),
                                    logger: logger)
    let playlists = PlaylistRoutes(content: content, bodyLimit: bodyLimit)
    let videos = VideoRoutes(content: content, mediaRoot: env.string("AIRA_MEDIA_DIR", default: ".data/media"),
                             maxUploadBytes: try env.int("AIRA_MAX_UPLOAD_BYTES", default: 100 << 20, range: 1024...(16 << 30)))
    let audit = AuditRoutes(content: content)
    let adminUsers = AdminUserRoutes(content: content)
    let operators = OperatorRoutes(
        content: content, connection: connection,
        management: try env.optionalString("AIRA_RABBITMQ_MANAGEMENT_URL").map { url in
            do { return try ManagementAPI(url: url) } catch {
                throw ConfigurationError(key: "AIRA_RABBITMQ_MANAGEMENT_URL", value: url, expected: "http://user:pass@host:15672")
            }
        },
        vhost: try settings.amqpConfiguration().vhost, bodyLimit: bodyLimit,
        maxReplayRate: Double(try env.int("AIRA_DLQ_REPLAY_MAX_RATE", default: 500, range: 1...100_000)),
        defaultReplayRate: Double(try env.int("AIRA_DLQ_REPLAY_RATE", default: 100, range: 1...100_000)),
        analysisTimezone: env.string("AIRA_ANALYZER_TIMEZONE", default: TimeZone.current.identifier), logger: logger)
    let insights = InsightsRoutes(content: content)
    let limiter = RateLimiter(redis: redis, logger: logger)
    let shutdown = ShutdownFlag()

    let router = Router(context: GatewayContext.self)
    router.add(middleware: HTTPMetricsMiddleware())
    router.add(middleware: RequestMiddleware(trustForwardedFor: try env.bool("AIRA_TRUST_FORWARDED_FOR", default: false)))
    WebApp(directory: env.string("AIRA_WEB_DIR", default: "Services/AiraGateway/Web"), logger: logger)?.register(on: router)
    ObservabilityRoutes.add(to: router, registry: registry, checks: [
        ReadinessCheck("broker") { connection.isConnected },
        ReadinessCheck("redis") { await redis.ping() },
        ReadinessCheck("postgres") { await database.ping() },
    ], shutdown: shutdown)
    router.get("/openapi.yaml") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: .init(string: OpenAPI.document)))
    }
    let api = router.group("/api")
        .add(middleware: AdmissionMiddleware(limit: try env.int("AIRA_MAX_ACTIVE_REQUESTS", default: 4096, range: 1...1_000_000)))
    let user = Authenticate(verifier: verifier)
    // bcrypt's routes refuse at the door while its learned limit is full (before Redis or the body).
    let bcryptGate = CapacityGate(limit: credentialsLimit, queue: AuthRPC.credentials.name)
    api.group("/auth").add(middleware: bcryptGate).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.auth))
        .post("/signup", use: auth.signup)
        .post("/login", use: auth.login)
    api.group("/auth").add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.auth))
        .get("/verify", use: auth.verify)
        .post("/verify", use: auth.verify)
        .post("/refresh", use: auth.refresh)
    api.group("/auth").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.write))
        .post("/logout", use: auth.logout)
        .post("/logout-all", use: auth.logoutAll)
        .delete("/sessions/:id", use: auth.endSession)
    api.group("/auth").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("/sessions", use: auth.sessions)
    api.group("/auth").add(middleware: user).add(middleware: bcryptGate).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.auth))
        .post("/password", use: auth.changePassword)
    api.group("/users").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("/me", use: auth.me)
        .get("/me/insights", use: insights.mine)
    api.group("/admin").add(middleware: Authenticate(verifier: verifier, admin: true))
        .add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.admin))
        .get("/users", use: adminUsers.search)
        .post("/users/:id/suspend", use: auth.setSuspended(true))
        .post("/users/:id/unsuspend", use: auth.setSuspended(false))
        .get("/queues", use: operators.queues)
        .get("/dlq", use: operators.deadLetterQueues)
        .get("/dlq/:queue", use: operators.deadLetters)
        .post("/dlq/:queue/replay", use: operators.replay)
        .post("/dlq/:queue/purge", use: operators.purge)
        .get("/analysis/runs", use: operators.analysisRuns)
        .post("/analysis/runs", use: operators.requestRun)

    // Content: public reads take an optional token; changes need one.
    let anyone = Authenticate(verifier: verifier, optional: true)
    api.group("/playlists").add(middleware: anyone).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("", use: playlists.list)
        .get("/:id", use: playlists.get)
        .get("/:id/videos", use: playlists.videos)
    api.group("/playlists").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.write))
        .post("", use: playlists.create)
        .patch("/:id", use: playlists.update)
        .delete("/:id", use: playlists.delete)
        .put("/:id/videos/:videoId", use: playlists.addVideo)
        .delete("/:id/videos/:videoId", use: playlists.removeVideo)
    api.group("/videos").add(middleware: anyone).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("/:id", use: videos.get)
        .get("/:id/thumbnail", use: videos.thumbnail)
        .get("/:id/media", use: videos.media)
        .post("/:id/play", use: videos.play)
    api.group("/videos").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("", use: videos.mine)
    api.group("/videos").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.write))
        .post("", use: videos.upload)
        .put("/:id/like", use: videos.like(true))
        .delete("/:id/like", use: videos.like(false))
    api.group("/admin").add(middleware: Authenticate(verifier: verifier, admin: true))
        .add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.admin))
        .get("/audit", use: audit.list)

    api.group("/posts").add(middleware: anyone).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("", use: posts.list)
        .get("/:id", use: posts.get)
    api.group("/posts").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.write))
        .post("", use: posts.create)
        .patch("/:id", use: posts.update)
        .delete("/:id", use: posts.delete)
        .put("/:id/like", use: posts.like(true))
        .delete("/:id/like", use: posts.like(false))
    api.group("/search").add(middleware: anyone).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("", use: posts.search)

    api.group("/gpt").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.gpt))
        .post("/qna", use: gpt.qna)
    api.group("/gpt").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("/quota", use: gpt.quota)
    api.group("/gpt/conversations").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.read))
        .get("", use: conversations.list)
        .get("/:id", use: conversations.get)
    api.group("/gpt/conversations").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.write))
        .patch("/:id", use: conversations.rename)
        .delete("/:id", use: conversations.delete)
    // OpenAI-compatible: the official SDKs work with base URL http://host:8080/v1 and an Aira access token as API key.
    router.group("/v1").add(middleware: user).add(middleware: RateLimitMiddleware(limiter: limiter, limits: limits.gpt))
        .post("/chat/completions", use: gpt.chatCompletions)

    let mismatch = OpenAPI.mismatches(routes: router.routes.map(\.description).filter { !WebApp.isWebRoute($0) })
    guard mismatch.undocumented.isEmpty, mismatch.unrouted.isEmpty else {
        throw ConfigurationError(key: "openapi.yaml", value: "undocumented: \(mismatch.undocumented), unrouted: \(mismatch.unrouted)",
                                 expected: "the document to list exactly the routed operations")
    }

    let app = Application(router: router,
                          configuration: .init(address: .hostname(settings.httpHost, port: settings.httpPort),
                                               serverName: "aira-gateway"),
                          onServerRunning: { channel in
                              logger.info("gateway listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                          },
                          logger: logger)
    try await ServiceHost.run(logger: logger, connection: connection, publishers: [trail], http: app, services: [presence, replicaWatch],
                              shutdown: shutdown)
    await redis.shutdown()
    await reads.shutdown()
    await database.shutdown()
} catch {
    exitOnStartupFailure("aira-gateway", error)
}
