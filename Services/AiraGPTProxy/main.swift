// aira-gpt-proxy: answers gpt.ask RPCs from an OpenAI-compatible upstream, with a Redis answer
// cache, per-user daily quotas and single-flight upstream calls. See docs/gpt.md.
import AiraContracts
import AiraLLM
import AiraCore
import AiraMessaging
import AiraRedis
import AiraServiceKit
import AsyncHTTPClient
import Foundation
import NIOCore

do {
    let settings = try ServiceSettings(name: "aira-gpt-proxy", defaultPort: 8082,
                                       consumerDefaults: ConsumerOptions(concurrency: 64, prefetch: 128))
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)

    let upstreamConfiguration = Upstream.Configuration(
        baseURL: env.string("AIRA_GPT_UPSTREAM_URL", default: "http://127.0.0.1:8090").trimmingCharacters(in: ["/"]),
        apiKey: env.optionalString("AIRA_GPT_API_KEY"),
        model: env.string("AIRA_GPT_MODEL", default: "mock-1"),
        connectTimeout: try env.duration("AIRA_GPT_CONNECT_TIMEOUT", default: .seconds(2)),
        readTimeout: try env.duration("AIRA_GPT_READ_TIMEOUT", default: .seconds(60)),
        retries: try env.int("AIRA_GPT_RETRIES", default: 3, range: 0...10))
    var httpConfiguration = HTTPClient.Configuration()
    httpConfiguration.timeout = .init(connect: .milliseconds(upstreamConfiguration.connectTimeout.milliseconds),
                                      read: .milliseconds(upstreamConfiguration.readTimeout.milliseconds))
    let concurrency = try env.int("AIRA_GPT_UPSTREAM_CONCURRENCY", default: 32, range: 1...10_000)
    httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
    // Shut down however start-up or the run ends (a client dropped unshut traps).
    do {
        let redis = RedisClient(configuration: try settings.redisConfiguration())
        var store = AnswerStore(redis: redis, logger: logger,
                                conversations: ConversationStore(redis: redis, ttl: try env.duration("AIRA_GPT_CONVERSATION_TTL",
                                                                                                     default: .seconds(30 * 86_400))))
        store.cacheTTL = try env.duration("AIRA_GPT_CACHE_TTL", default: .seconds(72 * 3600))
        store.flightWait = try env.duration("AIRA_GPT_SINGLE_FLIGHT_WAIT", default: .seconds(15))
        let connection = try await ServiceHost.connectBroker(settings, logger: logger)
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        // Questions are posted to the trail and nobody waits for their confirm, so an event may
        // wait longer for company: at thousands of cached answers a second, 100 ms gathers
        // hundreds of events per persistent message (the measured trade-off: docs/benchmarks.md).
        let trail = AuditTrail(publisher: publisher,
                               options: try AuditTrail.Options.from(env, defaults: .init(maxBatch: 1000, maxDelay: .milliseconds(100))),
                               logger: logger)
        GPTService.exposeMetrics()
        let service = GPTService(
            upstream: Upstream(configuration: upstreamConfiguration, http: http, slots: AsyncLimiter(limit: concurrency), logger: logger),
            store: store, cacheVersion: env.string("AIRA_GPT_CACHE_VERSION", default: "1"),
            quotas: ["USER": try env.int("AIRA_GPT_QUOTA_USER", default: 100, range: 0...10_000_000),
                     "ADMIN": try env.int("AIRA_GPT_QUOTA_ADMIN", default: 1000, range: 0...10_000_000)],
            trail: trail)

        let server = RPCServer(spec: GPTRPC.queue, routes: service.routes, connection: connection, publisher: publisher,
                               options: settings.consumer, logger: logger)
        logger.info("gpt proxy configured", metadata: ["upstream": "\(upstreamConfiguration.baseURL)", "model": "\(upstreamConfiguration.model)"])
        // Redis is not a readiness condition: without it questions are still answered (uncached).
        try await ServiceHost.run(settings: settings, logger: logger, registry: registry, connection: connection,
                                  publishers: [trail], services: [server], readiness: [ReadinessCheck("broker") { connection.isConnected }])
        await redis.shutdown()
    } catch {
        try? await http.shutdown().get()
        throw error
    }
    try await http.shutdown().get()
} catch {
    exitOnStartupFailure("aira-gpt-proxy", error)
}
