import AiraCore
import AiraLLM
import AiraMessaging
import AiraServiceKit

/// aira-gpt-proxy's configuration (docs/configuration.md, "aira-gpt-proxy").
struct GPTProxyConfiguration: ServiceConfiguration {
    static let serviceName = "aira-gpt-proxy"
    var settings: ServiceSettings
    /// `AIRA_GPT_UPSTREAMS` (or the one of `AIRA_GPT_UPSTREAM_URL`, `AIRA_GPT_API_KEY`), `AIRA_GPT_MODEL`,
    /// the timeouts, retries and circuit breakers.
    var upstream: Upstream.Configuration
    /// `AIRA_GPT_UPSTREAM_CONCURRENCY`: upstream calls under way at once.
    var upstreamConcurrency: Int
    /// `AIRA_GPT_CACHE_TTL`, `AIRA_GPT_CACHE_VERSION`, `AIRA_GPT_SINGLE_FLIGHT_WAIT`.
    var cacheTTL: Duration
    var cacheVersion: String
    /// `AIRA_GPT_CACHE_REPLAY_DELAY`: pause between the pieces of a cached answer replayed to a stream.
    var replayDelay: Duration
    var flightWait: Duration
    /// `AIRA_GPT_CONVERSATION_TTL`.
    var conversationTTL: Duration
    /// Questions a day per role: `AIRA_GPT_QUOTA_USER`, `AIRA_GPT_QUOTA_ADMIN`.
    var quotas: [String: Int]
    /// The question trail's batching (`AIRA_AUDIT_PUBLISH_*`).
    var trail: AuditTrail.Options
    /// `AIRA_GPT_REDACT_AUDIT`: personal data in a question is replaced before the audit log keeps it.
    var redactAudit: Bool
    /// `AIRA_GPT_REDACT_UPSTREAM`: personal data goes upstream as numbered placeholders, put back in the answer.
    var redactUpstream: Bool
    /// `AIRA_GPT_BUDGETS`, `AIRA_GPT_PRICES`, `AIRA_GPT_BUDGET_NAMESPACE`, `AIRA_GPT_DEFAULT_MAX_TOKENS`,
    /// `AIRA_GPT_USAGE_RETENTION` (docs/gpt.md, "Budgets").
    var budgets: BudgetPolicy
    var prices: PriceTable
    var budgetNamespace: String
    var defaultMaxTokens: Int
    var usageRetention: Duration

    init(environment env: EnvironmentReader) throws {
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8082,
                                            consumerDefaults: ConsumerOptions(concurrency: 64, prefetch: 128), environment: env)
        let endpoints: [UpstreamEndpoint]
        if let list = env.optionalString("AIRA_GPT_UPSTREAMS"), !list.trimmingCharacters(in: .whitespaces).isEmpty {
            switch UpstreamEndpoint.parse(list, environment: env) {
            case .success(let parsed): endpoints = parsed
            case .failure(let error):
                throw ConfigurationError(key: "AIRA_GPT_UPSTREAMS", value: String(list.prefix(200)), expected:
                    "a JSON array of {name, url, apiKey or apiKeyEnv, models, weight, priority} (\(error.reason))")
            }
        } else {
            endpoints = [UpstreamEndpoint(name: "default",
                                          url: env.string("AIRA_GPT_UPSTREAM_URL", default: "http://127.0.0.1:8090").trimmingCharacters(in: ["/"]),
                                          apiKey: env.optionalString("AIRA_GPT_API_KEY"))]
        }
        self.upstream = Upstream.Configuration(
            endpoints: endpoints,
            model: env.string("AIRA_GPT_MODEL", default: "mock-1"),
            connectTimeout: try env.duration("AIRA_GPT_CONNECT_TIMEOUT", default: .seconds(2)),
            readTimeout: try env.duration("AIRA_GPT_READ_TIMEOUT", default: .seconds(60)),
            retries: try env.int("AIRA_GPT_RETRIES", default: 3, range: 0...10))
        self.upstream.breaker.failures = try env.int("AIRA_GPT_BREAKER_FAILURES", default: 5, range: 1...1000)
        self.upstream.breaker.window = try env.duration("AIRA_GPT_BREAKER_WINDOW", default: .seconds(10))
        self.upstream.breaker.cooldown = try env.duration("AIRA_GPT_BREAKER_COOLDOWN", default: .seconds(30))
        self.upstream.breaker.probeTimeout = self.upstream.readTimeout
        self.upstreamConcurrency = try env.int("AIRA_GPT_UPSTREAM_CONCURRENCY", default: 32, range: 1...10_000)
        self.conversationTTL = try env.duration("AIRA_GPT_CONVERSATION_TTL", default: .seconds(30 * 86_400))
        self.cacheTTL = try env.duration("AIRA_GPT_CACHE_TTL", default: .seconds(72 * 3600))
        self.flightWait = try env.duration("AIRA_GPT_SINGLE_FLIGHT_WAIT", default: .seconds(15))
        self.cacheVersion = env.string("AIRA_GPT_CACHE_VERSION", default: "1")
        self.replayDelay = try env.duration("AIRA_GPT_CACHE_REPLAY_DELAY", default: .zero)
        self.quotas = ["USER": try env.int("AIRA_GPT_QUOTA_USER", default: 100, range: 0...10_000_000),
                       "ADMIN": try env.int("AIRA_GPT_QUOTA_ADMIN", default: 1000, range: 0...10_000_000)]
        // Questions are posted to the trail and nobody waits for their confirm, so an event may
        // wait longer for company: at thousands of cached answers a second, 100 ms gathers
        // hundreds of events per persistent message (the measured trade-off: docs/benchmarks.md).
        self.trail = try AuditTrail.Options.from(env, defaults: .init(maxBatch: 1000, maxDelay: .milliseconds(100)))
        self.redactAudit = try env.bool("AIRA_GPT_REDACT_AUDIT", default: true)
        self.redactUpstream = try env.bool("AIRA_GPT_REDACT_UPSTREAM", default: false)
        let budgets = env.optionalString("AIRA_GPT_BUDGETS") ?? ""
        guard let policy = BudgetPolicy(parsing: budgets) else {
            throw ConfigurationError(key: "AIRA_GPT_BUDGETS", value: budgets, expected:
                "budgets as scope.period.unit=amount, comma-separated (scope user, user:ROLE, role:ROLE or global; period day or month; "
                + "unit tokens or usd), each limit once, e.g. user.day.tokens=200000,global.month.usd=500")
        }
        self.budgets = policy
        let prices = env.optionalString("AIRA_GPT_PRICES") ?? ""
        guard let table = PriceTable(parsing: prices) else {
            throw ConfigurationError(key: "AIRA_GPT_PRICES", value: prices, expected:
                "prices as model=input/output in dollars per million tokens, comma-separated ('*' for every other model), "
                + "e.g. gpt-4o-mini=0.15/0.60,*=2.50/10")
        }
        self.prices = table
        self.budgetNamespace = try env.value("AIRA_GPT_BUDGET_NAMESPACE", default: "aira", shown: "aira",
                                             expected: "1–64 letters, digits, '-' or '_'") { text in
            (1...64).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") } ? text : nil
        }
        self.defaultMaxTokens = try env.int("AIRA_GPT_DEFAULT_MAX_TOKENS", default: 1024, range: 1...1_000_000)
        self.usageRetention = try env.duration("AIRA_GPT_USAGE_RETENTION", default: .seconds(400 * 86_400))
        if self.budgets.countsMoney, self.prices.isEmpty {
            throw ConfigurationError(key: "AIRA_GPT_PRICES", value: "", expected: "a price per model: AIRA_GPT_BUDGETS counts money")
        }
    }
}
