import AiraCore
import AiraMessaging
import Foundation

/// A mail to send (aira-email-worker renders `template` with `parameters`).
public struct EmailMessage: MessageContract {
    public static let messageType = "email.send.v1"
    public static let routingKey = "email.send"
    public var to: String
    /// `welcome`, `verification`, ...
    public var template: String
    public var parameters: [String: String]

    public init(to: String, template: String, parameters: [String: String]) {
        self.to = to
        self.template = template
        self.parameters = parameters
    }

    /// The email worker's queue; declared by producers as well (see ``AuditEvent/queue``).
    public static let queue = QueueSpec(name: "email.send", bindings: ["email.send"])
}

/// Make the thumbnail of an uploaded video or image (aira-thumbnail-worker), published by the
/// gateway after the upload is on disk and its row exists with status `processing`.
public struct ThumbnailJob: MessageContract {
    public static let messageType = "thumbnail.generate.v1"
    public static let routingKey = "thumbnail.generate"
    public var videoId: UUID
    public var ownerId: UUID
    /// The upload, relative to the media folder (`uploads/<id>`).
    public var sourcePath: String
    /// The sniffed media type (`video/mp4`, `image/png`, ...).
    public var mediaType: String

    public init(videoId: UUID, ownerId: UUID, sourcePath: String, mediaType: String) {
        self.videoId = videoId
        self.ownerId = ownerId
        self.sourcePath = sourcePath
        self.mediaType = mediaType
    }

    /// Where the thumbnail of `videoId` goes, relative to the media folder: deterministic, so a
    /// retry overwrites instead of adding a second file.
    public static func thumbnailPath(for videoId: UUID) -> String { "thumbnails/\(videoId.lowercasedString).jpg" }
    public static func uploadPath(for videoId: UUID) -> String { "uploads/\(videoId.lowercasedString)" }

    /// The worker's queue; ffmpeg can be slow, so fewer, longer retry tiers.
    public static let queue = QueueSpec(name: "thumbnail.generate", bindings: ["thumbnail.generate"],
                                        retry: RetryPolicy(tiers: [.seconds(5), .seconds(30), .seconds(300)], maxAttempts: 4))
}
