import AiraContracts
import AiraCore
import AiraMessaging
import AiraServiceKit
import Foundation

/// aira-thumbnail-worker's configuration (docs/configuration.md, "aira-thumbnail-worker").
struct ThumbnailWorkerConfiguration: ServiceConfiguration {
    static let serviceName = "aira-thumbnail-worker"
    var settings: ServiceSettings
    /// `AIRA_MEDIA_DIR`: uploads and thumbnails (shared with the gateway).
    var mediaRoot: URL
    /// `AIRA_FFMPEG`, `AIRA_FFMPEG_TIMEOUT`, `AIRA_THUMBNAIL_WIDTH`.
    var ffmpegPath: String
    var ffmpegTimeout: Duration
    var width: Int
    /// `thumbnail.generate` with `AIRA_RETRY_TIERS` / `AIRA_MAX_ATTEMPTS` applied.
    var queue: QueueSpec

    init(environment env: EnvironmentReader) throws {
        self.settings = try ServiceSettings(
            name: Self.serviceName, defaultPort: 8084,
            consumerDefaults: ConsumerOptions(concurrency: 2, prefetch: 4, shutdownTimeout: .seconds(60)), environment: env)
        self.mediaRoot = URL(fileURLWithPath: env.string("AIRA_MEDIA_DIR", default: ".data/media"), isDirectory: true)
        self.ffmpegPath = env.string("AIRA_FFMPEG", default: "/usr/bin/ffmpeg")
        self.ffmpegTimeout = try env.duration("AIRA_FFMPEG_TIMEOUT", default: .seconds(60))
        self.width = try env.int("AIRA_THUMBNAIL_WIDTH", default: 320, range: 16...4096)
        self.queue = try self.settings.queueSpec(ThumbnailJob.queue)
    }
}
