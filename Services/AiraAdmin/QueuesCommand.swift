import AiraAMQP
import AiraCore
import AiraContracts
import AiraMessaging
import ArgumentParser
import Foundation

struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each consumer queue: ready and unacknowledged messages, consumers, messages waiting in retry tiers and in the DLQ.",
        discussion: """
            With the management API (--management-url or $AIRA_RABBITMQ_MANAGEMENT_URL) every Aira \
            queue is found by itself and unacknowledged counts are shown. Without it, counts come \
            over AMQP for the queues named (or $AIRA_QUEUES), and unacknowledged counts are not \
            available ("-"): AMQP has no call that reports them.
            """)

    @OptionGroup var broker: BrokerOptions
    @Argument(help: "Consumer queues; default: every Aira queue (with the management API) or $AIRA_QUEUES.")
    var queues: [String] = []
    @Option(help: "Retry tiers to look for over AMQP (as configured), e.g. 1s,10s,1m,10m.")
    var tiers: String = "1s,10s,1m,10m"
    @Option(name: .customLong("management-url"), help: "RabbitMQ management API, e.g. http://guest:guest@127.0.0.1:15672.")
    var managementURL: String?
    @Flag(help: "Refresh every 2 seconds until interrupted.") var watch = false

    func run() async throws {
        let management: ManagementAPI?
        do {
            management = try (managementURL ?? ProcessInfo.processInfo.environment["AIRA_RABBITMQ_MANAGEMENT_URL"]).map(ManagementAPI.init(url:))
        } catch {
            throw CLIError("--management-url: \(error)")
        }
        guard let tierList = try? EnvironmentReader(["tiers": tiers]).durations("tiers", default: []) else {
            throw ValidationError("--tiers: expected durations like 1s,10s,1m")
        }
        let connection = management == nil ? try await broker.connect() : nil
        let channel = try await connection?.openChannel()
        repeat {
            let rows: [QueueOverview]
            if let management {
                let vhost = try AMQPConfiguration(url: broker.amqpURL ?? EnvironmentReader().string(
                    "AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")).vhost
                rows = QueueOverview.rows(from: try await management.queues(vhost: vhost), only: queues.map(DeadLetterQueues.workQueue(for:)))
            } else {
                var collected: [QueueOverview] = []
                for q in knownQueues(queues).map(DeadLetterQueues.workQueue(for:)) {
                    let main = try? await channel!.inspectQueue(q)
                    let dlq = try? await channel!.inspectQueue("\(q).dlq")
                    var retrying = 0
                    for tier in tierList {
                        retrying += Int((try? await channel!.inspectQueue(QueueSpec(name: q, bindings: []).retryQueue(tier)))?.messageCount ?? 0)
                    }
                    collected.append(QueueOverview(queue: q, ready: main.map { Int($0.messageCount) }, unacked: nil,
                                         consumers: main.map { Int($0.consumerCount) }, retrying: retrying,
                                         deadLetters: dlq.map { Int($0.messageCount) }))
                }
                rows = collected
            }
            if broker.json {
                try printJSON(rows)
            } else {
                if watch { print("\u{1B}[2J\u{1B}[H" + iso8601(Date())) }
                printTable(["QUEUE", "READY", "UNACKED", "CONSUMERS", "RETRYING", "DLQ"], rows.map {
                    [$0.queue, $0.ready.map(String.init) ?? "missing", $0.unacked.map(String.init) ?? "-",
                     $0.consumers.map(String.init) ?? "-", "\($0.retrying)", $0.deadLetters.map(String.init) ?? "-"]
                })
            }
            if watch { try await Task.sleep(for: .seconds(2)) }
        } while watch
        await connection?.close()
    }
}
