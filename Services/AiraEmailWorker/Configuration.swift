import AiraContracts
import AiraCore
import AiraMail
import AiraMessaging
import AiraServiceKit

/// aira-email-worker's configuration (docs/configuration.md, "aira-email-worker").
struct EmailWorkerConfiguration: ServiceConfiguration {
    static let serviceName = "aira-email-worker"
    var settings: ServiceSettings
    /// `AIRA_SMTP_*`: the relay, its TLS and login.
    var smtp: SMTPSettings
    /// `AIRA_MAIL_FROM`, `AIRA_MAIL_FROM_NAME`, `AIRA_PRODUCT_NAME`.
    var sender: String
    var senderName: String
    var productName: String
    /// `email.send` with `AIRA_RETRY_TIERS` / `AIRA_MAX_ATTEMPTS` applied.
    var queue: QueueSpec

    init(environment env: EnvironmentReader) throws {
        self.settings = try ServiceSettings(name: Self.serviceName, defaultPort: 8085,
                                            consumerDefaults: ConsumerOptions(concurrency: 4, prefetch: 8), environment: env)
        let tls = try env.value("AIRA_SMTP_TLS", default: SMTPSettings.TLSMode.starttls, shown: "starttls",
                                expected: "off, starttls or required", SMTPSettings.TLSMode.init(rawValue:))
        self.smtp = SMTPSettings(
            host: env.string("AIRA_SMTP_HOST", default: "127.0.0.1"),
            port: try env.int("AIRA_SMTP_PORT", default: 1025, range: 1...65_535),
            tls: tls, verifyCertificate: try env.bool("AIRA_SMTP_TLS_VERIFY", default: true),
            username: env.optionalString("AIRA_SMTP_USERNAME"), password: env.optionalString("AIRA_SMTP_PASSWORD"),
            heloName: env.string("AIRA_SMTP_HELO", default: "aira.localhost"),
            timeout: try env.duration("AIRA_SMTP_TIMEOUT", default: .seconds(30)))
        self.sender = env.string("AIRA_MAIL_FROM", default: "no-reply@aira.localhost")
        self.senderName = env.string("AIRA_MAIL_FROM_NAME", default: "Aira")
        self.productName = env.string("AIRA_PRODUCT_NAME", default: "Aira")
        self.queue = try self.settings.queueSpec(EmailMessage.queue)
    }
}
