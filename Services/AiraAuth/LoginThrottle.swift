import AiraCore
import AiraRedis
import Crypto
import Foundation
import Logging
import Metrics
import Synchronization

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
///
/// While Redis is unreachable, logins still work: the same policy runs on counters in this
/// process (``LocalLoginThrottle``), so guessing stays throttled per instance. Known addresses
/// are not known there, and the local counters are forgotten once Redis answers again.
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
    let local = LocalLoginThrottle()
    var logger = Logger(label: "aira-auth.throttle")

    private static let redisErrors = Counter(label: "aira_auth_throttle_redis_errors_total")

    private func degraded(_ error: any Error) {
        Self.redisErrors.increment()
        self.logger.warning("redis unavailable: login throttling counted in this process", metadata: ["error": "\(error)"])
    }

    private func keys(email: String, ip: String) -> [String] {
        let account = SHA256.hash(data: Data(email.utf8)).prefix(16).hexString
        return ["auth:throttle:acct:\(account)", "auth:throttle:ip:\(ip)", "auth:throttle:pair:\(account):\(ip)",
                "auth:known-ips:\(account)"]
    }

    /// How long this login must wait, or nil if it may go ahead.
    func lockRemaining(email: String, ip: String, now: Date = Date()) async -> Duration? {
        let keys = self.keys(email: email, ip: ip)
        let ms: Int64
        do {
            ms = try await self.redis.eval(Self.checkScript, keys: keys, args: [ip, String(Self.milliseconds(now))]).int ?? 0
        } catch {
            self.degraded(error)
            ms = self.local.lockRemaining(keys, now: Self.milliseconds(now))
        }
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// Counts a failed login; returns the lock it started, if any.
    @discardableResult
    func recordFailure(email: String, ip: String, now: Date = Date()) async -> Duration? {
        let p = self.policy
        let keys = self.keys(email: email, ip: ip)
        let ms: Int64
        do {
            ms = try await self.redis.eval(Self.failScript, keys: keys, args: [
                ip, String(Self.milliseconds(now)), String(p.accountFreeFailures), String(p.addressFreeFailures),
                String(p.baseDelay.milliseconds), String(p.maxLock.milliseconds), String(p.window.components.seconds),
            ]).int ?? 0
        } catch {
            self.degraded(error)
            ms = self.local.recordFailure(keys, policy: p, now: Self.milliseconds(now))
        }
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// A successful login clears the account's counters and remembers the address.
    func recordSuccess(email: String, ip: String) async {
        let keys = self.keys(email: email, ip: ip)
        do {
            _ = try await self.redis.eval(Self.successScript, keys: keys,
                                          args: [ip, String(self.policy.knownAddressLifetime.components.seconds)])
            self.local.forgetAll()
        } catch {
            self.degraded(error)
            self.local.recordSuccess(keys)
        }
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

/// The throttle's counters in this process, for while Redis is unreachable: the scripts' rules
/// (free failures, doubling locks up to the cap, counters forgotten after the window), without
/// known addresses.
final class LocalLoginThrottle: Sendable {
    private struct Subject { var failures = 0; var until: Int64 = 0; var lastFailure: Int64 = 0 }
    private let subjects = Mutex<[String: Subject]>([:])

    /// keys: account, address, pair (as for the scripts); milliseconds.
    func lockRemaining(_ keys: [String], now: Int64) -> Int64 {
        self.subjects.withLock { subjects in
            keys.prefix(3).map { (subjects[$0]?.until ?? 0) - now }.max().map { max(0, $0) } ?? 0
        }
    }

    func recordFailure(_ keys: [String], policy: LoginThrottle.Policy, now: Int64) -> Int64 {
        let window = policy.window.milliseconds
        return self.subjects.withLock { subjects in
            if subjects.count > 100_000 { subjects = subjects.filter { now - $0.value.lastFailure < window } }
            var longest: Int64 = 0
            for (key, free) in zip(keys.prefix(3), [policy.accountFreeFailures, policy.addressFreeFailures, policy.accountFreeFailures]) {
                var subject = subjects[key] ?? Subject()
                if now - subject.lastFailure >= window { subject = Subject() }
                subject.failures += 1
                subject.lastFailure = now
                if subject.failures > free {
                    let doubled = Double(policy.baseDelay.milliseconds) * pow(2, Double(min(subject.failures - free - 1, 30)))
                    let lock = Int64(min(doubled, Double(policy.maxLock.milliseconds)))
                    subject.until = now + lock
                    longest = max(longest, lock)
                }
                subjects[key] = subject
            }
            return longest
        }
    }

    func recordSuccess(_ keys: [String]) {
        self.subjects.withLock { subjects in
            subjects[keys[0]] = nil
            subjects[keys[2]] = nil
        }
    }

    func forgetAll() {
        self.subjects.withLock { if !$0.isEmpty { $0.removeAll() } }
    }
}
