// aira-thumbnail-worker: consumes `thumbnail.generate`, makes a JPEG thumbnail of the uploaded
// video or image with ffmpeg, and marks the video `ready` or `failed`. See docs/workers.md.
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import AiraServiceKit
import Foundation
import Logging
import Metrics

/// One job: the upload must exist (a missing file is retried: the upload may still be landing
/// under a race), ffmpeg must be able to read it (if not: the video is marked `failed` with
/// ffmpeg's reason and the message dead-letters), and the thumbnail is written to a temporary
/// file and renamed into its fixed path, so a retry replaces it instead of adding another.
struct ThumbnailHandler: MessageHandler {
    let database: PostgresClient
    let mediaRoot: URL
    let ffmpeg: FFmpeg
    private static let made = Counter(label: "aira_thumbnails_made_total")
    private static let failed = Counter(label: "aira_thumbnails_failed_total")
    private static let seconds = Timer(label: "aira_thumbnail_seconds")

    func handle(_ job: ThumbnailJob, context: MessageContext) async throws {
        guard job.sourcePath == ThumbnailJob.uploadPath(for: job.videoId) else {
            throw PermanentError(code: "invalid_path", "source path '\(job.sourcePath.prefix(200))' is not the upload of video \(job.videoId)")
        }
        guard let row = try await self.database.query("SELECT status FROM videos WHERE id = \(job.videoId)").first else {
            context.logger.info("video no longer exists, nothing to do", metadata: ["video": "\(job.videoId)"])
            return
        }
        let status: String = try row.decode("status")
        let target = ThumbnailJob.thumbnailPath(for: job.videoId)
        let targetURL = self.mediaRoot.appendingPathComponent(target)
        if status == "ready" && FileManager.default.fileExists(atPath: targetURL.path) {
            context.logger.info("thumbnail already made", metadata: ["video": "\(job.videoId)"])
            return
        }
        let source = self.mediaRoot.appendingPathComponent(job.sourcePath).path
        guard FileManager.default.fileExists(atPath: source) else {
            throw TransientError(code: "source_missing", "upload \(job.sourcePath) is not on disk (yet)")
        }

        let start = ContinuousClock.now
        try FileManager.default.createDirectory(at: targetURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = targetURL.deletingLastPathComponent()
            .appendingPathComponent(".\(job.videoId.lowercasedString).\(getpid()).\(MessageID.random().prefix(8)).jpg").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }

        switch try await self.ffmpeg.thumbnail(input: source, output: temporary) {
        case .failed(let ffmpegReason):
            Self.failed.increment()
            let reason = ffmpegReason.replacingOccurrences(of: source, with: job.sourcePath)
            try await self.database.query("""
                UPDATE videos SET status = 'failed', failure_reason = \(reason), updated_at = now() WHERE id = \(job.videoId)
                """)
            try await context.publish(AuditEvent(type: "video_failed", userId: job.ownerId,
                                                 attributes: ["videoId": job.videoId.lowercasedString, "reason": reason]),
                                      routingKey: "audit.video_failed")
            throw PermanentError(code: "unreadable_media", "ffmpeg cannot make a thumbnail: \(reason)")
        case .finished:
            guard let head = FileManager.default.contents(atPath: temporary)?.prefix(3), Array(head) == [0xFF, 0xD8, 0xFF] else {
                throw TransientError(code: "thumbnail_invalid", "ffmpeg finished but wrote no JPEG")
            }
            guard rename(temporary, targetURL.path) == 0 else {
                throw TransientError(code: "thumbnail_io", "cannot move the thumbnail into place: errno \(errno)")
            }
        }
        try await self.database.query("""
            UPDATE videos SET status = 'ready', thumbnail_path = \(target), failure_reason = NULL, updated_at = now()
            WHERE id = \(job.videoId)
            """)
        Self.made.increment()
        Self.seconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        try await context.publish(AuditEvent(type: "video_ready", userId: job.ownerId,
                                             attributes: ["videoId": job.videoId.lowercasedString]),
                                  routingKey: "audit.video_ready")
        context.logger.info("thumbnail made", metadata: ["video": "\(job.videoId)",
                                                         "ms": "\((ContinuousClock.now - start).milliseconds)"])
    }
}

do {
    // ffmpeg is CPU-bound: by default one per core.
    let settings = try ServiceSettings(name: "aira-thumbnail-worker", defaultPort: 8084,
                                       consumerDefaults: ConsumerOptions(concurrency: 2, prefetch: 4, shutdownTimeout: .seconds(60)))
    let env = settings.environment
    let (logger, registry) = ServiceHost.bootstrap(settings)
    let mediaRoot = URL(fileURLWithPath: env.string("AIRA_MEDIA_DIR", default: ".data/media"), isDirectory: true)
    let ffmpeg = FFmpeg(executable: env.string("AIRA_FFMPEG", default: "/usr/bin/ffmpeg"),
                        timeout: try env.duration("AIRA_FFMPEG_TIMEOUT", default: .seconds(60)),
                        width: try env.int("AIRA_THUMBNAIL_WIDTH", default: 320, range: 16...4096))
    guard FileManager.default.isExecutableFile(atPath: ffmpeg.executable) else {
        throw ConfigurationError(key: "AIRA_FFMPEG", value: ffmpeg.executable, expected: "the path of an ffmpeg executable (apt-get install ffmpeg)")
    }
    let database = PostgresClient(configuration: settings.postgresConfiguration())
    let spec = try settings.queueSpec(ThumbnailJob.queue)
    let connection = try await ServiceHost.connectBroker(settings, logger: logger)
    let publisher = try await MessagePublisher.open(on: connection)
    try await AuditEvent.queue.declare(on: publisher.channel)
    let consumer = QueueConsumer(spec: spec, handler: ThumbnailHandler(database: database, mediaRoot: mediaRoot, ffmpeg: ffmpeg),
                                 connection: connection, publisher: publisher, options: settings.consumer, logger: logger)
    try await ServiceHost.run(settings: settings, logger: logger, registry: registry, connection: connection,
                              services: [consumer],
                              readiness: [ReadinessCheck("broker") { connection.isConnected },
                                          ReadinessCheck("postgres") { await database.ping() },
                                          ReadinessCheck("media") { FileManager.default.isWritableFile(atPath: mediaRoot.path) }])
    await database.shutdown()
} catch {
    exitOnStartupFailure("aira-thumbnail-worker", error)
}
