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
    @Option(help: ArgumentHelp("Apply nothing: wait up to this long (e.g. 10m) until every migration of the folder has been applied by another process (the migration Job), then exit 0; exit 1 if that time passes.",
                               valueName: "duration"))
    var wait: String?

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
        if let wait {
            guard let limit = EnvironmentReader.parseDuration(wait) else { throw ValidationError("--wait: expected a duration like 10m") }
            try await self.waitUntilApplied(migrations, client: client, logger: logger, limit: limit)
            return
        }
        do {
            let applied = try await PostgresMigrator(client: client, logger: logger).migrate(migrations)
            await client.shutdown()
            print(applied.isEmpty ? "up to date (\(migrations.count) migrations)" : "applied \(applied.map(String.init).joined(separator: ", "))")
        } catch {
            await client.shutdown()
            throw CLIError("migration failed: \(error)")
        }
    }

    /// Polls every 2 s (what a service's init container runs while the Job migrates).
    func waitUntilApplied(_ migrations: [Migration], client: PostgresClient, logger: Logger, limit: Duration) async throws {
        let migrator = PostgresMigrator(client: client, logger: logger)
        let deadline = ContinuousClock.now + limit
        var lastReport = ContinuousClock.now - .seconds(60)
        while true {
            var pending: [Int]? = nil
            var problem = ""
            do {
                pending = try await migrator.pending(migrations)
            } catch {
                problem = "\(error)"
            }
            if pending?.isEmpty == true {
                await client.shutdown()
                print("up to date (\(migrations.count) migrations)")
                return
            }
            if ContinuousClock.now >= deadline {
                await client.shutdown()
                throw CLIError(pending.map { "migrations \($0.map(String.init).joined(separator: ", ")) still not applied after \(wait ?? "")" }
                               ?? "database not reachable: \(problem)")
            }
            if ContinuousClock.now - lastReport >= .seconds(10) {
                print(pending.map { "waiting for migrations \($0.map(String.init).joined(separator: ", "))" } ?? "waiting for the database: \(problem)")
                lastReport = ContinuousClock.now
            }
            try await Task.sleep(for: .seconds(2))
        }
    }
}
