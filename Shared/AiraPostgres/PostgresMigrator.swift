import Foundation
import Logging

/// One SQL migration: applied once, in version order, inside a transaction.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A stable fingerprint of the SQL, so an edited, already-applied migration is noticed.
    public var checksum: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a
        for b in self.sql.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }

    /// Loads `NNNN_name.sql` files from a folder.
    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
        return try files.map { url in
            let base = url.deletingPathExtension().lastPathComponent
            guard let underscore = base.firstIndex(of: "_"), let version = Int(base[..<underscore]) else {
                throw PostgresError.invalidMigration("\(url.lastPathComponent): expected NNNN_name.sql")
            }
            return Migration(version: version, name: String(base[base.index(after: underscore)...]),
                             sql: try String(contentsOf: url, encoding: .utf8))
        }.sorted { $0.version < $1.version }
    }
}

/// Applies migrations once each, in order, holding an advisory lock so that several processes
/// starting together do not race. Records each in `aira_schema_migrations`.
public struct PostgresMigrator: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The versions of `migrations` not applied yet (all of them on a database never migrated).
    /// Reads only: what a service waiting for the migration Job asks.
    public func pending(_ migrations: [Migration]) async throws -> [Int] {
        try await self.client.withConnection { conn in
            let exists = try await conn.query("SELECT to_regclass('aira_schema_migrations') IS NOT NULL AS exists").rows.first
            guard try exists?.decode("exists", as: Bool.self) == true else { return migrations.map(\.version).sorted() }
            var applied = Set<Int>()
            for row in try await conn.query("SELECT version FROM aira_schema_migrations").rows {
                applied.insert(try row.decode("version"))
            }
            return migrations.map(\.version).filter { !applied.contains($0) }.sorted()
        }
    }

    /// Returns the versions it applied now.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [Int] {
        let versions = migrations.map(\.version)
        guard Set(versions).count == versions.count else { throw PostgresError.invalidMigration("duplicate versions \(versions)") }
        let ordered = migrations.sorted { $0.version < $1.version }
        let logger = self.logger
        return try await self.client.withConnection { conn in
            try await conn.query("SELECT pg_advisory_lock(727274)")
            do {
                try await conn.query("""
                    CREATE TABLE IF NOT EXISTS aira_schema_migrations (
                        version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())
                    """)
                var applied: [Int: String] = [:]
                for row in try await conn.query("SELECT version, checksum FROM aira_schema_migrations").rows {
                    applied[try row.decode("version")] = try row.decode("checksum", as: String.self)
                }
                var done: [Int] = []
                for m in ordered {
                    if let checksum = applied[m.version] {
                        if checksum != m.checksum {
                            throw PostgresError.invalidMigration("migration \(m.version)_\(m.name) changed after it was applied")
                        }
                        continue
                    }
                    try await conn.query("BEGIN")
                    do {
                        try await conn.executeScript(unsafeSQL: m.sql)
                        try await conn.query("INSERT INTO aira_schema_migrations (version, name, checksum) VALUES (\(m.version), \(m.name), \(m.checksum))")
                        try await conn.query("COMMIT")
                    } catch {
                        _ = try? await conn.query("ROLLBACK")
                        throw error
                    }
                    logger.info("migration applied", metadata: ["version": "\(m.version)", "name": "\(m.name)"])
                    done.append(m.version)
                }
                try await conn.query("SELECT pg_advisory_unlock(727274)")
                return done
            } catch {
                _ = try? await conn.query("SELECT pg_advisory_unlock(727274)")
                throw error
            }
        }
    }
}
