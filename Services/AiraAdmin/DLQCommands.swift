import AiraCore
import AiraAMQP
import AiraContracts
import AiraMessaging
import ArgumentParser
import Foundation
import Logging

struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, replay and purge dead-letter queues.",
        subcommands: [List.self, Show.self, Replay.self, Purge.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dead-letter queues with their depth and the oldest message's age.")

        @OptionGroup var broker: BrokerOptions
        @Argument(help: "Consumer queues (Q or Q.dlq); default: $AIRA_QUEUES (comma-separated), else every queue of Aira's topology.")
        var queues: [String] = []

        func run() async throws {
            let names = knownQueues(self.queues)
            let connection = try await broker.connect()
            let statuses = try await DeadLetterQueues(connection: connection, logger: Logger(label: "aira-admin")).status(of: names)
            await connection.close()
            if broker.json { return try printJSON(statuses) }
            printTable(["DLQ", "MESSAGES", "OLDEST"], statuses.map { [$0.queue, "\($0.depth)", formatAge($0.oldestAgeSeconds)] })
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each dead message with why it died. Messages stay in the DLQ.")

        @OptionGroup var broker: BrokerOptions
        @OptionGroup var filter: FilterOptions
        @Argument(help: "The consumer queue (Q) or its DLQ (Q.dlq).") var queue: String
        @Option(help: "Show at most this many.") var limit: Int = 50
        @Flag(help: "Include each message's body.") var body = false

        func run() async throws {
            let connection = try await broker.connect()
            let letters = try await DeadLetterQueues(connection: connection, logger: Logger(label: "aira-admin"))
                .show(queue, filter: try filter.filter(), limit: limit)
            await connection.close()
            let views = letters.map { DeadLetterView($0, includeBody: body) }
            if broker.json { return try printJSON(views) }
            if views.isEmpty { print("no matching dead letters in \(DeadLetterQueues.deadLetterQueue(for: queue))") }
            for v in views {
                print("""
                    \(v.id)  \(v.type ?? "-")  attempts \(v.attempts)  \(v.disposition ?? "-")
                      error:        [\(v.errorType ?? "-")] \(v.error ?? "-")
                      failed:       first \(v.firstFailedAt.map(iso8601) ?? "-"), last \(v.lastFailedAt.map(iso8601) ?? "-")
                      routing key:  \(v.originalRoutingKey ?? "-")   queue: \(v.queue ?? "-")
                    """)
                if let b = v.body { print("  body:         \(b)") }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move dead letters back to their queue (attempts reset, x-aira-replayed-at set).",
            discussion: """
                Each message is republished to its queue and confirmed by the broker before it is \
                removed from the DLQ, so a crash in the middle can duplicate a message but never lose \
                one (consumers are idempotent). Messages that do not match stay in the DLQ, in order.
                """)

        @OptionGroup var broker: BrokerOptions
        @OptionGroup var filter: FilterOptions
        @Argument(help: "The consumer queue (Q) or its DLQ (Q.dlq).") var queue: String
        @Flag(help: "Replay every dead letter (required when no filter is given).") var all = false
        @Flag(help: "Show what would be moved; move nothing.") var dryRun = false
        @Option(help: "Move at most this many.") var limit: Int?
        @Option(help: "Move at most this many per second.") var rate: Double?

        func validate() throws {
            if !all && filter.isEmpty { throw ValidationError("say what to replay: --all, --id, --type, --error or --since") }
            if all && !filter.isEmpty { throw ValidationError("--all cannot be combined with a filter") }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            if let rate, rate <= 0 { throw ValidationError("--rate must be above 0") }
        }

        func run() async throws {
            let connection = try await broker.connect()
            let json = broker.json
            let report = try await DeadLetterQueues(connection: connection, logger: Logger(label: "aira-admin"))
                .replay(queue, filter: try filter.filter(), limit: limit ?? .max, ratePerSecond: rate, dryRun: dryRun) { letter in
                    if !json { print("moved \(letter.messageID) \(letter.type ?? "-")") }
                }
            await connection.close()
            if json { return try printJSON(report) }
            if dryRun { for id in report.moved { print("would move \(id)") } }
            print("\(dryRun ? "would move" : "moved") \(report.moved.count) of \(report.matched) matching (\(report.scanned) scanned) from \(report.queue) to \(report.target)")
            if report.incomplete {
                print("note: not every dead letter was scanned (more than 65,535 kept at once, or another consumer took some); run again for the rest")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead letters: all, or by id.")

        @OptionGroup var broker: BrokerOptions
        @Argument(help: "The consumer queue (Q) or its DLQ (Q.dlq).") var queue: String
        @Option(name: .customLong("id"), help: "Delete only these message ids (repeatable).") var ids: [String] = []
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            let dlq = DeadLetterQueues.deadLetterQueue(for: queue)
            if !yes {
                let what = ids.isEmpty ? "ALL messages" : "\(ids.count) message(s)"
                print("Delete \(what) from \(dlq)? Type 'yes' to confirm: ", terminator: "")
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                    throw CLIError("not confirmed; nothing deleted")
                }
            }
            let connection = try await broker.connect()
            let removed = try await DeadLetterQueues(connection: connection, logger: Logger(label: "aira-admin"))
                .purge(queue, ids: Set(ids))
            await connection.close()
            if broker.json { return try printJSON(["queue": dlq, "deleted": "\(removed)"]) }
            print("deleted \(removed) from \(dlq)")
        }
    }
}

/// The filters shared by show and replay.
struct FilterOptions: ParsableArguments {
    @Option(name: .customLong("id"), help: "Only these message ids (repeatable).") var ids: [String] = []
    @Option(help: "Only this message type (e.g. audit.event.v1).") var type: String?
    @Option(help: "Only messages whose error text or type contains this (case-insensitive).") var error: String?
    @Option(help: "Only messages that last failed since this time (ISO 8601) or age (30m, 2h, 1d).") var since: String?

    var isEmpty: Bool { ids.isEmpty && type == nil && error == nil && since == nil }

    func filter() throws -> DeadLetterFilter {
        DeadLetterFilter(ids: Set(ids), type: type, errorContains: error, since: try since.map(parseSince))
    }
}

/// Queues named on the command line, else $AIRA_QUEUES, else every consumer queue of Aira's topology.
func knownQueues(_ given: [String]) -> [String] {
    if !given.isEmpty { return given }
    let env = ProcessInfo.processInfo.environment["AIRA_QUEUES"]?.split(separator: ",").map {
        $0.trimmingCharacters(in: .whitespaces)
    }.filter { !$0.isEmpty } ?? []
    return env.isEmpty ? AiraTopology.consumerQueues().map(\.name) : env
}
