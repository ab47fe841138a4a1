import AiraContracts
import AiraMail
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Logging
import Prometheus
import ServiceLifecycle

/// aira-email-worker as a service group: the database client and the consumer of `email.send`.
func buildEmailWorker(_ configuration: EmailWorkerConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                      signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    let smtp = try SMTPClient(settings: configuration.smtp)
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let handler = EmailHandler(smtp: smtp, database: database, templates: MailTemplates(productName: configuration.productName),
                               sender: configuration.sender, senderName: configuration.senderName,
                               domain: String(configuration.sender.split(separator: "@").last ?? "aira.localhost"))
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        let consumer = QueueConsumer(spec: configuration.queue, handler: handler, connection: connection, publisher: publisher,
                                     options: settings.consumer, logger: logger)
        return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                 clients: [database], services: [consumer],
                                 readiness: [ReadinessCheck("broker") { connection.isConnected },
                                             ReadinessCheck("postgres") { await database.ping() }],
                                 signals: signals)
    }
}
