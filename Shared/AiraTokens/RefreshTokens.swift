import AiraCore
import AiraRedis
import Crypto
import Foundation

/// Refresh tokens in Redis: opaque, stored only as SHA-256 hashes, rotated on every use, in
/// families (one per login on a device).
///
/// Keys: `auth:rt:{sha256(token)}` → {user, family, state active|used};
/// `auth:fam:{family}` → {user, revoked 0|1, created, last (epoch seconds), ip, ua};
/// `auth:user-fams:{user}` → set of families.
/// Using a token that was already rotated is reuse, which revokes its whole family (a stolen
/// token stops working for the thief and the owner alike). A token cannot outlive its family.
public struct RefreshTokens: Sendable {
    public let redis: RedisClient
    public let lifetime: Duration

    public init(redis: RedisClient, lifetime: Duration = .seconds(30 * 86_400)) {
        self.redis = redis
        self.lifetime = lifetime
    }

    public enum Rotation: Sendable, Equatable {
        case rotated(token: String, userID: UUID, family: String)
        /// A rotated token was presented again: the family is now revoked.
        case reused(userID: UUID, family: String)
        /// Unknown, expired, or its family was revoked (logout, password change, reuse).
        case invalid
    }

    /// Where a session was opened and last used from (shown on the user's sessions page).
    public struct Device: Sendable, Equatable {
        public var ip: String
        public var userAgent: String
        public init(ip: String = "", userAgent: String = "") {
            self.ip = String(ip.prefix(64))
            self.userAgent = String(userAgent.prefix(200))
        }
    }

    /// Starts a new family (a new login) and returns its first token.
    public func issue(userID: UUID, device: Device = Device(), now: Date = Date()) async throws -> (token: String, family: String) {
        let token = Self.newToken()
        let family = Self.newFamilyID()
        let user = userID.uuidString.lowercased()
        _ = try await self.redis.eval(Self.issueScript, keys: [Self.tokenKey(token), "auth:fam:\(family)", "auth:user-fams:\(user)"],
                                      args: [user, family, String(self.ttlSeconds), Self.seconds(now), device.ip, device.userAgent])
        return (token, family)
    }

    /// Exchanges a token for a new one in the same family; `ip` becomes the session's last address.
    public func rotate(_ token: String, ip: String? = nil, now: Date = Date()) async throws -> Rotation {
        guard Self.looksLikeToken(token) else { return .invalid }
        let next = Self.newToken()
        let reply = try await self.redis.eval(Self.rotateScript, keys: [Self.tokenKey(token), Self.tokenKey(next)],
                                              args: [String(self.ttlSeconds), Self.seconds(now), String((ip ?? "").prefix(64))]).array ?? []
        let outcome = reply.first?.string
        guard reply.count == 3, let user = reply[1].string.flatMap(UUID.init(uuidString:)), let family = reply[2].string else {
            return .invalid
        }
        switch outcome {
        case "ok": return .rotated(token: next, userID: user, family: family)
        case "reuse": return .reused(userID: user, family: family)
        default: return .invalid
        }
    }

    /// Ends the family `token` belongs to (logout on this device). Returns whether it existed.
    @discardableResult
    public func revokeFamily(of token: String) async throws -> Bool {
        guard Self.looksLikeToken(token), let family = try await self.redis.hget(Self.tokenKey(token), "family") else { return false }
        try await self.revoke(family: family)
        return true
    }

    /// Revokes a family; returns whether it was still active. With `userID`, only a family of
    /// that user (a session ended from the sessions page names one the caller must own).
    @discardableResult
    public func revoke(family: String, of userID: UUID? = nil) async throws -> Bool {
        // Only an existing family (HSET on a gone key would create one without a TTL).
        try await self.redis.eval(Self.revokeScript, keys: ["auth:fam:\(family)"],
                                  args: [userID?.uuidString.lowercased() ?? ""]).int == 1
    }

    /// A session: one family that is not revoked.
    public struct Session: Sendable, Equatable {
        public var family: String
        public var createdAt: Date?
        public var lastUsedAt: Date?
        public var ip: String?
        public var userAgent: String?
    }

    /// The user's active sessions, most recently used first (families that expired or were
    /// revoked are left out; expired ones are dropped from the user's set).
    public func sessions(userID: UUID) async throws -> [Session] {
        let user = userID.uuidString.lowercased()
        let rows = try await self.redis.eval(Self.sessionsScript, keys: ["auth:user-fams:\(user)"], args: []).array ?? []
        func date(_ text: String?) -> Date? { text.flatMap(Double.init).map { Date(timeIntervalSince1970: $0) } }
        func text(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        var result: [Session] = []
        var i = 0
        while i + 4 < rows.count {
            if let family = rows[i].string {
                result.append(Session(family: family, createdAt: date(rows[i + 1].string), lastUsedAt: date(rows[i + 2].string),
                                      ip: text(rows[i + 3].string), userAgent: text(rows[i + 4].string)))
            }
            i += 5
        }
        return result.sorted { ($0.lastUsedAt ?? .distantPast) > ($1.lastUsedAt ?? .distantPast) }
    }

    /// Ends every family of the user (logout everywhere, password change, suspension).
    /// Returns how many were active.
    @discardableResult
    public func revokeAll(userID: UUID) async throws -> Int {
        let user = userID.uuidString.lowercased()
        return Int(try await self.redis.eval(Self.revokeAllScript, keys: ["auth:user-fams:\(user)"], args: []).int ?? 0)
    }

    /// Whether a family is still valid (the gateway may check an access token's `sid`).
    public func isActive(family: String) async throws -> Bool {
        try await self.redis.hget("auth:fam:\(family)", "revoked") == "0"
    }

    // MARK: - Tokens and keys

    var ttlSeconds: Int64 { max(1, self.lifetime.components.seconds) }

    static func seconds(_ date: Date) -> String { String(Int64(date.timeIntervalSince1970)) }

    static func newToken() -> String { OpaqueToken.random(prefix: "rt_") }

    static func newFamilyID() -> String { UUID().uuidString.lowercased() }

    static func looksLikeToken(_ token: String) -> Bool { token.hasPrefix("rt_") && token.count == 46 }

    /// Only the hash is stored: a Redis dump does not hand out usable tokens.
    static func tokenKey(_ token: String) -> String { "auth:rt:" + OpaqueToken.digest(token) }

    static let issueScript = RedisScript("""
        redis.call('HSET', KEYS[1], 'user', ARGV[1], 'family', ARGV[2], 'state', 'active')
        redis.call('EXPIRE', KEYS[1], ARGV[3])
        redis.call('HSET', KEYS[2], 'user', ARGV[1], 'revoked', '0', 'created', ARGV[4], 'last', ARGV[4], 'ip', ARGV[5], 'ua', ARGV[6])
        redis.call('EXPIRE', KEYS[2], ARGV[3])
        redis.call('SADD', KEYS[3], ARGV[2])
        redis.call('EXPIRE', KEYS[3], ARGV[3])
        return 1
        """)

    /// Atomic: two concurrent refreshes with one token cannot both succeed.
    static let rotateScript = RedisScript("""
        local t = redis.call('HMGET', KEYS[1], 'user', 'family', 'state')
        if not t[1] then return {'invalid'} end
        local fam = 'auth:fam:' .. t[2]
        if redis.call('HGET', fam, 'revoked') ~= '0' then return {'invalid', t[1], t[2]} end
        if t[3] ~= 'active' then
            redis.call('HSET', fam, 'revoked', '1')
            return {'reuse', t[1], t[2]}
        end
        redis.call('HSET', KEYS[1], 'state', 'used')
        redis.call('HSET', KEYS[2], 'user', t[1], 'family', t[2], 'state', 'active')
        redis.call('EXPIRE', KEYS[2], ARGV[1])
        redis.call('HSET', fam, 'last', ARGV[2])
        if ARGV[3] ~= '' then redis.call('HSET', fam, 'ip', ARGV[3]) end
        redis.call('EXPIRE', fam, ARGV[1])
        redis.call('EXPIRE', 'auth:user-fams:' .. t[1], ARGV[1])
        return {'ok', t[1], t[2]}
        """)

    static let revokeScript = RedisScript("""
        local was = redis.call('HGET', KEYS[1], 'revoked')
        if not was then return 0 end
        if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'user') ~= ARGV[1] then return 0 end
        redis.call('HSET', KEYS[1], 'revoked', '1')
        if was == '0' then return 1 end
        return 0
        """)

    /// family, created, last, ip, ua for each active family; gone families leave the set.
    static let sessionsScript = RedisScript("""
        local out = {}
        for _, f in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            local h = redis.call('HMGET', 'auth:fam:' .. f, 'revoked', 'created', 'last', 'ip', 'ua')
            if not h[1] then
                redis.call('SREM', KEYS[1], f)
            elseif h[1] == '0' then
                table.insert(out, f)
                table.insert(out, h[2] or '')
                table.insert(out, h[3] or '')
                table.insert(out, h[4] or '')
                table.insert(out, h[5] or '')
            end
        end
        return out
        """)

    static let revokeAllScript = RedisScript("""
        local fams = redis.call('SMEMBERS', KEYS[1])
        local active = 0
        for _, f in ipairs(fams) do
            if redis.call('HGET', 'auth:fam:' .. f, 'revoked') == '0' then active = active + 1 end
            redis.call('HSET', 'auth:fam:' .. f, 'revoked', '1')
        end
        redis.call('DEL', KEYS[1])
        return active
        """)
}

/// Opaque secrets (refresh tokens, verification links): 256 random bits, base64url, with a
/// prefix that says what they are. Only their SHA-256 (``digest(_:)``) is ever stored.
public enum OpaqueToken {
    public static func random(prefix: String) -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return prefix + bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Lower-case hex SHA-256, for the Redis key that stands for the token.
    public static func digest(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).hexString }
}
