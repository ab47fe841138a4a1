import AiraContracts
import AiraLLM
import AiraMessaging
import AiraRedis
import AiraServiceKit
import AsyncHTTPClient
import Logging
import Prometheus
import ServiceLifecycle

/// aira-gpt-proxy as a service group: the Redis client, the upstream HTTP client, the question
/// trail and the `gpt.ask` RPC server.
func buildGPTProxy(_ configuration: GPTProxyConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                   signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    let redis = RedisClient(configuration: try settings.redisConfiguration())
    var store = AnswerStore(redis: redis, logger: logger,
                            conversations: ConversationStore(redis: redis, ttl: configuration.conversationTTL))
    store.cacheTTL = configuration.cacheTTL
    store.flightWait = configuration.flightWait
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let trail = AuditTrail(publisher: publisher, options: configuration.trail, logger: logger)
        // Made after the last step that can throw: an HTTP client must be shut down, and from
        // here on the group does it (it is one of the group's clients).
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .milliseconds(configuration.upstream.connectTimeout.milliseconds),
                                          read: .milliseconds(configuration.upstream.readTimeout.milliseconds))
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60),
                                                 concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.upstreamConcurrency)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        GPTService.exposeMetrics()
        var budgets = BudgetStore(redis: redis, policy: configuration.budgets, prices: configuration.prices,
                                  namespace: configuration.budgetNamespace, defaultMaxTokens: configuration.defaultMaxTokens, logger: logger)
        budgets.usageRetention = configuration.usageRetention
        let service = GPTService(
            upstream: Upstream(configuration: configuration.upstream, http: http,
                               slots: AsyncLimiter(limit: configuration.upstreamConcurrency),
                               breakers: CircuitBreakers(redis: redis, endpoints: configuration.upstream.endpoints,
                                                         options: configuration.upstream.breaker, logger: logger),
                               logger: logger),
            store: store, budgets: budgets, metrics: GenAIMetrics(registry: registry, prices: configuration.prices), cacheVersion: configuration.cacheVersion, quotas: configuration.quotas, trail: trail,
            auditRedactor: configuration.redactAudit ? PIIRedactor() : nil,
            upstreamRedactor: configuration.redactUpstream ? PIIRedactor() : nil, replayDelay: configuration.replayDelay)
        let server = RPCServer(spec: GPTRPC.queue, routes: service.routes, connection: connection, publisher: publisher,
                               options: settings.consumer, logger: logger)
        logger.info("gpt proxy configured",
                    metadata: ["upstreams": "\(configuration.upstream.endpoints.map { "\($0.name)=\($0.url)" }.joined(separator: ","))",
                               "model": "\(configuration.upstream.model)",
                               "budgets": "\(configuration.budgets.rules.map(\.description).joined(separator: ","))"])
        // Redis is not a readiness condition: without it questions are still answered (uncached).
        return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                 clients: [redis, ClosingService { try await http.shutdown() }], publishers: [trail],
                                 services: [server], readiness: [ReadinessCheck("broker") { connection.isConnected }],
                                 signals: signals)
    }
}
