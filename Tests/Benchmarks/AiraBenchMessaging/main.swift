// aira-bench-messaging: confirmed publishes/s and no-op consumed+acked messages/s through
// Aira's messaging runtime, next to rabbitmq-c driven directly with the same settings
// (persistent messages, one quorum queue, 1,000 unconfirmed publishes in flight, prefetch 500,
// one ack per message). Run by scripts/bench-messaging; results in docs/benchmarks.md.
import AiraAMQP
import AiraCore
import AiraMessaging
import Foundation
import Logging
import Synchronization

struct BenchEvent: MessageContract {
    static let messageType = "bench.event.v1"
    var id: Int
    var user: String
    var kind: String
    var at: Date
}

final class Count: Sendable {
    let value = Atomic<Int>(0)
}

struct NoOpHandler: MessageHandler {
    let count: Count
    func handle(_ message: BenchEvent, context: MessageContext) async throws {
        self.count.value.add(1, ordering: .relaxed)
    }
}

let env = EnvironmentReader()
let url = env.string("AIRA_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")
let config = try AMQPConfiguration(url: url, connectionName: "aira-bench")
let count = try env.int("BENCH_MESSAGES", default: 100_000, range: 1_000...2_000_000)
let window = try env.int("BENCH_WINDOW", default: 1000, range: 1...100_000)
let prefetch = UInt16(try env.int("BENCH_PREFETCH", default: 500, range: 1...65_535))
let concurrency = try env.int("BENCH_CONCURRENCY", default: 32, range: 1...10_000)
let rounds = try env.int("BENCH_ROUNDS", default: 3, range: 1...10)
let logger: Logger = {
    var l = Logger(label: "bench")
    l.logLevel = .warning
    return l
}()

let queue = "bench.messaging.\(getpid())"
let spec = QueueSpec(name: queue, bindings: ["\(queue).key"], retry: RetryPolicy(tiers: [.seconds(1)], maxAttempts: 3))
let body = try MessageCoding.encode(BenchEvent(id: 123_456, user: "user-000042", kind: "bench", at: Date()))

let connection = try await AMQPConnection.connect(configuration: config, logger: logger)
let admin = try await connection.openChannel()
try await spec.declare(on: admin)
let publisher = try await MessagePublisher.open(on: connection)

func drain() async throws {
    try await admin.purgeQueue(queue)
}

func runtimePublish() async throws -> Double {
    try await drain()
    let start = Date()
    try await withThrowingTaskGroup(of: Void.self) { group in
        let perTask = count / window
        for t in 0..<window {
            group.addTask {
                for i in 0..<perTask {
                    try await publisher.publish(BenchEvent(id: t * perTask + i, user: "user-000042", kind: "bench", at: Date()),
                                                routingKey: spec.bindings[0])
                }
            }
        }
        try await group.waitForAll()
    }
    return Date().timeIntervalSince(start)
}

/// The same through `publishRaw`: a pre-encoded body, like the direct baseline sends.
func runtimePublishRaw() async throws -> Double {
    try await drain()
    let start = Date()
    try await withThrowingTaskGroup(of: Void.self) { group in
        let perTask = count / window
        for _ in 0..<window {
            group.addTask {
                for _ in 0..<perTask {
                    let id = MessageID.random()
                    let properties = MessagePublisher.properties(type: BenchEvent.messageType, messageID: id,
                                                                 correlationID: nil, traceparent: nil)
                    try await publisher.publishRaw(exchange: "", routingKey: queue, body: body, properties: properties)
                }
            }
        }
        try await group.waitForAll()
    }
    return Date().timeIntervalSince(start)
}

func fill() async throws {
    try await drain()
    _ = Direct.publish(host: config.host, port: Int32(config.port), queue: queue, body: body, count: count, window: window)
}

func runtimeConsume() async throws -> Double {
    try await fill()
    let counter = Count()
    let consumer = QueueConsumer(spec: spec, handler: NoOpHandler(count: counter), connection: connection, publisher: publisher,
                                 options: ConsumerOptions(concurrency: concurrency, prefetch: prefetch, shutdownTimeout: .seconds(5)),
                                 logger: logger)
    let start = Date()
    let task = Task { try await consumer.run() }
    while counter.value.load(ordering: .relaxed) < count { try await Task.sleep(for: .milliseconds(2)) }
    let elapsed = Date().timeIntervalSince(start)
    task.cancel()
    _ = try? await task.value
    return elapsed
}

func directConsume() async throws -> Double {
    try await fill()
    return Direct.consume(host: config.host, port: Int32(config.port), queue: queue, count: count, prefetch: prefetch)
}

func directPublish() async throws -> Double {
    try await drain()
    return Direct.publish(host: config.host, port: Int32(config.port), queue: queue, body: body, count: count, window: window)
}

func best(_ name: String, _ run: () async throws -> Double) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<rounds { rates.append(Double(count) / (try await run())) }
    let sorted = rates.sorted()
    let median = sorted[sorted.count / 2]
    print(String(format: "%-26@ median %8.0f msg/s   (runs: %@)", name as NSString, median,
                 rates.map { String(format: "%.0f", $0) }.joined(separator: ", ") as NSString))
    return median
}

let modes = Set(env.string("BENCH_MODES", default: "direct-publish,runtime-publish-raw,runtime-publish,direct-consume,runtime-consume").split(separator: ",").map(String.init))
print("messages per run: \(count), publish window: \(window), prefetch: \(prefetch), runtime concurrency: \(concurrency), rounds: \(rounds)")
let dp = modes.contains("direct-publish") ? try await best("direct publish", directPublish) : .nan
let rr = modes.contains("runtime-publish-raw") ? try await best("runtime publish (raw)", runtimePublishRaw) : .nan
let rp = modes.contains("runtime-publish") ? try await best("runtime publish (typed)", runtimePublish) : .nan
let dc = modes.contains("direct-consume") ? try await best("direct consume", directConsume) : .nan
let rc = modes.contains("runtime-consume") ? try await best("runtime consume", runtimeConsume) : .nan
print("")
print("| what | rabbitmq-c direct | Aira runtime | runtime / direct |")
print("|---|---|---|---|")
print(String(format: "| confirmed publishes/s, pre-encoded body (`publishRaw`) | %.0f | %.0f | %.0f %% |", dp, rr, rr / dp * 100))
print(String(format: "| confirmed publishes/s, typed (JSON-encodes each message) | %.0f | %.0f | %.0f %% |", dp, rp, rp / dp * 100))
print(String(format: "| consumed + acked msgs/s (no-op handler) | %.0f | %.0f | %.0f %% |", dc, rc, rc / dc * 100))
try await drain()
_ = try? await admin.deleteQueue(queue)
for q in spec.allQueues where q != queue { _ = try? await admin.deleteQueue(q) }
await connection.close()
