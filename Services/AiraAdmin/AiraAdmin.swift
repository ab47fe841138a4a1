import AiraAMQP
import AiraCore
import AiraMessaging
import AiraPostgres
import ArgumentParser
import Foundation
import Logging

/// aira-admin: the operator's CLI. Connection settings come from the same AIRA_* variables as
/// the services (docs/configuration.md).
@main
struct AiraAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aira-admin",
        abstract: "Operate Aira: queue health, dead letters (inspect, replay, purge), migrations, the first admin, the nightly analysis.",
        subcommands: [Queues.self, DLQ.self, Migrate.self, User.self, Keys.self, Analysis.self, DB.self, Topology.self])
}

/// Options every command that talks to the broker shares.
struct BrokerOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "Broker URL (default: $AIRA_AMQP_URL or amqp://guest:guest@127.0.0.1:5672/).")
    var amqpURL: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func connect() async throws -> AMQPConnection {
        let url = amqpURL ?? EnvironmentReader().string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")
        var config = try AMQPConfiguration(url: url, connectionName: "aira-admin")
        config.connectTimeout = .seconds(3)
        var logger = Logger(label: "aira-admin")
        logger.logLevel = .error
        do {
            return try await AMQPConnection.connect(configuration: config, logger: logger, timeout: .seconds(5))
        } catch {
            throw CLIError("cannot reach the broker at \(config.nodes.map(\.description).joined(separator: ", ")): \(error)")
        }
    }
}

/// The database client of a command: `--database-url` or `$AIRA_DATABASE_URL`, in
/// `$AIRA_DATABASE_SCHEMA` when set (as every service reads them).
func adminDatabase(_ url: String?, queryTimeout: Duration = .seconds(30)) -> PostgresClient {
    let env = EnvironmentReader()
    let schema = env.string("AIRA_DATABASE_SCHEMA", default: "")
    return PostgresClient(configuration: PostgresConfiguration(
        url: url ?? env.string("AIRA_DATABASE_URL", default: "postgres://aira:aira@127.0.0.1:5432/aira"),
        poolSize: 1, queryTimeout: queryTimeout,
        // An operator's command waits longer for a busy server than a service that must fail fast.
        connectTimeoutSeconds: 10, searchPath: schema.isEmpty ? nil : schema, applicationName: "aira-admin"))
}

/// A failure the CLI reports as one line on stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reads `--since`: an ISO 8601 time, or an age such as `30m`, `2h`, `1d`.
func parseSince(_ text: String) throws -> Date {
    if let date = parseISO8601(text) { return date }
    if text.hasSuffix("d"), let days = Double(text.dropLast()) { return Date().addingTimeInterval(-days * 86400) }
    if let d = EnvironmentReader.parseDuration(text) { return Date().addingTimeInterval(-d.seconds) }
    throw ValidationError("--since \(text): expected an ISO 8601 time (2026-11-21T08:00:00Z) or an age (30m, 2h, 1d)")
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A plain text table.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    print(line(header))
    for r in rows { print(line(r)) }
}

func formatAge(_ seconds: Double?) -> String {
    guard let s = seconds else { return "-" }
    switch s {
    case ..<120: return "\(Int(s))s"
    case ..<7200: return "\(Int(s / 60))m"
    case ..<172_800: return "\(Int(s / 3600))h"
    default: return "\(Int(s / 86400))d"
    }
}
