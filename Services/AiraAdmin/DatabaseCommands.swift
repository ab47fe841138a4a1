import AiraPostgres
import ArgumentParser
import Foundation

struct DB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Look into PostgreSQL: the slowest statements, the read replica.",
        subcommands: [Slow.self, Replica.self])

    struct Slow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The statements that cost the most time (pg_stat_statements), with calls, mean and max.",
            discussion: """
                Needs the pg_stat_statements extension (scripts/servers loads and creates it). Figures accumulate \
                since the server started or since --reset. Sort by total time (the default: what costs the \
                database most), mean time (what is slow each time) or calls.
                """)

        @Option(help: "How many statements.") var limit = 10
        @Option(help: "total, mean or calls.") var sort = "total"
        @Option(help: "Show at most this many characters of each statement.") var width = 160
        @Flag(help: "Print JSON instead of a table.") var json = false
        @Flag(help: "Clear the figures after printing them.") var reset = false
        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $AIRA_DATABASE_URL).") var databaseURL: String?

        struct Statement: Encodable {
            var query: String
            var calls: Int
            var totalMs: Double
            var meanMs: Double
            var maxMs: Double
            var rows: Int
            var sharedBlocksHitPercent: Double?
        }

        func run() async throws {
            guard (1...500).contains(limit) else { throw ValidationError("--limit must be 1...500") }
            let order: String
            switch sort {
            case "total": order = "total_exec_time"
            case "mean": order = "mean_exec_time"
            case "calls": order = "calls"
            default: throw ValidationError("--sort must be total, mean or calls")
            }
            let client = adminDatabase(databaseURL)
            defer { Task { await client.shutdown() } }
            let rows: [PostgresRow]
            do {
                rows = try await client.query(PostgresQuery(unsafeSQL: """
                    SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows,
                           CASE WHEN shared_blks_hit + shared_blks_read > 0
                                THEN 100.0 * shared_blks_hit / (shared_blks_hit + shared_blks_read) END AS hit
                    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                    ORDER BY \(order) DESC LIMIT $1
                    """, binds: [limit])).rows
            } catch let error as PostgresError where error.sqlState == "42P01" || error.sqlState == "55000" {
                throw CLIError("pg_stat_statements is not available: \(error). Start PostgreSQL with " +
                               "shared_preload_libraries=pg_stat_statements and CREATE EXTENSION pg_stat_statements (scripts/servers does both).")
            }
            let statements = try rows.map { row in
                Statement(query: try row.decode("query"), calls: try row.decode("calls"), totalMs: try row.decode("total_exec_time"),
                          meanMs: try row.decode("mean_exec_time"), maxMs: try row.decode("max_exec_time"), rows: try row.decode("rows"),
                          sharedBlocksHitPercent: try row.decodeOptional("hit"))
            }
            if json {
                try printJSON(statements)
            } else if statements.isEmpty {
                print("no statements recorded yet")
            } else {
                let oneLine = { (q: String) -> String in
                    let flat = q.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
                    return flat.count > width ? String(flat.prefix(width - 1)) + "…" : flat
                }
                printTable(["CALLS", "TOTAL", "MEAN", "MAX", "ROWS", "CACHE HIT", "STATEMENT"], statements.map { s in
                    ["\(s.calls)", String(format: "%.0f ms", s.totalMs), String(format: "%.2f ms", s.meanMs), String(format: "%.1f ms", s.maxMs),
                     "\(s.rows)", s.sharedBlocksHitPercent.map { String(format: "%.1f%%", $0) } ?? "-", oneLine(s.query)]
                })
            }
            // After printing: what is cleared has been shown.
            if reset {
                do { try await client.query("SELECT pg_stat_statements_reset()") } catch {
                    throw CLIError("not reset (\(error)): the role needs EXECUTE on pg_stat_statements_reset, which scripts/servers grants")
                }
            }
        }
    }

    struct Replica: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Whether the read replica (AIRA_DATABASE_READ_URL) is a standby, and how far behind the primary it is.")

        @Option(name: .customLong("database-url"), help: "The primary's URL (default: $AIRA_DATABASE_URL).") var databaseURL: String?
        @Option(name: .customLong("read-url"), help: "The replica's URL (default: $AIRA_DATABASE_READ_URL).") var readURL: String?

        func run() async throws {
            guard let url = readURL ?? ProcessInfo.processInfo.environment["AIRA_DATABASE_READ_URL"], !url.isEmpty else {
                throw CLIError("no replica: set AIRA_DATABASE_READ_URL or pass --read-url")
            }
            let primary = adminDatabase(databaseURL)
            let replica = adminDatabase(url)
            let router = PostgresReadRouter(primary: primary, replica: replica, maxLag: .seconds(3600))
            let status = await router.check()
            await primary.shutdown()
            await replica.shutdown()
            guard status.reason?.hasPrefix("unreachable") != true else { throw CLIError("replica \(status.reason!)") }
            print("replica: \(status.reason ?? "streaming"), lag \(status.lagSeconds.map { String(format: "%.2f s", $0) } ?? "unknown"), " +
                  "replayed up to \(status.replayedLSN >> 32)/\(String(status.replayedLSN & 0xffff_ffff, radix: 16, uppercase: true))")
        }
    }
}
