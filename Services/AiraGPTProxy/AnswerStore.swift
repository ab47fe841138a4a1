import AiraCore
import AiraContracts
import AiraLLM
import AiraMessaging
import AiraRedis
import Foundation
import Logging
import Metrics
import Synchronization

/// The answer cache, single-flight coordination and daily quotas, in Redis. Every Redis
/// failure degrades instead of failing the question: a cache read becomes a miss, a cache
/// write is skipped, single-flight falls back to this process, and quotas are counted in this
/// process's memory (each instance then allows up to the limit).
struct AnswerStore: Sendable {
    let redis: RedisClient
    let logger: Logger
    var cacheTTL: Duration = .seconds(72 * 3600)
    var conversations: ConversationStore
    /// How long an identical question waits for another instance's upstream call before making its own.
    var flightWait: Duration = .seconds(15)
    let localQuota = LocalQuota()

    private static let hits = Counter(label: "aira_gpt_cache_total", dimensions: [("result", "hit")])
    private static let misses = Counter(label: "aira_gpt_cache_total", dimensions: [("result", "miss")])
    private static let redisErrors = Counter(label: "aira_gpt_redis_errors_total")

    struct Entry: Codable, Sendable, FastJSONDecodable {
        var completion: Completion
        var createdAt: Date

        init(completion: Completion, createdAt: Date) {
            self.completion = completion
            self.createdAt = createdAt
        }

        /// Read by hand: every cache hit reads one (JSONDecoder for anything unusual).
        init(json: JSONTree) throws {
            let m = try json.members()
            guard let created = parseISO8601(try m.string("createdAt")) else { throw JSONTree.Unsupported("createdAt") }
            let c = try m.object("completion")
            let chunks = try c.optionalArray("chunks")?.map { item -> String in
                guard let piece = item.string else { throw JSONTree.Unsupported("chunks") }
                return piece
            }
            self.completion = Completion(text: try c.string("text"), model: try c.string("model"),
                                         finishReason: try c.string("finishReason"), refusal: try c.optionalString("refusal"),
                                         usage: try c.optionalObject("usage").map { try Usage(json: .object($0)) }, chunks: chunks)
            self.createdAt = created
        }
    }

    // MARK: - Cache

    /// The cached answer (its TTL refreshed), and the user's quota count, in one round trip.
    func lookup(_ key: CacheKey, quotaKey: String) async -> (Completion?, used: Int?) {
        await self.lookup([(key, quotaKey)])[0]
    }

    /// The same for many questions (a batch of them), in one round trip.
    func lookup(_ questions: [(key: CacheKey, quotaKey: String)]) async -> [(Completion?, used: Int?)] {
        guard !questions.isEmpty else { return [] }
        let ttl = String(self.cacheTTL.components.seconds)
        do {
            var commands: [[String]] = []
            commands.reserveCapacity(questions.count * 2)
            for q in questions {
                commands.append(["GETEX", q.key.description, "EX", ttl])
                commands.append(["GET", q.quotaKey])
            }
            let replies = try await self.redis.pipeline(commands)
            return questions.indices.map { i in
                let entry = replies[2 * i].string.flatMap { try? MessageCoding.decode(Entry.self, from: Array($0.utf8)) }
                (entry == nil ? Self.misses : Self.hits).increment()
                return (entry?.completion, replies[2 * i + 1].string.flatMap(Int.init) ?? 0)
            }
        } catch {
            self.degraded("cache read", error)
            Self.misses.increment(by: questions.count)
            return questions.map { _ in (nil, nil) }
        }
    }

    func store(_ completion: Completion, key: CacheKey) async {
        do {
            let body = String(decoding: try MessageCoding.encode(Entry(completion: completion, createdAt: Date())), as: UTF8.self)
            _ = try await self.redis.set(key.description, body, expire: self.cacheTTL)
        } catch {
            self.degraded("cache write", error)
        }
    }

    // MARK: - Single flight across instances

    enum Flight: Sendable {
        /// This caller makes the upstream call and must ``finish(_:key:token:completion:)``.
        case lead(token: String)
        /// Another instance answered meanwhile.
        case answered(Completion)
        /// Nobody answered in time (or Redis is unavailable): call the upstream yourself.
        case alone
    }

    /// Takes the lead for `key`, or waits (bounded by `flightWait` and `deadline`) for the
    /// instance that has it. `token` names the attempt: a redelivered question (its instance
    /// died holding the lead) finds its own token on the lock and leads again at once, instead
    /// of waiting for a leader that is gone.
    func join(_ key: CacheKey, deadline: Date, token: String = MessageID.random()) async -> Flight {
        let lock = Self.lockKey(key)
        let lease = max(1000, Int64(deadline.timeIntervalSinceNow * 1000))
        do {
            if try await self.redis.eval(Self.leadScript, keys: [lock], args: [token, String(lease)]).int == 1 { return .lead(token: token) }
            let until = min(deadline.addingTimeInterval(-0.2), Date().addingTimeInterval(self.flightWait.seconds))
            while Date() < until {
                try await Task.sleep(for: .milliseconds(15))
                let replies = try await self.redis.pipeline([["GET", Self.resultKey(key)], ["EXISTS", lock]])
                if let text = replies[0].string, let completion = try? MessageCoding.decode(Completion.self, from: Array(text.utf8)) {
                    return .answered(completion)
                }
                // The leader gave up (failed, or crashed and its lease ran out): try to lead.
                if replies[1].int == 0 {
                    if try await self.redis.send(["SET", lock, token, "NX", "PX", String(lease)]).string == "OK" { return .lead(token: token) }
                }
            }
            return .alone
        } catch {
            self.degraded("single flight", error)
            return .alone
        }
    }

    /// Publishes the leader's answer to the waiting instances (briefly; the cache keeps
    /// cacheable answers) and releases the lock.
    func finish(_ key: CacheKey, token: String, completion: Completion?) async {
        let lock = Self.lockKey(key)
        do {
            let body = try completion.map { String(decoding: try MessageCoding.encode($0), as: UTF8.self) } ?? ""
            _ = try await self.redis.eval(Self.finishScript, keys: [lock, Self.resultKey(key)], args: [token, body])
        } catch {
            self.degraded("single flight", error)
        }
    }

    static func lockKey(_ key: CacheKey) -> String { "gpt:flight:\(key.model):\(key.version):\(key.digest)" }
    static func resultKey(_ key: CacheKey) -> String { "gpt:flight-result:\(key.model):\(key.version):\(key.digest)" }

    /// Takes the lock, or finds it already this attempt's: 1; held by another: 0.
    static let leadScript = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end
        return 0
        """)

    static let finishScript = RedisScript("""
        if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', 30) end
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
        return 1
        """)

    // MARK: - Quota

    /// Counts one question against today's quota: `INCR`, then compare; the first count of
    /// the day sets the key to expire at the reset time. Over the limit: not counted, nil.
    /// `charge` names the attempt: a second delivery of the same question (after a crash) finds
    /// its charge (kept until the reset) and is not counted again.
    func consumeQuota(user: UUID, limit: Int, charge: String, now: Date = Date()) async -> QuotaStatus? {
        let (key, reset) = Self.quotaKey(user: user, now: now)
        do {
            let reply = try await self.redis.eval(Self.quotaScript, keys: [key, Self.chargeKey(charge)],
                                                  args: [String(Int64(reset.timeIntervalSince1970)), String(limit)]).int ?? 0
            guard reply > 0 else { return nil }
            return QuotaStatus(used: Int(reply), limit: limit, resetAt: reset)
        } catch {
            self.degraded("quota", error)
            guard let used = self.localQuota.consume(key, limit: limit) else { return nil }
            return QuotaStatus(used: used, limit: limit, resetAt: reset)
        }
    }

    /// Today's count without counting anything (Redis unavailable: this process's count).
    func quota(user: UUID, limit: Int, now: Date = Date()) async -> QuotaStatus {
        let (key, reset) = Self.quotaKey(user: user, now: now)
        let used: Int
        do {
            used = Int(try await self.redis.get(key).flatMap { Int($0) } ?? 0)
        } catch {
            self.degraded("quota read", error)
            used = self.localQuota.used(key)
        }
        return QuotaStatus(used: min(used, limit), limit: limit, resetAt: reset)
    }

    /// Gives a question back (the upstream failed: the user is not charged).
    func refundQuota(user: UUID, charge: String, now: Date = Date()) async {
        let (key, _) = Self.quotaKey(user: user, now: now)
        do {
            _ = try await self.redis.pipeline([["DECR", key], ["DEL", Self.chargeKey(charge)]])
        } catch {
            self.localQuota.refund(key)
        }
    }

    static func chargeKey(_ charge: String) -> String { "gpt:charge:\(charge)" }

    /// `gpt:quota:{user}:{yyyymmdd}` for the UTC day of `now`, and the next midnight UTC.
    static func quotaKey(user: UUID, now: Date) -> (String, Date) {
        let day = Int64((now.timeIntervalSince1970 / 86_400).rounded(.down))
        let reset = Date(timeIntervalSince1970: Double(day + 1) * 86_400)
        return ("gpt:quota:\(user.lowercasedString):\(utcDayStamp(daysSinceEpoch: day))", reset)
    }

    /// KEYS: the day's count, this attempt's charge. ARGV: the reset (epoch seconds), the limit.
    /// Returns the count (charged now, or already by an earlier delivery), or 0 over the limit.
    static let quotaScript = RedisScript("""
        if redis.call('EXISTS', KEYS[2]) == 1 then return tonumber(redis.call('GET', KEYS[1]) or '1') end
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[1]) end
        if n > tonumber(ARGV[2]) then redis.call('DECR', KEYS[1]); return 0 end
        redis.call('SET', KEYS[2], '1', 'EXAT', ARGV[1])
        return n
        """)

    // MARK: - Conversations

    /// The conversation so far (``ConversationStore``: the last 40 messages, kept
    /// `AIRA_GPT_CONVERSATION_TTL` after its last use); empty while Redis is unavailable.
    func history(user: UUID, conversation: String) async -> [ChatMessage] {
        do {
            return try await self.conversations.history(user: user, conversation: conversation)
        } catch {
            self.degraded("conversation read", error)
            return []
        }
    }

    func append(_ messages: [ChatMessage], user: UUID, conversation: String) async {
        do {
            try await self.conversations.append(messages, user: user, conversation: conversation)
        } catch {
            self.degraded("conversation write", error)
        }
    }

    private func degraded(_ what: String, _ error: any Error) {
        Self.redisErrors.increment()
        self.logger.warning("redis unavailable: \(what) degraded", metadata: [LogKey.error: "\(error)"])
    }
}

/// Quotas counted in memory while Redis is unavailable.
final class LocalQuota: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func used(_ key: String) -> Int { self.counts.withLock { $0[key] ?? 0 } }

    func consume(_ key: String, limit: Int) -> Int? {
        self.counts.withLock { counts in
            let used = (counts[key] ?? 0) + 1
            guard used <= limit else { return nil }
            counts[key] = used
            if counts.count > 100_000 { counts = [key: used] }
            return used
        }
    }

    func refund(_ key: String) { self.counts.withLock { $0[key] = max(0, ($0[key] ?? 0) - 1) } }
}
