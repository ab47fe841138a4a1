import AiraCore
import AiraMessaging
import Foundation

/// A record of something a user (or an admin) did, for the audit log: published as
/// `audit.<type>` (e.g. `audit.login`), stored by aira-audit-writer.
public struct AuditEvent: MessageContract {
    public static let messageType = "audit.event.v1"
    /// `login`, `login_failed`, `password_changed`, `logout_all`, `suspended`, ...
    public var type: String
    /// The user the event is about (nil when unknown, e.g. a failed login for no account).
    public var userId: UUID?
    /// Who did it, when not the user (an admin).
    public var actorId: UUID?
    public var at: Date
    public var ip: String?
    /// Small, flat details (e.g. `reason`, `email`).
    public var attributes: [String: String]

    public init(type: String, userId: UUID?, actorId: UUID? = nil, at: Date = Date(), ip: String? = nil,
                attributes: [String: String] = [:]) {
        self.type = type
        self.userId = userId
        self.actorId = actorId
        self.at = at
        self.ip = ip
        self.attributes = attributes
    }

    public var routingKey: String { "audit.\(self.type)" }

    /// The audit writer decodes every event: a flat-JSON reader instead of JSONDecoder (a fifth
    /// of the writer's CPU), falling back to it for any body outside the usual shape.
    public static func decode(from body: [UInt8]) throws -> AuditEvent {
        if let fast = try? Self.fastDecode(body) { return fast }
        return try MessageCoding.decode(AuditEvent.self, from: body)
    }

    static func fastDecode(_ body: [UInt8]) throws -> AuditEvent {
        var type: String?, userId: UUID?, actorId: UUID?, at: Date?, ip: String?
        var attributes: [String: String] = [:]
        func uuid(_ value: FlatJSON.Value) throws -> UUID? {
            switch value {
            case .null: return nil
            case .string(let s): guard let id = UUID(uuidString: s) else { throw FlatJSON.Unsupported() }; return id
            case .object: throw FlatJSON.Unsupported()
            }
        }
        for (key, value) in try FlatJSON.parse(body) {
            switch (key, value) {
            case ("type", .string(let s)): type = s
            case ("userId", _): userId = try uuid(value)
            case ("actorId", _): actorId = try uuid(value)
            case ("at", .string(let s)): guard let d = parseISO8601(s) else { throw FlatJSON.Unsupported() }; at = d
            case ("ip", .string(let s)): ip = s
            case ("ip", .null): ip = nil
            case ("attributes", .object(let o)): attributes = o
            default: throw FlatJSON.Unsupported()
            }
        }
        guard let type, let at else { throw FlatJSON.Unsupported() }
        return AuditEvent(type: type, userId: userId, actorId: actorId, at: at, ip: ip, attributes: attributes)
    }

    /// The audit writer's queue. Producers declare it too, so events wait for the writer
    /// instead of being refused as unroutable when it has not started yet.
    public static let queue = QueueSpec(name: "audit.events", bindings: ["audit.#"])
}

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

extension UUID {
    /// The form Aira stores and shows (lower case).
    public var lowercasedString: String { self.uuidString.lowercased() }
}
