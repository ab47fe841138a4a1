// Real work for Aira's workers, published as the services publish it, and the effects it leaves,
// counted where they land. Shared by scripts/bench-scale (aira-bench-backlog) and scripts/chaos
// (aira-chaos): a benchmark times the effects, the fault suite checks none is lost or doubled.
import AiraAMQP
import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation

/// One kind of work, tagged so that its effects can be told from everything else's.
public struct Workload: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Audit events (one message each) → rows in `audit_log` of type `tag`.
        case audit
        /// Welcome mails to `<tag>-<n>@example.com` → mails at the SMTP server (`mailDirectory`).
        case email
        /// Thumbnail jobs for videos of the user `tag@bench.invalid` (uploads: hard links of `clip`)
        /// → videos marked ready.
        case thumbnail
    }

    /// What the work left behind.
    public struct Effects: Sendable, CustomStringConvertible {
        /// Distinct pieces of work with their effect.
        public var distinct: Int
        /// Effects in all (above `distinct`: work done twice where that is visible, e.g. a mail sent twice).
        public var total: Int
        /// The first and last effect's time (seconds since 1970), where the effect records one.
        public var first: Double?
        public var last: Double?
        public var duplicated: Int { self.total - self.distinct }
        public var description: String { "\(self.distinct) distinct, \(self.total) in all" }
    }

    public let kind: Kind
    public let tag: String
    public let database: PostgresClient
    public let mediaRoot: URL
    public let mailDirectory: URL?
    public let clip: String?

    public init(kind: Kind, tag: String, database: PostgresClient, mediaRoot: URL, mailDirectory: URL? = nil, clip: String? = nil) {
        self.kind = kind
        self.tag = tag
        self.database = database
        self.mediaRoot = mediaRoot
        self.mailDirectory = mailDirectory
        self.clip = clip
    }

    /// The owner of a thumbnail workload's videos: a fixed id per tag.
    public var owner: UUID {
        let hash = self.tag.utf8.reduce(UInt64(1_469_598_103_934_665_603)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        let hex = String(hash, radix: 16)
        return UUID(uuidString: "00000000-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex.suffix(12))!
    }

    public func messageID(_ i: Int) -> String { "\(self.tag)-\(i)" }

    /// Makes what `count` pieces of work need before they are published (a thumbnail job's
    /// video row and upload).
    public func prepare(count: Int) async throws -> [UUID] {
        guard self.kind == .thumbnail else { return [] }
        guard let clip = self.clip, FileManager.default.fileExists(atPath: clip) else {
            throw WorkloadError("a thumbnail workload needs a clip (no file at '\(self.clip ?? "")')")
        }
        try await self.database.query("""
            INSERT INTO users (id, email, password_hash) VALUES (\(self.owner), \(self.tag + "@bench.invalid"), 'x') ON CONFLICT (id) DO NOTHING
            """)
        let uploads = self.mediaRoot.appendingPathComponent("uploads")
        try FileManager.default.createDirectory(at: uploads, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: self.mediaRoot.appendingPathComponent("thumbnails"), withIntermediateDirectories: true)
        let size = (try FileManager.default.attributesOfItem(atPath: clip)[.size] as? Int) ?? 0
        var videos: [UUID] = []
        for i in 0..<count {
            let id = UUID()
            try FileManager.default.linkItem(atPath: clip, toPath: self.mediaRoot.appendingPathComponent(ThumbnailJob.uploadPath(for: id)).path)
            try await self.database.query("""
                INSERT INTO videos (id, owner_id, title, media_type, size_bytes) VALUES (\(id), \(self.owner), \("bench \(i)"), 'video/mp4', \(size))
                """)
            videos.append(id)
        }
        return videos
    }

    /// Publishes work `i` (confirmed by the broker when this returns). `videos`: from ``prepare(count:)``.
    public func publish(_ i: Int, on publisher: MessagePublisher, videos: [UUID] = []) async throws {
        switch self.kind {
        case .audit:
            let e = AuditEvent(id: self.messageID(i), type: self.tag, userId: nil, ip: "10.2.\(i % 250).\(i % 200)", attributes: ["n": String(i)])
            _ = try await publisher.publish(e, routingKey: e.routingKey, messageID: self.messageID(i))
        case .email:
            let to = "\(self.tag)-\(i)@example.com"
            _ = try await publisher.publish(EmailMessage(to: to, template: "welcome", parameters: ["email": to]),
                                            routingKey: EmailMessage.routingKey, messageID: self.messageID(i))
        case .thumbnail:
            let id = videos[i]
            _ = try await publisher.publish(ThumbnailJob(videoId: id, ownerId: self.owner, sourcePath: ThumbnailJob.uploadPath(for: id),
                                                         mediaType: "video/mp4"),
                                            routingKey: ThumbnailJob.routingKey, messageID: self.messageID(i))
        }
    }

    /// Publishes work `range` as fast as the broker confirms (`lanes` publishes in flight).
    public func publishAll(_ range: Range<Int>, on publisher: MessagePublisher, videos: [UUID] = [], lanes: Int = 256) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var i = range.lowerBound + lane
                    while i < range.upperBound {
                        try await self.publish(i, on: publisher, videos: videos)
                        i += lanes
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    public func effects() async throws -> Effects {
        switch self.kind {
        case .audit:
            let row = try await self.database.query("""
                SELECT count(*) AS n, extract(epoch FROM min(stored_at))::float8 AS first, extract(epoch FROM max(stored_at))::float8 AS last
                FROM audit_log WHERE type = \(self.tag)
                """).first
            let n: Int = try row?.decode("n") ?? 0
            return Effects(distinct: n, total: n, first: try row?.decodeOptional("first"), last: try row?.decodeOptional("last"))
        case .thumbnail:
            let row = try await self.database.query("""
                SELECT count(*) AS n, extract(epoch FROM min(updated_at))::float8 AS first, extract(epoch FROM max(updated_at))::float8 AS last
                FROM videos WHERE owner_id = \(self.owner) AND status = 'ready'
                """).first
            let n: Int = try row?.decode("n") ?? 0
            return Effects(distinct: n, total: n, first: try row?.decodeOptional("first"), last: try row?.decodeOptional("last"))
        case .email:
            // Each mail the server stored, by recipient: a mail sent twice shows as two files.
            guard let directory = self.mailDirectory else { throw WorkloadError("an email workload needs the SMTP server's mail folder") }
            var recipients = Set<String>()
            var total = 0
            let prefix = self.tag + "-"
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where file.hasSuffix(".json") {
                guard let data = try? Data(contentsOf: directory.appendingPathComponent(file)),
                      let mail = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let to = mail["rcptTo"] as? [String] else { continue }
                for r in to where r.hasPrefix(prefix) {
                    total += 1
                    recipients.insert(r)
                }
            }
            return Effects(distinct: recipients.count, total: total, first: nil, last: nil)
        }
    }

    /// Removes a thumbnail workload's user, videos and files.
    public func clean() async throws {
        guard self.kind == .thumbnail else { return }
        let ids = try await self.database.query("SELECT id FROM videos WHERE owner_id = \(self.owner)").rows.map { try $0.decode("id") as UUID }
        for id in ids {
            try? FileManager.default.removeItem(at: self.mediaRoot.appendingPathComponent(ThumbnailJob.uploadPath(for: id)))
            try? FileManager.default.removeItem(at: self.mediaRoot.appendingPathComponent(ThumbnailJob.thumbnailPath(for: id)))
        }
        try await self.database.query("DELETE FROM users WHERE id = \(self.owner)")
    }
}

public struct WorkloadError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
