import AiraAnalysis
import AiraCore
import AiraPostgres
import ArgumentParser
import Foundation

struct Analysis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The nightly analysis: request a run on purpose, see runs and their progress.",
        subcommands: [Run.self, Status.self])

    struct DatabaseOptions: ParsableArguments {
        @Option(name: .customLong("database-url"), help: "PostgreSQL URL (default: $AIRA_DATABASE_URL).") var databaseURL: String?

        func runs() -> (AnalysisRuns, PostgresClient) {
            let client = adminDatabase(databaseURL)
            return (AnalysisRuns(database: client), client)
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run (or re-run) the analysis of a day: the next analyzer check picks it up.",
            discussion: """
                A day that was already analysed is re-run as its next generation: its counts start again and the users' \
                insights are replaced; jobs of the previous generation still queued are ignored. Needs at least one \
                aira-analyzer running (it checks every AIRA_ANALYZER_CHECK_INTERVAL).
                """)

        @Option(help: "The day to analyse, yyyy-MM-dd (its active users, the 28 days ending with it).") var date: String
        @Option(help: "Time zone of the day (default: $AIRA_ANALYZER_TIMEZONE or the machine's).") var timezone: String?
        @Flag(help: "Wait until the run completes, printing its progress.") var wait = false
        @Option(help: "With --wait: give up after this long (e.g. 30m).") var timeout: String = "1h"
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            guard let day = Day(date) else { throw ValidationError("--date \(date): expected yyyy-MM-dd") }
            let zone = timezone ?? EnvironmentReader().string("AIRA_ANALYZER_TIMEZONE", default: TimeZone.current.identifier)
            guard TimeZone(identifier: zone) != nil else { throw ValidationError("--timezone \(zone): not a known time zone") }
            guard let limit = EnvironmentReader.parseDuration(timeout) else { throw ValidationError("--timeout \(timeout): expected e.g. 30s, 10m, 1h") }
            let (runs, client) = database.runs()
            defer { Task { await client.shutdown() } }
            let requested: AnalysisRun
            do {
                requested = try await runs.request(day, timezone: zone)
            } catch PostgresError.server(let state, _, _) where state == "42P01" {
                throw CLIError("the analysis tables do not exist: run `aira-admin migrate` first")
            } catch {
                throw CLIError("cannot request the run: \(error)")
            }
            print("requested the analysis of \(day) (generation \(requested.generation), time zone \(zone))")
            guard wait else { return }
            let deadline = ContinuousClock.now + limit
            var last = ""
            while ContinuousClock.now < deadline {
                guard let run = try await runs.run(day), run.generation == requested.generation else {
                    throw CLIError("the run of \(day) was requested again by someone else; stopped waiting")
                }
                let line = Status.progress(run)
                if line != last { print(line); last = line }
                if run.status == .completed { return }
                try await Task.sleep(for: .seconds(1))
            }
            throw CLIError("the run of \(day) did not complete within \(timeout) (is an aira-analyzer running?)")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the latest runs with their progress and model quality.")

        @Option(help: "How many runs, newest first.") var limit = 10
        @Flag(help: "Print JSON instead of a table.") var json = false
        @OptionGroup var database: DatabaseOptions

        static func progress(_ run: AnalysisRun) -> String {
            "\(run.day) \(run.status.rawValue): published \(run.published)/\(run.usersTotal), done \(run.succeeded), failed \(run.failed)"
        }

        func run() async throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1...1000") }
            let (runs, client) = database.runs()
            defer { Task { await client.shutdown() } }
            let list: [AnalysisRun]
            do {
                list = try await runs.list(limit: limit)
            } catch {
                throw CLIError("cannot read the runs: \(error)")
            }
            if json { return try printJSON(list) }
            if list.isEmpty { print("no analysis runs yet"); return }
            func pct(_ n: Int, _ of: Int) -> String { of == 0 ? "-" : "\(n * 100 / of)%" }
            printTable(["DAY", "GEN", "STATUS", "TRIGGER", "USERS", "PUBLISHED", "DONE", "FAILED", "PROGRESS", "DURATION", "AUC", "LOG-LOSS", "HOLDER"],
                       list.map { r in
                           [r.day.description, "\(r.generation)", r.status.rawValue, r.trigger, "\(r.usersTotal)", "\(r.published)",
                            "\(r.succeeded)", "\(r.failed)", pct(r.finished, r.usersTotal),
                            r.durationMs.map { String(format: "%.1fs", Double($0) / 1000) } ?? "-",
                            r.model?.fit.auc.map { String(format: "%.3f", $0) } ?? "-",
                            r.model?.fit.logLoss.map { String(format: "%.3f", $0) } ?? "-", r.holder ?? "-"]
                       })
        }
    }
}
