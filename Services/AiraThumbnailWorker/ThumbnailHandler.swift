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
    var files: FileThread { self.ffmpeg.files }
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
        let targetPath = self.mediaRoot.appendingPathComponent(target).path
        let source = self.mediaRoot.appendingPathComponent(job.sourcePath).path
        let directory = self.mediaRoot.appendingPathComponent(target).deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(job.videoId.lowercasedString).\(getpid()).\(MessageID.random().prefix(8)).jpg").path
        let (done, sourceThere) = try await self.files.run {
            (FileManager.default.fileExists(atPath: targetPath), FileManager.default.fileExists(atPath: source))
        }
        if status == "ready" && done {
            context.logger.info("thumbnail already made", metadata: ["video": "\(job.videoId)"])
            return
        }
        guard sourceThere else {
            throw TransientError(code: "source_missing", "upload \(job.sourcePath) is not on disk (yet)")
        }

        let start = ContinuousClock.now
        try await self.files.run { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let outcome: FFmpeg.Outcome
        do {
            outcome = try await self.ffmpeg.thumbnail(input: source, output: temporary)
        } catch {
            _ = try? await self.files.run { try? FileManager.default.removeItem(atPath: temporary) }
            throw error
        }

        switch outcome {
        case .failed(let ffmpegReason):
            _ = try? await self.files.run { try? FileManager.default.removeItem(atPath: temporary) }
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
            // A JPEG (its first three bytes), moved into place in one rename.
            try await self.files.run {
                let head = FileHandle(forReadingAtPath: temporary).map { handle in
                    defer { try? handle.close() }
                    return (try? handle.read(upToCount: 3)).map(Array.init) ?? []
                }
                guard head == [0xFF, 0xD8, 0xFF] else {
                    try? FileManager.default.removeItem(atPath: temporary)
                    throw TransientError(code: "thumbnail_invalid", "ffmpeg finished but wrote no JPEG")
                }
                guard rename(temporary, targetPath) == 0 else {
                    let code = errno
                    try? FileManager.default.removeItem(atPath: temporary)
                    throw TransientError(code: "thumbnail_io", "cannot move the thumbnail into place: errno \(code)")
                }
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
