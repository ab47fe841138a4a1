import AiraCore
import AiraPostgres
import AiraRedis
import Foundation
import Hummingbird
import Logging
import Metrics

/// Hot reads of posts (first pages of lists, first pages of searches) kept in Redis, shared by
/// every gateway instance. docs/search.md has the whole story; in short:
///
/// - Every write bumps a generation (`aira:posts:state` `gen`); cached pages live under their
///   generation, so one write makes every cached page unreachable at once (they expire by TTL).
/// - The writer's reads skip the cache and go to the primary for the read-your-writes window
///   (`aira:fresh:<user>`), so a user always sees their own write at once.
/// - A page read from the replica is cached only if the replica had replayed the last write
///   (`aira:posts:state` `lsn`) before the read began: a lagging replica never fills the cache
///   with a page older than the generation it is cached under.
///
/// Redis failing is a cache miss, never an error: reads go to PostgreSQL.
struct PostsCache: Sendable {
    let redis: RedisClient
    /// How long a page stays (`AIRA_POSTS_CACHE_TTL`; 0 turns the cache off).
    let ttl: Duration
    let reads: PostgresReadRouter
    /// `AIRA_READ_YOUR_WRITES_WINDOW`.
    let freshWindow: Duration
    let logger: Logger

    /// Misses of the same page under way in this gateway.
    let misses = Coalescer<([UInt8], ReadTarget)>()

    static let stateKey = "aira:posts:state"
    static let pagePrefix = "aira:posts:page:"

    var enabled: Bool { self.ttl > .zero }

    private static let hits = Counter(label: "aira_gateway_posts_cache_total", dimensions: [("result", "hit")])
    private static let misses = Counter(label: "aira_gateway_posts_cache_total", dimensions: [("result", "miss")])
    private static let bypasses = Counter(label: "aira_gateway_posts_cache_total", dimensions: [("result", "bypass")])
    private static let failures = Counter(label: "aira_gateway_posts_cache_failures_total")

    struct Lookup: Sendable {
        var generation: String
        /// The primary's WAL position after the last write (0: none recorded).
        var watermark: UInt64
        /// The caller wrote within the window.
        var fresh: Bool
        var page: [UInt8]?
    }

    /// One round trip: the generation, the write watermark, the caller's marker, and the page
    /// (unless the caller is fresh).
    private static let lookupScript = RedisScript("""
        local s = redis.call('HMGET', KEYS[1], 'gen', 'lsn')
        local gen = s[1] or '0'
        local fresh = 0
        if ARGV[1] ~= '' then fresh = redis.call('EXISTS', ARGV[1]) end
        local page = false
        if fresh == 0 and ARGV[2] ~= '' then page = redis.call('GET', ARGV[2] .. gen .. ':' .. ARGV[3]) end
        return {gen, s[2] or '0', fresh, page}
        """)

    /// After a write: a new generation, the watermark raised to `ARGV[1]`, the writer marked fresh.
    private static let writeScript = RedisScript("""
        redis.call('HINCRBY', KEYS[1], 'gen', 1)
        local old = tonumber(redis.call('HGET', KEYS[1], 'lsn') or '0')
        if tonumber(ARGV[1]) > old then redis.call('HSET', KEYS[1], 'lsn', ARGV[1]) end
        if ARGV[2] ~= '' then redis.call('SET', ARGV[2], '1', 'PX', ARGV[3]) end
        return 1
        """)

    /// Looks the page up (`key` nil: not cacheable, only the generation and marker are wanted).
    /// Nil when Redis cannot be asked.
    func lookup(_ key: String?, user: UUID?) async -> Lookup? {
        let freshKey = (user != nil && self.reads.replica != nil) ? ContentContext.freshKey(user!) : ""
        do {
            let reply = try await self.redis.eval(Self.lookupScript, keys: [Self.stateKey],
                                                  args: [freshKey, key == nil ? "" : Self.pagePrefix, key ?? ""])
            guard case .array(let parts) = reply, parts.count == 4 else {
                throw RedisError.unexpectedReply("posts cache lookup: \(reply)")
            }
            let page: [UInt8]? = if case .bulk(let bytes) = parts[3] { bytes } else { nil }
            return Lookup(generation: parts[0].string ?? "0", watermark: UInt64(parts[1].string ?? "0") ?? 0,
                          fresh: parts[2].string == "1", page: page)
        } catch {
            Self.failures.increment()
            self.logger.warning("posts cache unreadable", metadata: [LogKey.error: "\(error)"])
            return nil
        }
    }

    func store(_ key: String, generation: String, _ bytes: [UInt8]) async {
        do {
            _ = try await self.redis.set(Self.pagePrefix + generation + ":" + key, bytes: bytes, expire: self.ttl)
        } catch {
            Self.failures.increment()
            self.logger.warning("posts cache not written", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// After `user`'s write committed: every cached page goes stale, and the user reads the primary.
    func invalidate(after user: UUID, _ context: GatewayContext) async {
        var watermark: UInt64 = 0
        if self.reads.replica != nil {
            do { watermark = try await self.reads.primaryLSN() } catch {
                context.logger.warning("write position unknown", metadata: [LogKey.error: "\(error)"])
                // Unknown: the maximum keeps replica reads out of the cache until the next write.
                watermark = UInt64(1) << 52
            }
        }
        let freshKey = self.reads.replica != nil ? ContentContext.freshKey(user) : ""
        do {
            _ = try await self.redis.eval(Self.writeScript, keys: [Self.stateKey],
                                          args: [String(watermark), freshKey, String(self.freshWindow.milliseconds)])
        } catch {
            Self.failures.increment()
            context.logger.error("posts cache not invalidated", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// Serves a read through the cache. `key` nil: not cacheable (deep pages). `produce` runs the
    /// query (on the primary when told to) and returns the JSON body.
    func read(_ key: String?, _ context: GatewayContext,
              produce: @escaping @Sendable (_ primaryOnly: Bool) async throws -> (body: [UInt8], target: ReadTarget)) async throws -> Response {
        let user = context.callerID
        var lookup: Lookup?
        if self.enabled || (user != nil && self.reads.replica != nil) {
            lookup = await self.lookup(self.enabled ? key : nil, user: user)
        }
        if let page = lookup?.page {
            Self.hits.increment()
            return Self.response(page, cache: "hit", read: "cache")
        }
        // The replica's position before the query: if it already holds the last write, so does the page.
        let replayedBefore = self.reads.replayedLSN
        let fresh = lookup?.fresh ?? false
        // Identical misses at the same moment (a popular search when its page expires) run the
        // query once; the others wait for its result.
        let (body, target) = if let key, !fresh {
            try await self.misses.run(key) { try await produce(false) }
        } else {
            try await produce(fresh)
        }
        var state = "bypass"
        if self.enabled, let key, let lookup, !fresh {
            state = "miss"
            if target == .primary || replayedBefore >= lookup.watermark {
                await self.store(key, generation: lookup.generation, body)
            }
        }
        (state == "miss" ? Self.misses : Self.bypasses).increment()
        return Self.response(body, cache: state, read: target.rawValue)
    }

    static func response(_ body: [UInt8], cache: String, read: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8", .airaCache: cache,
                                        .airaRead: read],
                 body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
