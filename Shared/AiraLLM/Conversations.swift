import AiraCore
import AiraRedis
import Foundation

/// Conversations in Redis: aira-gpt-proxy reads a conversation's history in front of a new
/// question and appends the question and its answer; aira-gateway lists, reads, renames and
/// deletes them for the user (`/api/gpt/conversations`). One type for both, so the keys are
/// written down once.
///
/// Keys, per user `u` and conversation `c` (every key expires `ttl` after the last use):
/// - `gpt:conv:{u}:{c}` — list of messages (JSON `{role, content}`), the last ``maxMessages``;
/// - `gpt:conv-meta:{u}:{c}` — hash `{title, created, updated}` (epoch milliseconds);
/// - `gpt:convs:{u}` — sorted set of the user's conversation ids by last use.
public struct ConversationStore: Sendable {
    public let redis: RedisClient
    public let ttl: Duration
    /// Messages kept per conversation (the oldest fall off; they are what the model sees).
    public static let maxMessages = 40
    /// Conversation ids: 1–64 letters, digits, `-` or `_`.
    public static func isValidID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }

    public init(redis: RedisClient, ttl: Duration = .seconds(30 * 86_400)) {
        self.redis = redis
        self.ttl = ttl
    }

    public struct Summary: Codable, Sendable, Equatable {
        public var id: String
        public var title: String
        public var createdAt: Date
        public var updatedAt: Date
        public var messageCount: Int
        public init(id: String, title: String, createdAt: Date, updatedAt: Date, messageCount: Int) {
            self.id = id
            self.title = title
            self.createdAt = createdAt
            self.updatedAt = updatedAt
            self.messageCount = messageCount
        }
    }

    public struct Conversation: Codable, Sendable {
        public var id: String
        public var title: String
        public var createdAt: Date
        public var updatedAt: Date
        public var messages: [ChatMessage]
    }

    // MARK: - The proxy's side

    /// The conversation so far (empty for a new one).
    public func history(user: UUID, conversation: String) async throws -> [ChatMessage] {
        let items = try await self.redis.send("LRANGE", Self.messagesKey(user, conversation), "0", "-1").array ?? []
        return items.compactMap { $0.string.flatMap(Self.decode) }
    }

    /// Appends a question and its answer; the first user message names a new conversation.
    public func append(_ messages: [ChatMessage], user: UUID, conversation: String, now: Date = Date()) async throws {
        guard !messages.isEmpty else { return }
        let list = Self.messagesKey(user, conversation), meta = Self.metaKey(user, conversation), index = Self.indexKey(user)
        let ms = String(Int64(now.timeIntervalSince1970 * 1000)), ttl = String(max(1, self.ttl.components.seconds))
        let title = Self.title(from: messages.first { $0.role == "user" }?.content ?? "")
        _ = try await self.redis.pipeline([
            ["RPUSH", list] + messages.map(Self.encode), ["LTRIM", list, "-\(Self.maxMessages)", "-1"], ["EXPIRE", list, ttl],
            ["HSETNX", meta, "title", title], ["HSETNX", meta, "created", ms], ["HSET", meta, "updated", ms], ["EXPIRE", meta, ttl],
            ["ZADD", index, ms, conversation], ["EXPIRE", index, ttl],
        ])
    }

    // MARK: - The user's side (the gateway)

    /// The user's conversations, most recently used first. Conversations that expired leave
    /// the index as they are found.
    public func list(user: UUID, limit: Int) async throws -> [Summary] {
        let index = Self.indexKey(user)
        let ids = (try await self.redis.send("ZREVRANGE", index, "0", String(max(0, limit - 1))).array ?? []).compactMap(\.string)
        guard !ids.isEmpty else { return [] }
        let replies = try await self.redis.pipeline(ids.flatMap { id in
            [["HMGET", Self.metaKey(user, id), "title", "created", "updated"], ["LLEN", Self.messagesKey(user, id)]]
        })
        var result: [Summary] = []
        var gone: [String] = []
        for (i, id) in ids.enumerated() {
            let fields = replies[2 * i].array ?? []
            let count = Int(replies[2 * i + 1].int ?? 0)
            guard fields.count == 3, let summary = Self.summary(id: id, fields.map(\.string), count: count) else {
                gone.append(id)
                continue
            }
            result.append(summary)
        }
        if !gone.isEmpty { _ = try await self.redis.send(["ZREM", index] + gone) }
        return result
    }

    /// One conversation with its messages; nil if there is none (never was, expired or deleted).
    public func get(user: UUID, conversation: String) async throws -> Conversation? {
        let replies = try await self.redis.pipeline([
            ["HMGET", Self.metaKey(user, conversation), "title", "created", "updated"],
            ["LRANGE", Self.messagesKey(user, conversation), "0", "-1"],
        ])
        let messages = (replies[1].array ?? []).compactMap { $0.string.flatMap(Self.decode) }
        guard let summary = Self.summary(id: conversation, (replies[0].array ?? []).map(\.string), count: messages.count) else {
            return nil
        }
        return Conversation(id: conversation, title: summary.title, createdAt: summary.createdAt, updatedAt: summary.updatedAt,
                            messages: messages)
    }

    /// Renames a conversation (whitespace collapsed, at most 200 characters); false if there is none.
    public func rename(user: UUID, conversation: String, title: String) async throws -> Bool {
        let reply = try await self.redis.eval(Self.renameScript, keys: [Self.metaKey(user, conversation)],
                                              args: [Self.title(from: title, limit: 200)])
        return reply.int == 1
    }

    /// Deletes a conversation; false if there was none.
    public func delete(user: UUID, conversation: String) async throws -> Bool {
        let replies = try await self.redis.pipeline([
            ["DEL", Self.messagesKey(user, conversation), Self.metaKey(user, conversation)],
            ["ZREM", Self.indexKey(user), conversation],
        ])
        return (replies[0].int ?? 0) > 0 || (replies[1].int ?? 0) > 0
    }

    // MARK: - Keys and encoding

    public static func messagesKey(_ user: UUID, _ conversation: String) -> String { "gpt:conv:\(user.lowercasedString):\(conversation)" }
    static func metaKey(_ user: UUID, _ conversation: String) -> String { "gpt:conv-meta:\(user.lowercasedString):\(conversation)" }
    static func indexKey(_ user: UUID) -> String { "gpt:convs:\(user.lowercasedString)" }

    /// A title: the text with its whitespace collapsed, at most `limit` characters (a new
    /// conversation is named by its first question's first 80).
    public static func title(from text: String, limit: Int = 80) -> String {
        let words = text.split(whereSeparator: { $0.isWhitespace || $0.isNewline })
        let joined = words.joined(separator: " ")
        guard !joined.isEmpty else { return "New chat" }
        return joined.count <= limit ? joined : String(joined.prefix(limit - 1)) + "…"
    }

    static func summary(id: String, _ fields: [String?], count: Int) -> Summary? {
        guard fields.count == 3, let title = fields[0], let created = fields[1].flatMap(Double.init) else { return nil }
        let updated = fields[2].flatMap(Double.init) ?? created
        return Summary(id: id, title: title, createdAt: Date(timeIntervalSince1970: created / 1000),
                       updatedAt: Date(timeIntervalSince1970: updated / 1000), messageCount: count)
    }

    static func encode(_ message: ChatMessage) -> String {
        var out: [UInt8] = []
        try? message.appendJSON(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> ChatMessage? {
        guard let tree = try? JSONTree.parse(Array(text.utf8)) else { return nil }
        return try? ChatMessage(json: tree)
    }

    static let renameScript = RedisScript("""
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[1], 'title', ARGV[1])
        return 1
        """)
}
