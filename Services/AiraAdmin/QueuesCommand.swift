import AiraAMQP
import AiraCore
import AiraMessaging
import ArgumentParser
import Foundation

struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each consumer queue with its ready messages, consumers, and messages waiting in retry tiers and the DLQ.",
        discussion: "Counts come over AMQP (passive declare): unacknowledged counts need the management UI or rabbitmqctl.")

    @OptionGroup var broker: BrokerOptions
    @Argument(help: "Consumer queues; default: $AIRA_QUEUES (comma-separated).") var queues: [String] = []
    @Option(help: "Retry tiers to look for (as configured), e.g. 1s,10s,1m,10m.")
    var tiers: String = "1s,10s,1m,10m"
    @Flag(help: "Refresh every 2 seconds until interrupted.") var watch = false

    struct Row: Encodable {
        var queue: String
        var ready: UInt32?
        var consumers: UInt32?
        var retrying: UInt32
        var deadLetters: UInt32?
    }

    func run() async throws {
        let names = try knownQueues(queues).map(DeadLetterQueues.workQueue(for:))
        guard let tierList = try? EnvironmentReader(["tiers": tiers]).durations("tiers", default: []) else {
            throw ValidationError("--tiers: expected durations like 1s,10s,1m")
        }
        let connection = try await broker.connect()
        let channel = try await connection.openChannel()
        repeat {
            var rows: [Row] = []
            for q in names {
                let main = try? await channel.inspectQueue(q)
                let dlq = try? await channel.inspectQueue("\(q).dlq")
                var retrying: UInt32 = 0
                for tier in tierList {
                    retrying += (try? await channel.inspectQueue(QueueSpec(name: q, bindings: []).retryQueue(tier)))?.messageCount ?? 0
                }
                rows.append(Row(queue: q, ready: main?.messageCount, consumers: main?.consumerCount, retrying: retrying,
                                deadLetters: dlq?.messageCount))
            }
            if broker.json {
                try printJSON(rows)
            } else {
                if watch { print("\u{1B}[2J\u{1B}[H" + iso8601(Date())) }
                printTable(["QUEUE", "READY", "CONSUMERS", "RETRYING", "DLQ"], rows.map {
                    [$0.queue, $0.ready.map(String.init) ?? "missing", $0.consumers.map(String.init) ?? "-", "\($0.retrying)",
                     $0.deadLetters.map(String.init) ?? "-"]
                })
            }
            if watch { try await Task.sleep(for: .seconds(2)) }
        } while watch
        await connection.close()
    }
}
