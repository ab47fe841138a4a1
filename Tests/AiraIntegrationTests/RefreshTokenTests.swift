import AiraPostgres
import AiraTokens
import Foundation
import Testing

@Suite("Refresh tokens in PostgreSQL: rotation, reuse detection, revocation, expiry", .enabled(if: TestServers.available), .serialized)
struct RefreshTokenTests {
    let tokens: RefreshTokens
    let database: PostgresClient

    init() async throws {
        try await ServiceStack.migrate()
        database = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 4))
        tokens = RefreshTokens(database: database, lifetime: .seconds(3600))
    }

    @Test("every use rotates; only the hash is stored; each use extends the session")
    func rotation() async throws {
        let user = UUID()
        let (first, family) = try await tokens.issue(userID: user)
        guard case .rotated(let second, let u, let f) = try await tokens.rotate(first) else {
            Issue.record("first rotation failed"); return
        }
        #expect(u == user && f == family && second != first)
        let used = Date()
        guard case .rotated = try await tokens.rotate(second, now: used) else { Issue.record("second rotation failed"); return }
        let stored = try await database.query("SELECT digest FROM refresh_tokens WHERE session_id = \(UUID(text: family)!)").rows
        // Three tokens so far, each stored as its SHA-256 only.
        let digests = Set(try stored.map { try $0.decode("digest", as: String.self) })
        #expect(digests.count == 3 && digests.isSuperset(of: [OpaqueToken.digest(first), OpaqueToken.digest(second)]))
        let expires = try #require(try await database.query("SELECT expires_at FROM sessions WHERE id = \(UUID(text: family)!)").first)
        #expect(abs((try expires.decode("expires_at", as: Date.self)).timeIntervalSince(used) - 3600) < 1)
        #expect(try await tokens.rotate("rt_not-a-real-token") == .invalid)
        #expect(try await tokens.rotate("garbage") == .invalid)
    }

    @Test("reusing a rotated token revokes the whole family")
    func reuse() async throws {
        let user = UUID()
        let (stolen, family) = try await tokens.issue(userID: user)
        guard case .rotated(let current, _, _) = try await tokens.rotate(stolen) else { Issue.record("rotation failed"); return }
        #expect(try await tokens.rotate(stolen) == .reused(userID: user, family: family))
        #expect(try await tokens.rotate(current) == .invalid) // the legitimate holder is logged out too
        #expect(try await tokens.isActive(family: family) == false)
    }

    @Test("concurrent refreshes with one token: exactly one wins")
    func race() async throws {
        let (token, _) = try await tokens.issue(userID: UUID())
        let results = try await withThrowingTaskGroup(of: RefreshTokens.Rotation.self) { group in
            for _ in 0..<10 { group.addTask { try await tokens.rotate(token) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { if case .rotated = $0 { true } else { false } }.count == 1)
    }

    @Test("logout ends one device; logout-all ends every device")
    func revocation() async throws {
        let user = UUID()
        let (phone, phoneFamily) = try await tokens.issue(userID: user)
        let (laptop, _) = try await tokens.issue(userID: user)
        let (tablet, _) = try await tokens.issue(userID: user)
        #expect(try await tokens.revokeFamily(of: phone))
        #expect(try await tokens.rotate(phone) == .invalid)
        #expect(try await tokens.isActive(family: phoneFamily) == false)
        guard case .rotated(let laptop2, _, _) = try await tokens.rotate(laptop) else { Issue.record("laptop lost its session"); return }
        #expect(try await tokens.revokeAll(userID: user) == 2)
        #expect(try await tokens.rotate(laptop2) == .invalid)
        #expect(try await tokens.rotate(tablet) == .invalid)
        #expect(try await tokens.revokeFamily(of: "rt_unknown") == false)
        #expect(try await tokens.revoke(family: "no-such-family") == false)
        #expect(try await tokens.revoke(family: UUID().uuidString) == false)
        // revoke says whether the session was still active (logout reports it).
        let (_, other) = try await tokens.issue(userID: UUID())
        #expect(try await tokens.revoke(family: other) == true)
        #expect(try await tokens.revoke(family: other) == false)
    }

    @Test("sessions: device and times per family, newest use first; ended ones left out; a family ends only for its own user")
    func sessions() async throws {
        let user = UUID()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let (laptop, laptopFamily) = try await tokens.issue(userID: user, device: .init(ip: "10.0.0.1", userAgent: "Laptop"), now: t0)
        let (_, phoneFamily) = try await tokens.issue(userID: user, device: .init(ip: "10.0.0.2", userAgent: "Phone"), now: t0.addingTimeInterval(10))
        guard case .rotated = try await tokens.rotate(laptop, ip: "10.0.0.9", now: t0.addingTimeInterval(60)) else {
            Issue.record("rotation failed"); return
        }
        let sessions = try await tokens.sessions(userID: user)
        #expect(sessions.map(\.family) == [laptopFamily, phoneFamily])
        #expect(sessions[0].ip == "10.0.0.9" && sessions[0].userAgent == "Laptop")
        #expect(sessions[0].createdAt == t0 && sessions[0].lastUsedAt == t0.addingTimeInterval(60))

        #expect(try await tokens.revoke(family: phoneFamily, of: UUID()) == false)
        #expect(try await tokens.sessions(userID: user).count == 2)
        #expect(try await tokens.revoke(family: phoneFamily, of: user))
        #expect(try await tokens.sessions(userID: user).map(\.family) == [laptopFamily])
        _ = try await database.query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = \(UUID(text: laptopFamily)!)")
        #expect(try await tokens.sessions(userID: user).isEmpty)  // expired
        #expect(try await tokens.rotate(laptop) == .invalid)
    }

    @Test("an expired token cannot be used even within a live session; purge deletes ended sessions with their tokens")
    func expiryAndPurge() async throws {
        let short = RefreshTokens(database: database, lifetime: .seconds(60))
        let user = UUID()
        let t0 = Date().addingTimeInterval(-3600)
        let (old, oldFamily) = try await short.issue(userID: user, now: t0)
        #expect(try await short.rotate(old) == .invalid)  // expired 59 minutes ago
        let (_, revokedFamily) = try await short.issue(userID: user)
        #expect(try await short.revoke(family: revokedFamily))
        let (live, liveFamily) = try await short.issue(userID: user)
        // Revoked sessions are kept a day (then purged); expired ones go at once.
        _ = try await short.purge()
        func exists(_ family: String) async throws -> Bool {
            try await database.query("SELECT 1 FROM sessions WHERE id = \(UUID(text: family)!)").first != nil
        }
        #expect(try await exists(oldFamily) == false)
        #expect(try await database.query("SELECT 1 FROM refresh_tokens WHERE session_id = \(UUID(text: oldFamily)!)").first == nil)
        #expect(try await exists(revokedFamily))
        _ = try await short.purge(now: Date().addingTimeInterval(86_400 + 120))
        #expect(try await exists(revokedFamily) == false)
        #expect(try await exists(liveFamily) == false)  // by then expired too
        #expect(try await short.rotate(live) == .invalid)
    }
}
