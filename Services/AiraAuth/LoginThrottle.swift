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
/// While Redis cannot be reached, each auth instance throttles on its own, in memory, by the same
/// rules (``LocalThrottle``): logins keep working, and guessing stays slow. Each such decision
/// counts `aira_auth_throttle_fallback_total`.
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
    let local: LocalThrottle
    let logger: Logger
    private static let fallbacks = Counter(label: "aira_auth_throttle_fallback_total")

    init(redis: RedisClient, policy: Policy, logger: Logger) {
        self.redis = redis
        self.policy = policy
        self.local = LocalThrottle(policy: policy)
        self.logger = logger
    }

    /// `shared()` from Redis, or `local()` if Redis fails.
    private func orLocal<T>(_ shared: () async throws -> T, local: () -> T) async -> T {
        do {
            return try await shared()
        } catch {
            Self.fallbacks.increment()
            if self.local.shouldLog() {
                self.logger.warning("login throttle: Redis unreachable, throttling in this process", metadata: [LogKey.error: "\(error)"])
            }
            return local()
        }
    }

    private func keys(email: String, ip: String) -> [String] {
        let account = SHA256.hash(data: Data(email.utf8)).prefix(16).hexString
        return ["auth:throttle:acct:\(account)", "auth:throttle:ip:\(ip)", "auth:throttle:pair:\(account):\(ip)",
                "auth:known-ips:\(account)"]
    }

    /// How long this login must wait, or nil if it may go ahead.
    func lockRemaining(email: String, ip: String, now: Date = Date()) async -> Duration? {
        let keys = self.keys(email: email, ip: ip)
        let ms = await self.orLocal({
            try await self.redis.eval(Self.checkScript, keys: keys, args: [ip, String(Self.milliseconds(now))]).int ?? 0
        }, local: { self.local.lockRemaining(keys: keys, ip: ip, now: Self.milliseconds(now)) })
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// Counts a failed login; returns the lock it started, if any.
    @discardableResult
    func recordFailure(email: String, ip: String, now: Date = Date()) async -> Duration? {
        let p = self.policy
        let keys = self.keys(email: email, ip: ip)
        let ms = await self.orLocal({
            try await self.redis.eval(Self.failScript, keys: keys, args: [
                ip, String(Self.milliseconds(now)), String(p.accountFreeFailures), String(p.addressFreeFailures),
                String(p.baseDelay.milliseconds), String(p.maxLock.milliseconds), String(p.window.components.seconds),
            ]).int ?? 0
        }, local: { self.local.recordFailure(keys: keys, now: Self.milliseconds(now)) })
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// A successful login clears the account's counters and remembers the address.
    func recordSuccess(email: String, ip: String) async {
        let keys = self.keys(email: email, ip: ip)
        _ = await self.orLocal({
            _ = try await self.redis.eval(Self.successScript, keys: keys,
                                          args: [ip, String(self.policy.knownAddressLifetime.components.seconds)])
        }, local: { self.local.recordSuccess(keys: keys, ip: ip) })
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

/// The throttle's rules in one process's memory, for while Redis is unreachable: the same
/// subjects, counters and locks as the Lua scripts above. At most `capacity` subjects are kept;
/// past it, those whose window has run out go first, then (under a flood of distinct
/// subjects) all of them.
final class LocalThrottle: Sendable {
    private struct Subject {
        var failures = 0
        var until: Int64 = 0
        var forgetAt: Int64 = 0
    }
    private struct State {
        var subjects: [String: Subject] = [:]
        var known: [String: Set<String>] = [:]
        var lastLog: Int64 = 0
    }
    private let state = Mutex(State())
    let policy: LoginThrottle.Policy
    let capacity: Int

    init(policy: LoginThrottle.Policy, capacity: Int = 100_000) {
        self.policy = policy
        self.capacity = capacity
    }

    /// keys: account, address, pair, known addresses (as for the scripts).
    func lockRemaining(keys: [String], ip: String, now: Int64) -> Int64 {
        self.state.withLock { state in
            var subjects = [keys[1], keys[2]]
            if !(state.known[keys[3]]?.contains(ip) ?? false) { subjects.append(keys[0]) }
            return subjects.reduce(0) { wait, key in
                guard let s = state.subjects[key], s.forgetAt > now else { return wait }
                return max(wait, s.until - now)
            }
        }
    }

    func recordFailure(keys: [String], now: Int64) -> Int64 {
        let p = self.policy
        let window = Int64(p.window.components.seconds) * 1000
        return self.state.withLock { state in
            if state.subjects.count >= self.capacity {
                state.subjects = state.subjects.filter { $0.value.forgetAt > now }
                if state.subjects.count >= self.capacity { state.subjects.removeAll() }
            }
            var longest: Int64 = 0
            for (key, free) in [(keys[0], p.accountFreeFailures), (keys[1], p.addressFreeFailures), (keys[2], p.accountFreeFailures)] {
                var s = state.subjects[key].flatMap { $0.forgetAt > now ? $0 : nil } ?? Subject()
                s.failures += 1
                s.forgetAt = now + window
                if s.failures > free {
                    let lock = min(Double(p.baseDelay.milliseconds) * pow(2, Double(min(s.failures - free - 1, 30))),
                                   Double(p.maxLock.milliseconds))
                    s.until = now + Int64(lock)
                    longest = max(longest, Int64(lock))
                }
                state.subjects[key] = s
            }
            return longest
        }
    }

    func recordSuccess(keys: [String], ip: String) {
        self.state.withLock { state in
            state.subjects[keys[0]] = nil
            state.subjects[keys[2]] = nil
            if state.known.count >= self.capacity { state.known.removeAll() }
            state.known[keys[3], default: []].insert(ip)
        }
    }

    /// At most one warning every 10 s.
    func shouldLog(now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> Bool {
        self.state.withLock { state in
            guard now - state.lastLog >= 10_000 else { return false }
            state.lastLog = now
            return true
        }
    }
}
