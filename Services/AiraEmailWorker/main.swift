// aira-email-worker: consumes `email.send`, renders the template and delivers it over SMTP, never
// twice for one message. See docs/workers.md.
import AiraServiceKit

await ServiceHost.main(EmailWorkerConfiguration.self) { try await buildEmailWorker($0, logger: $1, registry: $2) }
