import AiraAccounts
import AiraContracts
import AiraCore
import AiraLLM
import AiraMessaging
import AiraPostgres
import AiraRedis
import AiraServiceKit
import AiraTokens
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// aira-gateway as a service group: the Redis and PostgreSQL clients (and the read replica's),
/// the RPC client, the audit trail, the HTTP API with the web app, the consumer-presence watch
/// and the replica watch.
func buildGateway(_ configuration: GatewayConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                  signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    let verifier = try await AccessTokenVerifier(keys: configuration.tokenKeys)
    let bodyLimit = configuration.bodyLimit
    let limits = configuration.rateLimits
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    // Reads may go to a streaming replica (docs/search.md); unset, everything reads the primary.
    let readReplica = configuration.readURL.map { url in
        var c = settings.postgresConfiguration()
        c.url = url
        c.applicationName = "aira-gateway-read"
        c.poolName = "replica"
        return PostgresClient(configuration: c)
    }
    let reads = PostgresReadRouter(primary: database, replica: readReplica, maxLag: configuration.replicaMaxLag)
    let vhost = try settings.amqpConfiguration().vhost
    let management = try configuration.managementURL.map { try ManagementAPI(url: $0) }
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let presence = ConsumerPresence(connection: connection, queues: [AuthRPC.credentials.name, AuthRPC.sessions.name, GPTRPC.queue.name],
                                        logger: logger)
        let maxInFlight = configuration.maxInFlight
        let calls = ServiceCalls(client: try await RPCClient.open(on: connection), presence: presence,
                                 inFlight: InFlightLimit(limit: maxInFlight))
        let credentialsLimit = configuration.credentialsTargetLatency.map { target in
            AdaptiveLimit(queue: AuthRPC.credentials.name,
                          options: .init(targetLatency: target, initial: min(16, maxInFlight), minimum: min(2, maxInFlight),
                                         maximum: maxInFlight))
        }
        let auth = AuthRoutes(calls: calls, accounts: AccountStore(database: database), bodyLimit: bodyLimit,
                              credentialsTimeout: configuration.credentialsTimeout, credentialsLimit: credentialsLimit,
                              sessionsTimeout: configuration.sessionsTimeout,
                              browser: BrowserSession(maxAge: Int(configuration.refreshTokenTTL.components.seconds),
                                                      secure: configuration.cookieSecure))
        let conversations = ConversationRoutes(store: ConversationStore(redis: redis, ttl: configuration.conversationTTL),
                                               bodyLimit: bodyLimit)
        let gptBatch = configuration.gptBatch
        var gpt = GPTRoutes(calls: calls, bodyLimit: bodyLimit, timeout: configuration.gptTimeout,
                            batching: gptBatch == 1 ? nil : RPCBatch.Options(maxBatch: gptBatch, parallel: configuration.gptBatchParallel ?? 16))
        gpt.parallelFollowsConsumers = configuration.gptBatchParallel == nil
        let publisher = try await MessagePublisher.open(on: connection)
        // What the gateway publishes waits in its consumers' queues even before they first start.
        try await AuditEvent.queue.declare(on: publisher.channel)
        try await ThumbnailJob.queue.declare(on: publisher.channel)
        let trail = AuditTrail(publisher: publisher, options: configuration.trail, logger: logger)
        let freshWindow = configuration.readYourWritesWindow
        let content = ContentContext(database: database, publisher: publisher, trail: trail, reads: reads, redis: redis,
                                     freshWindow: freshWindow)
        var posts = PostRoutes(content: content,
                               cache: PostsCache(redis: redis, ttl: configuration.postsCacheTTL, reads: reads, freshWindow: freshWindow,
                                                 logger: logger),
                               bodyLimit: bodyLimit)
        // Search reads "newest matches" from the RUM index when migration 0007 could create it.
        switch configuration.searchIndex {
        case .auto:
            posts.newestFromIndex = (try? await database.query(
                "SELECT 1 FROM pg_indexes WHERE indexname = 'posts_search_rum' AND schemaname = current_schema()").first) != nil
        case .gin: posts.newestFromIndex = false
        }
        logger.info("search index", metadata: ["newestMatches": "\(posts.newestFromIndex ? "rum" : "gin")"])
        let replicaWatch = ReplicaWatch(router: reads, interval: configuration.replicaCheckInterval, logger: logger)
        let playlists = PlaylistRoutes(content: content, bodyLimit: bodyLimit)
        let videos = VideoRoutes(content: content, mediaRoot: configuration.mediaDirectory, maxUploadBytes: configuration.maxUploadBytes)
        let audit = AuditRoutes(content: content)
        let adminUsers = AdminUserRoutes(content: content)
        let operators = OperatorRoutes(
            content: content, connection: connection, management: management, vhost: vhost, bodyLimit: bodyLimit,
            maxReplayRate: Double(configuration.maxReplayRate), defaultReplayRate: Double(configuration.replayRate),
            analysisTimezone: configuration.analysisTimezone, logger: logger)
        let insights = InsightsRoutes(content: content)
        let limiter = RateLimiter(redis: redis, logger: logger)
        let shutdown = ShutdownFlag()

        let router = Router(context: GatewayContext.self)
        router.add(middleware: HTTPMetricsMiddleware())
        router.add(middleware: RequestMiddleware(trustForwardedFor: configuration.trustForwardedFor))
        WebApp(directory: configuration.webDirectory, logger: logger)?.register(on: router)
        ObservabilityRoutes.add(to: router, registry: registry, checks: [
            ReadinessCheck("broker") { connection.isConnected },
            ReadinessCheck("redis") { await redis.ping() },
            ReadinessCheck("postgres") { await database.ping() },
        ], shutdown: shutdown)
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: .init(string: OpenAPI.document)))
        }
        let api = router.group("/api")
            .add(middleware: AdmissionMiddleware(limit: configuration.maxActiveRequests))
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
            .get("/me/usage", use: gpt.usage)
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
            .get("/usage", use: gpt.adminUsage)

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
        return ServiceHost.group(logger: logger, connection: connection,
                                 clients: [redis, database] + (readReplica.map { [$0] } ?? []), publishers: [trail], http: app,
                                 services: [presence, replicaWatch], shutdown: shutdown, signals: signals)
    }
}
