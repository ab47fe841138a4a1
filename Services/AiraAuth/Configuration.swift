import AiraCore
import AiraMessaging
import AiraServiceKit
import AiraTokens
import Foundation

/// aira-auth's configuration (docs/configuration.md, "aira-auth").
struct AuthConfiguration: ServiceConfiguration {
    static let serviceName = "aira-auth"
    var settings: ServiceSettings
    /// `AIRA_JWT_SIGNING_KEY` (required): `kid:base64` Ed25519 seed.
    var signingKey: TokenKey
    /// `AIRA_BCRYPT_COST`, `AIRA_BCRYPT_THREADS`, `AIRA_BCRYPT_NICE`.
    var bcryptCost: Int
    var bcryptThreads: Int
    var bcryptNice: Int
    /// `AIRA_LOGIN_*`: the login throttle.
    var loginThrottle: LoginThrottle.Policy
    /// `AIRA_ACCESS_TOKEN_TTL`, `AIRA_REFRESH_TOKEN_TTL`, `AIRA_VERIFY_TOKEN_TTL`, `AIRA_SESSION_PURGE_INTERVAL`.
    var accessTokenTTL: Duration
    var refreshTokenTTL: Duration
    var verificationTTL: Duration
    var sessionPurgeInterval: Duration
    /// `AIRA_VERIFY_URL`: the link in the verification mail (the token is appended).
    var verifyURL: String
    /// The bcrypt queue's consumer (`AIRA_CREDENTIALS_CONCURRENCY`, `AIRA_CREDENTIALS_PREFETCH`).
    var credentialsConsumer: ConsumerOptions
    /// The audit trail's batching (`AIRA_AUDIT_PUBLISH_*`).
    var trail: AuditTrail.Options

    init(environment env: EnvironmentReader) throws {
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8081, environment: env)
        guard let keyText = env.optionalString("AIRA_JWT_SIGNING_KEY") else {
            throw ConfigurationError(key: "AIRA_JWT_SIGNING_KEY", value: "", expected: "kid:base64 Ed25519 seed (aira-admin keys generate)")
        }
        self.signingKey = try TokenKey(signing: keyText)
        self.bcryptCost = try env.int("AIRA_BCRYPT_COST", default: 10, range: 4...31)
        self.bcryptThreads = try env.int("AIRA_BCRYPT_THREADS", default: ProcessInfo.processInfo.activeProcessorCount, range: 1...256)
        self.bcryptNice = try env.int("AIRA_BCRYPT_NICE", default: 10, range: 0...19)
        self.loginThrottle = LoginThrottle.Policy(
            accountFreeFailures: try env.int("AIRA_LOGIN_FREE_FAILURES", default: 5, range: 1...1000),
            addressFreeFailures: try env.int("AIRA_LOGIN_ADDRESS_FREE_FAILURES", default: 50, range: 1...100_000),
            baseDelay: try env.duration("AIRA_LOGIN_BASE_DELAY", default: .seconds(1)),
            maxLock: try env.duration("AIRA_LOGIN_MAX_LOCK", default: .seconds(300)),
            window: try env.duration("AIRA_LOGIN_WINDOW", default: .seconds(900)))
        self.refreshTokenTTL = try env.duration("AIRA_REFRESH_TOKEN_TTL", default: .seconds(30 * 86_400))
        self.accessTokenTTL = try env.duration("AIRA_ACCESS_TOKEN_TTL", default: .seconds(900))
        self.verifyURL = env.string("AIRA_VERIFY_URL", default: "http://127.0.0.1:8080/#/verify?token=")
        self.verificationTTL = try env.duration("AIRA_VERIFY_TOKEN_TTL", default: .seconds(48 * 3600))
        self.sessionPurgeInterval = try env.duration("AIRA_SESSION_PURGE_INTERVAL", default: .seconds(3600))
        self.credentialsConsumer = ConsumerOptions(
            concurrency: try env.int("AIRA_CREDENTIALS_CONCURRENCY", default: self.bcryptThreads * 4, range: 1...10_000),
            prefetch: UInt16(try env.int("AIRA_CREDENTIALS_PREFETCH", default: self.bcryptThreads * 8, range: 1...65_535)),
            shutdownTimeout: self.settings.consumer.shutdownTimeout)
        self.trail = try AuditTrail.Options.from(env)
    }
}
