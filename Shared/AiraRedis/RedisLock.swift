import AiraCore
import Foundation
import Synchronization

/// A lease on a Redis key (`SET key token NX EX ttl`): only the holder, who knows the token,
/// can extend or release it; if the holder dies, the key expires and someone else may take it.
/// A lease is advisory: whatever it guards must stay correct if two holders ever overlap (a
/// holder paused past its TTL).
public final class RedisLease: Sendable {
    public let key: String
    public let token: String
    public let ttl: Duration
    private let redis: RedisClient
    private let held = Atomic<Bool>(true)

    /// Takes the lease if nobody holds it; nil if somebody does.
    public static func acquire(_ key: String, ttl: Duration, on redis: RedisClient) async throws -> RedisLease? {
        let token = UUID().lowercasedString
        guard try await redis.set(key, token, expire: ttl, condition: .ifNotExists) else { return nil }
        return RedisLease(key: key, token: token, ttl: ttl, redis: redis)
    }

    private init(key: String, token: String, ttl: Duration, redis: RedisClient) {
        self.key = key
        self.token = token
        self.ttl = ttl
        self.redis = redis
    }

    /// False once a renewal found the key gone or someone else's, or after `release`.
    public var isHeld: Bool { self.held.load(ordering: .acquiring) }

    /// Extends the lease to a full TTL from now. Returns false (and the lease is lost for good)
    /// if the key is no longer this holder's.
    @discardableResult
    public func renew() async throws -> Bool {
        guard self.isHeld else { return false }
        let ms = String(max(1, Int(self.ttl.seconds * 1000)))
        let renewed = try await self.redis.eval(Self.renewScript, keys: [self.key], args: [self.token, ms]) == .integer(1)
        if !renewed { self.held.store(false, ordering: .releasing) }
        return renewed
    }

    /// Deletes the key if it is still this holder's.
    public func release() async throws {
        self.held.store(false, ordering: .releasing)
        _ = try await self.redis.eval(Self.releaseScript, keys: [self.key], args: [self.token])
    }

    /// Renews every third of the TTL until `body` returns; if a renewal fails, `isHeld` turns
    /// false (body checks it between steps). A renewal that cannot reach Redis is retried at the
    /// next tick: the lease lives until its TTL anyway.
    public func whileRenewed<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let renewal = Task { [self] in
            while !Task.isCancelled && self.isHeld {
                try? await Task.sleep(for: self.ttl / 3)
                if Task.isCancelled { return }
                _ = try? await self.renew()
            }
        }
        defer { renewal.cancel() }
        return try await body()
    }

    static let renewScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 0
        """)
    static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)
}
