import AiraPostgres
import Foundation

/// Users in PostgreSQL (table `users`, Shared/Migrations/0001_users.sql).
public struct AccountStore: Sendable {
    public let database: PostgresClient

    public init(database: PostgresClient) { self.database = database }

    public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
        case emailTaken
        case notFound
        public var description: String {
            switch self {
            case .emailTaken: "an account with this email exists"
            case .notFound: "no such account"
            }
        }
    }

    /// Creates an account; `email` must be normalized (``EmailAddress/normalize(_:)``).
    @discardableResult
    public func create(id: UUID = UUID(), email: String, passwordHash: String, role: Role, verified: Bool = false) async throws -> Account {
        let verifiedAt: Date? = verified ? Date() : nil
        do {
            let row = try await self.database.query("""
                INSERT INTO users (id, email, password_hash, role, email_verified_at)
                VALUES (\(id), \(email), \(passwordHash), \(role.rawValue), \(verifiedAt))
                RETURNING \(unsafeRaw: Self.columns)
                """).first
            return try Self.account(try row.orThrow(StoreError.notFound))
        } catch let error as PostgresError where error.isUniqueViolation {
            throw StoreError.emailTaken
        }
    }

    public func find(email: String) async throws -> Account? {
        try await self.database.query("SELECT \(unsafeRaw: Self.columns) FROM users WHERE lower(email) = lower(\(email))", prepared: true)
            .first.map(Self.account)
    }

    public func find(id: UUID) async throws -> Account? {
        try await self.database.query("SELECT \(unsafeRaw: Self.columns) FROM users WHERE id = \(id)", prepared: true)
            .first.map(Self.account)
    }

    public func setRole(_ role: Role, for id: UUID) async throws {
        let r = try await self.database.query("UPDATE users SET role = \(role.rawValue), updated_at = now() WHERE id = \(id)")
        guard r.affectedRows == 1 else { throw StoreError.notFound }
    }

    /// Replaces the password hash (and records when, for audit and token policy).
    public func setPassword(hash: String, for id: UUID) async throws {
        let r = try await self.database.query("""
            UPDATE users SET password_hash = \(hash), password_changed_at = now(), updated_at = now() WHERE id = \(id)
            """)
        guard r.affectedRows == 1 else { throw StoreError.notFound }
    }

    /// Suspends (or reinstates) an account; returns it as it is now.
    @discardableResult
    public func setSuspended(_ suspended: Bool, for id: UUID) async throws -> Account {
        let row = try await self.database.query("""
            UPDATE users SET suspended_at = CASE WHEN \(suspended) THEN coalesce(suspended_at, now()) ELSE NULL END,
                             updated_at = now()
            WHERE id = \(id) RETURNING \(unsafeRaw: Self.columns)
            """).first
        return try Self.account(try row.orThrow(StoreError.notFound))
    }

    /// Marks the email verified (idempotent: the first verification time is kept).
    @discardableResult
    public func markVerified(_ id: UUID) async throws -> Account {
        let row = try await self.database.query("""
            UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
            WHERE id = \(id) RETURNING \(unsafeRaw: Self.columns)
            """).first
        return try Self.account(try row.orThrow(StoreError.notFound))
    }

    /// Removes an account that never became usable (signup whose verification mail could not be queued).
    public func delete(_ id: UUID) async throws {
        _ = try await self.database.query("DELETE FROM users WHERE id = \(id)")
    }

    static let columns = "id, email, role, password_hash, email_verified_at, suspended_at, created_at"

    static func account(_ row: PostgresRow) throws -> Account {
        guard let role = Role(rawValue: try row.decode("role", as: String.self)) else {
            throw PostgresError.decoding(column: "role", value: try row.text("role"), expected: "USER or ADMIN")
        }
        return Account(id: try row.decode("id"), email: try row.decode("email"), role: role,
                       passwordHash: try row.decode("password_hash"), emailVerifiedAt: try row.decodeOptional("email_verified_at"),
                       suspendedAt: try row.decodeOptional("suspended_at"), createdAt: try row.decode("created_at"))
    }
}

extension Optional {
    func orThrow(_ error: @autoclosure () -> any Error) throws -> Wrapped {
        guard let value = self else { throw error() }
        return value
    }
}
