import AiraCore
import AiraRedis
import Crypto
import Foundation

/// Login throttling in Redis, per account and per client address, with a growing delay.
///
/// Each subject (the account, the address, and the pair account+address) counts failed logins;
/// past `freeFailures` every further failure locks the subject for `baseDelay · 2^k`, capped at
/// `maxLock`. Attempts made while locked are refused before any bcrypt and are not counted, so
/// they cannot extend a lock. Counters are forgotten after `window` without failures.
///
/// An attacker must not be able to lock a victim out: the account-wide lock does not apply to
/// an address the account has logged in from successfully before (its "known" addresses, kept
/// 30 days); from those, only the pair counter and the address's own counter apply.
struct LoginThrottle: Sendable {
    struct Policy: Sendable {
        var accountFreeFailures = 5
        var addressFreeFailures = 50
        var baseDelay: Duration = .seconds(1)
        var maxLock: Duration = .seconds(300)
        var window: Duration = .seconds(900)
        var knownAddressLifetime: Duration = .seconds(30 * 86_400)
    }

    let redis: RedisClient
    let policy: Policy

    private func keys(email: String, ip: String) -> [String] {
        let account = SHA256.hash(data: Data(email.utf8)).prefix(16).hexString
        return ["auth:throttle:acct:\(account)", "auth:throttle:ip:\(ip)", "auth:throttle:pair:\(account):\(ip)",
                "auth:known-ips:\(account)"]
    }

    /// How long this login must wait, or nil if it may go ahead.
    func lockRemaining(email: String, ip: String, now: Date = Date()) async throws -> Duration? {
        let ms = try await self.redis.eval(Self.checkScript, keys: self.keys(email: email, ip: ip),
                                           args: [ip, String(Self.milliseconds(now))]).int ?? 0
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// Counts a failed login; returns the lock it started, if any.
    @discardableResult
    func recordFailure(email: String, ip: String, now: Date = Date()) async throws -> Duration? {
        let p = self.policy
        let ms = try await self.redis.eval(Self.failScript, keys: self.keys(email: email, ip: ip), args: [
            ip, String(Self.milliseconds(now)), String(p.accountFreeFailures), String(p.addressFreeFailures),
            String(p.baseDelay.milliseconds), String(p.maxLock.milliseconds), String(p.window.components.seconds),
        ]).int ?? 0
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// A successful login clears the account's counters and remembers the address.
    func recordSuccess(email: String, ip: String) async throws {
        _ = try await self.redis.eval(Self.successScript, keys: self.keys(email: email, ip: ip),
                                      args: [ip, String(self.policy.knownAddressLifetime.components.seconds)])
    }

    private static func milliseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1000) }

    // KEYS: account, address, pair, known addresses. ARGV[1]: the address.
    static let checkScript = RedisScript("""
        local now = tonumber(ARGV[2])
        local subjects = {KEYS[2], KEYS[3]}
        if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then table.insert(subjects, KEYS[1]) end
        local wait = 0
        for _, k in ipairs(subjects) do
            local untilMs = tonumber(redis.call('HGET', k, 'until') or '0')
            if untilMs - now > wait then wait = untilMs - now end
        end
        return wait
        """)

    static let failScript = RedisScript("""
        local now, accountFree, addressFree = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local base, maxLock, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
        local longest = 0
        local function fail(key, free)
            local n = redis.call('HINCRBY', key, 'failures', 1)
            redis.call('EXPIRE', key, window)
            if n > free then
                local lock = math.min(base * (2 ^ math.min(n - free - 1, 30)), maxLock)
                redis.call('HSET', key, 'until', string.format('%d', now + math.floor(lock)))
                if lock > longest then longest = math.floor(lock) end
            end
        end
        fail(KEYS[1], accountFree)
        fail(KEYS[2], addressFree)
        fail(KEYS[3], accountFree)
        return longest
        """)

    static let successScript = RedisScript("""
        redis.call('DEL', KEYS[1], KEYS[3])
        redis.call('SADD', KEYS[4], ARGV[1])
        redis.call('EXPIRE', KEYS[4], ARGV[2])
        return 1
        """)
}
