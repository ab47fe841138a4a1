import AiraPostgres
import Foundation
import Testing

/// A client whose connections live in a fresh schema of their own.
func isolatedPostgres(_ name: String) async throws -> (PostgresClient, String) {
    let schema = uniqueName(name).replacingOccurrences(of: ".", with: "_")
    let bootstrap = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
    try await bootstrap.query("CREATE SCHEMA \(identifier: schema)")
    await bootstrap.shutdown()
    let client = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 4, searchPath: schema))
    return (client, schema)
}

func dropSchema(_ client: PostgresClient, _ schema: String) async {
    _ = try? await client.query("DROP SCHEMA \(identifier: schema) CASCADE")
    await client.shutdown()
}

@Suite("PostgreSQL client", .enabled(if: TestServers.available))
struct PostgresClientTests {
    @Test("parameters are bound, never spliced")
    func parameters() async throws {
        let (pg, schema) = try await isolatedPostgres("pg.params")
        try await pg.query("CREATE TABLE t (id bigint PRIMARY KEY, name text, at timestamptz, ok boolean, u uuid, score double precision)")
        let evil = "x'); DROP TABLE t; --"
        let now = Date(timeIntervalSince1970: 1_763_000_000.25)
        let uuid = UUID()
        let nothing: String? = nil
        let r = try await pg.query("INSERT INTO t VALUES (\(1), \(evil), \(now), \(true), \(uuid), \(2.5)), (\(2), \(nothing), \(now), \(false), \(uuid), \(0.0))")
        #expect(r.affectedRows == 2)
        let rows = try await pg.query("SELECT * FROM t WHERE name = \(evil) OR name IS NULL ORDER BY id", prepared: true).rows
        #expect(rows.count == 2)
        #expect(try rows[0].decode("name", as: String.self) == evil)
        #expect(try rows[0].decode("id", as: Int.self) == 1)
        #expect(try rows[0].decode("ok", as: Bool.self))
        #expect(try rows[0].decode("u", as: UUID.self) == uuid)
        #expect(try rows[0].decode("score", as: Double.self) == 2.5)
        #expect(abs(try rows[0].decode("at", as: Date.self).timeIntervalSince(now)) < 0.001)
        #expect(try rows[1].decodeOptional("name", as: String.self) == nil)
        // The same prepared statement again, other values.
        let again = try await pg.query("SELECT * FROM t WHERE name = \("nobody") OR name IS NULL ORDER BY id", prepared: true).rows
        #expect(again.count == 1)
        await dropSchema(pg, schema)
    }

    @Test("server errors carry their SQLSTATE")
    func errors() async throws {
        let (pg, schema) = try await isolatedPostgres("pg.errors")
        try await pg.query("CREATE TABLE u (email text PRIMARY KEY)")
        try await pg.query("INSERT INTO u VALUES (\("a@example.com"))")
        await #expect {
            try await pg.query("INSERT INTO u VALUES (\("a@example.com"))")
        } throws: { error in
            (error as? PostgresError)?.isUniqueViolation == true
        }
        await #expect {
            try await pg.query("SELECT * FROM no_such_table")
        } throws: { error in
            (error as? PostgresError)?.sqlState == "42P01"
        }
        // The connection is still fine afterwards.
        #expect(try await pg.query("SELECT count(*) AS n FROM u").first?.decode("n", as: Int.self) == 1)
        await dropSchema(pg, schema)
    }

    @Test("transactions commit or roll back")
    func transactions() async throws {
        let (pg, schema) = try await isolatedPostgres("pg.tx")
        try await pg.query("CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))")
        try await pg.query("INSERT INTO acct VALUES (1, 100), (2, 0)")
        try await pg.withTransaction { tx in
            try await tx.query("UPDATE acct SET balance = balance - 60 WHERE id = 1")
            try await tx.query("UPDATE acct SET balance = balance + 60 WHERE id = 2")
        }
        await #expect(throws: PostgresError.self) {
            try await pg.withTransaction { tx in
                try await tx.query("UPDATE acct SET balance = balance + 60 WHERE id = 2")
                try await tx.query("UPDATE acct SET balance = balance - 60 WHERE id = 1") // violates the check
            }
        }
        let rows = try await pg.query("SELECT id, balance FROM acct ORDER BY id").rows
        #expect(try rows.map { try $0.decode("balance", as: Int.self) } == [40, 60])
        await dropSchema(pg, schema)
    }

    @Test("COPY bulk insert with awkward characters")
    func copy() async throws {
        let (pg, schema) = try await isolatedPostgres("pg.copy")
        try await pg.query("CREATE TABLE ev (id int, body text, at timestamptz)")
        let now = Date()
        let rows: [[(any PostgresBindable)?]] = (0..<5000).map { i in
            [i, i == 7 ? "tab\there\nnew line \\ backslash ü" : (i == 8 ? nil : "event \(i)"), now]
        }
        #expect(try await pg.copyIn(table: "ev", columns: ["id", "body", "at"], rows: rows) == 5000)
        let r = try await pg.query("SELECT body FROM ev WHERE id IN (7, 8) ORDER BY id").rows
        #expect(try r[0].decode("body", as: String.self) == "tab\there\nnew line \\ backslash ü")
        #expect(try r[1].decodeOptional("body", as: String.self) == nil)
        #expect(try await pg.query("SELECT count(*) AS n FROM ev").first?.decode("n", as: Int.self) == 5000)
        await dropSchema(pg, schema)
    }

    @Test("migrations apply once, in order, and notice edits")
    func migrations() async throws {
        let (pg, schema) = try await isolatedPostgres("pg.migrate")
        let migrator = PostgresMigrator(client: pg, logger: TestServers.logger)
        let m1 = Migration(version: 1, name: "create_items", sql: "CREATE TABLE items (id serial PRIMARY KEY, name text);")
        let m2 = Migration(version: 2, name: "add_price", sql: "ALTER TABLE items ADD COLUMN price int NOT NULL DEFAULT 0; CREATE INDEX items_price ON items (price);")
        // Two processes starting at once: the advisory lock serialises them.
        async let a = migrator.migrate([m2, m1])
        async let b = PostgresMigrator(client: pg, logger: TestServers.logger).migrate([m1, m2])
        let (ra, rb) = try await (a, b)
        #expect((ra + rb).sorted() == [1, 2])
        #expect(try await migrator.migrate([m1, m2]) == [])
        let broken = Migration(version: 3, name: "broken", sql: "CREATE TABLE x (id int); SELECT * FROM nope;")
        await #expect(throws: PostgresError.self) { try await migrator.migrate([m1, m2, broken]) }
        // The failed migration left nothing behind.
        #expect(try await pg.query("SELECT to_regclass('x') IS NULL AS gone").first?.decode("gone", as: Bool.self) == true)
        let edited = Migration(version: 1, name: "create_items", sql: "CREATE TABLE items (id bigserial);")
        await #expect {
            try await migrator.migrate([edited, m2])
        } throws: { error in
            "\(error)".contains("changed after it was applied")
        }
        await dropSchema(pg, schema)
    }

    @Test("PostgreSQL down: fails fast; hung: times out")
    func down() async throws {
        let refused = PostgresClient(configuration: PostgresConfiguration(url: "postgres://aira:aira@127.0.0.1:\(try closedPort())/aira"))
        let started = ContinuousClock.now
        await #expect {
            try await refused.query("SELECT 1")
        } throws: { error in
            guard let e = error as? PostgresError, case .connectFailed(let text) = e else { return false }
            return e.isRetriable && text.contains("refused")
        }
        #expect(ContinuousClock.now - started < .seconds(1))
        #expect(await refused.ping() == false)

        let silent = try SilentServer()
        let hung = PostgresClient(configuration: PostgresConfiguration(url: "postgres://aira:aira@127.0.0.1:\(silent.port)/aira"))
        let t0 = ContinuousClock.now
        await #expect(throws: PostgresError.self) { try await hung.query("SELECT 1") }
        #expect(ContinuousClock.now - t0 < .seconds(4)) // libpq's connect_timeout (2 s)

        // A query slower than the client's timeout is cut off.
        let (pg, schema) = try await isolatedPostgres("pg.timeout")
        let impatient = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, queryTimeout: .milliseconds(300)))
        let t1 = ContinuousClock.now
        await #expect {
            try await impatient.query("SELECT pg_sleep(5)")
        } throws: { error in
            if case PostgresError.timeout = error { return true }
            return false
        }
        #expect(ContinuousClock.now - t1 < .seconds(2))
        #expect(await impatient.ping()) // a fresh connection replaces the dropped one
        await impatient.shutdown()
        await dropSchema(pg, schema)
        withExtendedLifetime(silent) {}
    }
}
