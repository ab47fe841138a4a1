import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// aira-thumbnail-worker as a service group: the database client, the file thread and the
/// consumer of `thumbnail.generate`.
func buildThumbnailWorker(_ configuration: ThumbnailWorkerConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                          signals: Bool = true) async throws -> ServiceGroup {
    let settings = configuration.settings
    guard FileManager.default.isExecutableFile(atPath: configuration.ffmpegPath) else {
        throw ConfigurationError(key: "AIRA_FFMPEG", value: configuration.ffmpegPath,
                                 expected: "the path of an ffmpeg executable (apt-get install ffmpeg)")
    }
    let mediaRoot = configuration.mediaRoot
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    return try await ServiceHost.withBroker(settings, logger: logger) { connection in
        let publisher = try await MessagePublisher.open(on: connection)
        try await AuditEvent.queue.declare(on: publisher.channel)
        let files = FileThread()
        let ffmpeg = FFmpeg(executable: configuration.ffmpegPath, timeout: configuration.ffmpegTimeout, width: configuration.width,
                            files: files)
        let consumer = QueueConsumer(spec: configuration.queue,
                                     handler: ThumbnailHandler(database: database, mediaRoot: mediaRoot, ffmpeg: ffmpeg),
                                     connection: connection, publisher: publisher, options: settings.consumer, logger: logger)
        return ServiceHost.group(settings: settings, logger: logger, registry: registry, connection: connection,
                                 clients: [database, ClosingService { files.shutdown() }], services: [consumer],
                                 readiness: [ReadinessCheck("broker") { connection.isConnected },
                                             ReadinessCheck("postgres") { await database.ping() },
                                             ReadinessCheck("media") {
                                                 (try? await files.run { FileManager.default.isWritableFile(atPath: mediaRoot.path) }) ?? false
                                             }],
                                 signals: signals)
    }
}
