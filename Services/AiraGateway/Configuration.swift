import AiraCore
import AiraMessaging
import AiraServiceKit
import AiraTokens
import Foundation

/// aira-gateway's configuration (docs/configuration.md, "aira-gateway").
struct GatewayConfiguration: ServiceConfiguration {
    static let serviceName = "aira-gateway"
    var settings: ServiceSettings
    /// `AIRA_JWT_PUBLIC_KEYS` (required): the access-token keys accepted.
    var tokenKeys: [TokenKey]
    /// `AIRA_MAX_BODY_BYTES`, `AIRA_MAX_UPLOAD_BYTES`.
    var bodyLimit: Int
    var maxUploadBytes: Int
    /// `AIRA_RATE_LIMIT_<CLASS>[_IP]`.
    var rateLimits: RateLimits
    /// Load shedding: `AIRA_MAX_IN_FLIGHT`, `AIRA_MAX_ACTIVE_REQUESTS`.
    var maxInFlight: Int
    var maxActiveRequests: Int
    /// Auth RPC deadlines and the learned limit's target (`nil`: off).
    var credentialsTimeout: Duration
    var credentialsTargetLatency: Duration?
    var sessionsTimeout: Duration
    /// `AIRA_REFRESH_TOKEN_TTL`, `AIRA_COOKIE_SECURE`: the browser-session cookie.
    var refreshTokenTTL: Duration
    var cookieSecure: Bool
    /// `AIRA_GPT_TIMEOUT`, `AIRA_GPT_RPC_BATCH`, `AIRA_GPT_RPC_BATCH_PARALLEL` (nil: `auto`).
    var gptTimeout: Duration
    var gptBatch: Int
    var gptBatchParallel: Int?
    /// `AIRA_GPT_CONVERSATION_TTL`.
    var conversationTTL: Duration
    /// `AIRA_TRUST_FORWARDED_FOR`, `AIRA_MEDIA_DIR`, `AIRA_WEB_DIR`.
    var trustForwardedFor: Bool
    var mediaDirectory: String
    var webDirectory: String
    /// `AIRA_RABBITMQ_MANAGEMENT_URL` (the console's queue view), and dead-letter replay rates.
    var managementURL: String?
    var replayRate: Int
    var maxReplayRate: Int
    /// `AIRA_ANALYZER_TIMEZONE`: the zone a console-requested run records its day in.
    var analysisTimezone: String
    /// Reads: `AIRA_DATABASE_READ_URL` and the replica's limits, the posts cache, the search index.
    var readURL: String?
    var replicaMaxLag: Duration
    var replicaCheckInterval: Duration
    var readYourWritesWindow: Duration
    var postsCacheTTL: Duration
    var searchIndex: SearchIndex
    /// The audit trail's batching (`AIRA_AUDIT_PUBLISH_*`).
    var trail: AuditTrail.Options

    struct RateLimits: Sendable {
        var auth, read, write, admin, gpt: RateLimitClass
    }

    enum SearchIndex: String, Sendable {
        /// The RUM index for newest matches when it exists (migration 0007), else GIN.
        case auto
        case gin
    }

    init(environment env: EnvironmentReader) throws {
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8080, environment: env)
        guard let keysText = env.optionalString("AIRA_JWT_PUBLIC_KEYS") else {
            throw ConfigurationError(key: "AIRA_JWT_PUBLIC_KEYS", value: "",
                                     expected: "comma-separated kid:base64 Ed25519 public keys (aira-admin keys generate)")
        }
        self.tokenKeys = try keysText.split(separator: ",").map { try TokenKey(verifying: $0.trimmingCharacters(in: .whitespaces)) }
        self.bodyLimit = try env.int("AIRA_MAX_BODY_BYTES", default: 64 * 1024, range: 1024...(64 << 20))
        let minute = Duration.seconds(60)
        self.rateLimits = RateLimits(
            auth: try RateLimitClass.from(env, name: "auth", user: RateLimit(limit: 10, window: minute),
                                          address: RateLimit(limit: 30, window: minute)),
            read: try RateLimitClass.from(env, name: "read", user: RateLimit(limit: 600, window: minute),
                                          address: RateLimit(limit: 1200, window: minute)),
            write: try RateLimitClass.from(env, name: "write", user: RateLimit(limit: 120, window: minute),
                                           address: RateLimit(limit: 600, window: minute)),
            admin: try RateLimitClass.from(env, name: "admin", user: RateLimit(limit: 60, window: minute),
                                           address: RateLimit(limit: 120, window: minute)),
            gpt: try RateLimitClass.from(env, name: "gpt", user: RateLimit(limit: 60, window: minute),
                                         address: RateLimit(limit: 300, window: minute)))
        self.maxInFlight = try env.int("AIRA_MAX_IN_FLIGHT", default: 512, range: 1...100_000)
        self.maxActiveRequests = try env.int("AIRA_MAX_ACTIVE_REQUESTS", default: 4096, range: 1...1_000_000)
        self.credentialsTimeout = try env.duration("AIRA_AUTH_CREDENTIALS_TIMEOUT", default: .seconds(10))
        // bcrypt calls are admitted by a learned limit (AdaptiveLimit); 0s turns it off.
        let target = try env.duration("AIRA_AUTH_CREDENTIALS_TARGET_LATENCY", default: self.credentialsTimeout / 4)
        self.credentialsTargetLatency = target > .zero ? target : nil
        self.sessionsTimeout = try env.duration("AIRA_AUTH_SESSIONS_TIMEOUT", default: .seconds(5))
        self.refreshTokenTTL = try env.duration("AIRA_REFRESH_TOKEN_TTL", default: .seconds(30 * 86_400))
        self.cookieSecure = try env.bool("AIRA_COOKIE_SECURE", default: false)
        self.conversationTTL = try env.duration("AIRA_GPT_CONVERSATION_TTL", default: .seconds(30 * 86_400))
        self.gptTimeout = try env.duration("AIRA_GPT_TIMEOUT", default: .seconds(60))
        self.gptBatch = try env.int("AIRA_GPT_RPC_BATCH", default: 64, range: 1...1_000)
        // `auto`: one batch out per proxy consuming gpt.ask (up to 16); a number fixes it.
        self.gptBatchParallel = try env.value("AIRA_GPT_RPC_BATCH_PARALLEL", default: nil, shown: "auto",
                                              expected: "auto or an integer in 1...256") { text -> Int?? in
            if text == "auto" { return .some(nil) }
            guard let n = Int(text), (1...256).contains(n) else { return nil }
            return .some(n)
        }
        self.trustForwardedFor = try env.bool("AIRA_TRUST_FORWARDED_FOR", default: false)
        self.mediaDirectory = env.string("AIRA_MEDIA_DIR", default: ".data/media")
        self.maxUploadBytes = try env.int("AIRA_MAX_UPLOAD_BYTES", default: 100 << 20, range: 1024...(16 << 30))
        self.webDirectory = env.string("AIRA_WEB_DIR", default: "Services/AiraGateway/Web")
        self.managementURL = env.optionalString("AIRA_RABBITMQ_MANAGEMENT_URL")
        if let url = self.managementURL, (try? ManagementAPI(url: url)) == nil {
            throw ConfigurationError(key: "AIRA_RABBITMQ_MANAGEMENT_URL", value: url, expected: "http://user:pass@host:15672")
        }
        self.maxReplayRate = try env.int("AIRA_DLQ_REPLAY_MAX_RATE", default: 500, range: 1...100_000)
        self.replayRate = try env.int("AIRA_DLQ_REPLAY_RATE", default: 100, range: 1...100_000)
        self.analysisTimezone = env.string("AIRA_ANALYZER_TIMEZONE", default: TimeZone.current.identifier)
        self.readURL = env.optionalString("AIRA_DATABASE_READ_URL")
        self.replicaMaxLag = try env.duration("AIRA_READ_REPLICA_MAX_LAG", default: .seconds(2))
        self.replicaCheckInterval = try env.duration("AIRA_READ_REPLICA_CHECK_INTERVAL", default: .milliseconds(500))
        self.readYourWritesWindow = try env.duration("AIRA_READ_YOUR_WRITES_WINDOW", default: .seconds(10))
        guard self.readYourWritesWindow > self.replicaMaxLag else {
            throw ConfigurationError(key: "AIRA_READ_YOUR_WRITES_WINDOW", value: formatDuration(self.readYourWritesWindow),
                                     expected: "longer than AIRA_READ_REPLICA_MAX_LAG (\(formatDuration(self.replicaMaxLag)))")
        }
        self.postsCacheTTL = try env.duration("AIRA_POSTS_CACHE_TTL", default: .seconds(30))
        self.searchIndex = try env.value("AIRA_SEARCH_INDEX", default: .auto, shown: "auto", expected: "auto or gin",
                                         SearchIndex.init(rawValue:))
        self.trail = try AuditTrail.Options.from(env)
    }
}
