import AiraCore
import AiraPostgres
import Foundation

/// Refresh tokens in PostgreSQL: opaque, stored only as SHA-256 hashes, rotated on every use, in
/// sessions (one per login on a device; the tokens' "family").
///
/// Tables (migration 0008): `sessions` (id = the family, user, device, times, `revoked_at`) and
/// `refresh_tokens` (digest → session, `used_at`). Using a token that was already rotated is
/// reuse, which revokes its whole session (a stolen token stops working for the thief and the
/// owner alike). A token cannot outlive its session; each rotation extends the session to
/// `lifetime` from then. They live in the database, not in Redis, so a login works while Redis
/// is down and no session is lost when it restarts (docs/reliability.md).
public struct RefreshTokens: Sendable {
    public let database: PostgresClient
    public let lifetime: Duration

    public init(database: PostgresClient, lifetime: Duration = .seconds(30 * 86_400)) {
        self.database = database
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
        let family = UUID()
        let expires = self.expiry(from: now)
        try await self.database.query("""
            WITH session AS (
                INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
                VALUES (\(family), \(userID), \(now), \(now), \(expires), \(device.ip), \(device.userAgent))
                RETURNING id)
            INSERT INTO refresh_tokens (digest, session_id, expires_at) SELECT \(OpaqueToken.digest(token)), id, \(expires) FROM session
            """, prepared: true)
        return (token, family.lowercasedString)
    }

    /// Exchanges a token for a new one in the same family; `ip` becomes the session's last address.
    /// One statement: of two concurrent refreshes with one token, exactly one marks it used.
    public func rotate(_ token: String, ip: String? = nil, now: Date = Date()) async throws -> Rotation {
        guard Self.looksLikeToken(token) else { return .invalid }
        let next = Self.newToken()
        let digest = OpaqueToken.digest(token)
        let expires = self.expiry(from: now)
        let rotated = try await self.database.query("""
            WITH used AS (
                UPDATE refresh_tokens t SET used_at = \(now)
                FROM sessions s
                WHERE t.digest = \(digest) AND t.used_at IS NULL AND t.expires_at > \(now)
                  AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > \(now)
                RETURNING t.session_id),
            touched AS (
                UPDATE sessions s SET last_used_at = \(now), expires_at = \(expires),
                                      ip = CASE WHEN \(String((ip ?? "").prefix(64))) = '' THEN s.ip ELSE \(String((ip ?? "").prefix(64))) END
                FROM used WHERE s.id = used.session_id
                RETURNING s.id, s.user_id),
            fresh AS (
                INSERT INTO refresh_tokens (digest, session_id, expires_at)
                SELECT \(OpaqueToken.digest(next)), id, \(expires) FROM touched)
            SELECT id, user_id FROM touched
            """, prepared: true).first
        if let rotated {
            return .rotated(token: next, userID: try rotated.decode("user_id"), family: try rotated.decode("id", as: UUID.self).lowercasedString)
        }
        // Not rotated: unknown, expired, ended, or already used (reuse ends a live session).
        guard let row = try await self.database.query("""
            SELECT s.id, s.user_id, t.used_at IS NOT NULL AS used,
                   (s.revoked_at IS NULL AND s.expires_at > \(now) AND t.expires_at > \(now)) AS live
            FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.digest = \(digest)
            """, prepared: true).first,
            try row.decode("used", as: Bool.self), try row.decode("live", as: Bool.self) else { return .invalid }
        let family: UUID = try row.decode("id")
        let ended = try await self.database.query("UPDATE sessions SET revoked_at = \(now) WHERE id = \(family) AND revoked_at IS NULL")
        guard ended.affectedRows == 1 else { return .invalid }
        return .reused(userID: try row.decode("user_id"), family: family.lowercasedString)
    }

    /// Ends the family `token` belongs to (logout on this device). Returns whether it existed.
    @discardableResult
    public func revokeFamily(of token: String) async throws -> Bool {
        guard Self.looksLikeToken(token) else { return false }
        let row = try await self.database.query("""
            UPDATE sessions SET revoked_at = coalesce(revoked_at, now())
            WHERE id = (SELECT session_id FROM refresh_tokens WHERE digest = \(OpaqueToken.digest(token))) RETURNING id
            """).first
        return row != nil
    }

    /// Revokes a family; returns whether it was still active. With `userID`, only a family of
    /// that user (a session ended from the sessions page names one the caller must own).
    @discardableResult
    public func revoke(family: String, of userID: UUID? = nil) async throws -> Bool {
        guard let id = UUID(text: family) else { return false }
        let result: PostgresResult
        if let userID {
            result = try await self.database.query("""
                UPDATE sessions SET revoked_at = now()
                WHERE id = \(id) AND user_id = \(userID) AND revoked_at IS NULL AND expires_at > now()
                """)
        } else {
            result = try await self.database.query("""
                UPDATE sessions SET revoked_at = now() WHERE id = \(id) AND revoked_at IS NULL AND expires_at > now()
                """)
        }
        return result.affectedRows == 1
    }

    /// A session: one family that is not revoked.
    public struct Session: Sendable, Equatable {
        public var family: String
        public var createdAt: Date?
        public var lastUsedAt: Date?
        public var ip: String?
        public var userAgent: String?
    }

    /// The user's active sessions, most recently used first (expired and revoked ones left out).
    public func sessions(userID: UUID) async throws -> [Session] {
        let rows = try await self.database.query("""
            SELECT id, created_at, last_used_at, ip, user_agent FROM sessions
            WHERE user_id = \(userID) AND revoked_at IS NULL AND expires_at > now()
            ORDER BY last_used_at DESC, created_at DESC
            """, prepared: true).rows
        func text(_ value: String?) -> String? { value.flatMap { $0.isEmpty ? nil : $0 } }
        return try rows.map {
            Session(family: try $0.decode("id", as: UUID.self).lowercasedString, createdAt: try $0.decode("created_at"),
                    lastUsedAt: try $0.decode("last_used_at"), ip: text(try $0.decode("ip")),
                    userAgent: text(try $0.decode("user_agent")))
        }
    }

    /// Ends every family of the user (logout everywhere, password change, suspension).
    /// Returns how many were active.
    @discardableResult
    public func revokeAll(userID: UUID) async throws -> Int {
        try await self.database.query("""
            UPDATE sessions SET revoked_at = now() WHERE user_id = \(userID) AND revoked_at IS NULL AND expires_at > now()
            """).affectedRows
    }

    /// Whether a family is still valid (the gateway may check an access token's `sid`).
    public func isActive(family: String) async throws -> Bool {
        guard let id = UUID(text: family) else { return false }
        return try await self.database.query("""
            SELECT 1 FROM sessions WHERE id = \(id) AND revoked_at IS NULL AND expires_at > now()
            """, prepared: true).first != nil
    }

    /// Deletes sessions (with their tokens) that expired, or were revoked more than
    /// `revokedKept` ago, in batches of `batch`; returns how many.
    @discardableResult
    public func purge(revokedKept: Duration = .seconds(86_400), batch: Int = 5_000, now: Date = Date()) async throws -> Int {
        let revokedBefore = now.addingTimeInterval(-revokedKept.seconds)
        var total = 0
        while true {
            let n = try await self.database.query("""
                DELETE FROM sessions WHERE id IN (
                    SELECT id FROM sessions WHERE expires_at < \(now) OR revoked_at < \(revokedBefore) LIMIT \(batch))
                """).affectedRows
            total += n
            if n < batch { return total }
        }
    }

    // MARK: - Tokens

    func expiry(from now: Date) -> Date { now.addingTimeInterval(Double(max(1, self.lifetime.components.seconds))) }

    static func newToken() -> String { OpaqueToken.random(prefix: "rt_") }

    static func looksLikeToken(_ token: String) -> Bool { token.hasPrefix("rt_") && token.count == 46 }
}
