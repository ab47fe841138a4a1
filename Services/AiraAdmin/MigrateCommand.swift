import AiraCore
import AiraPostgres
import ArgumentParser
import Foundation
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the SQL migrations (NNNN_name.sql) that are not applied yet, in order, once each.")

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $AIRA_DATABASE_URL).")
    var databaseURL: String?
    @Option(help: "Folder of NNNN_name.sql files (default: $AIRA_MIGRATIONS_DIR or Shared/Migrations).")
    var dir: String?

    func run() async throws {
        let env = EnvironmentReader()
        let folder = URL(fileURLWithPath: dir ?? env.string("AIRA_MIGRATIONS_DIR", default: "Shared/Migrations"))
        let migrations: [Migration]
        do {
            migrations = try Migration.load(from: folder)
        } catch {
            throw CLIError("cannot read migrations from \(folder.path): \(error)")
        }
        // A migration may build an index over millions of rows: minutes, not the usual 30 s.
        let client = adminDatabase(databaseURL, queryTimeout: .seconds(3600))
        var logger = Logger(label: "aira-admin")
        logger.logLevel = .warning
        do {
            let applied = try await PostgresMigrator(client: client, logger: logger).migrate(migrations)
            await client.shutdown()
            print(applied.isEmpty ? "up to date (\(migrations.count) migrations)" : "applied \(applied.map(String.init).joined(separator: ", "))")
        } catch {
            await client.shutdown()
            throw CLIError("migration failed: \(error)")
        }
    }
}
