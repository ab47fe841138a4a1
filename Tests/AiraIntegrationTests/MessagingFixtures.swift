import AiraAMQP
import AiraMessaging
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The message the messaging tests send.
struct TestJob: MessageContract, Equatable {
    static let messageType = "test.job.v1"
    var id: String
    /// ok | transient | permanent | fail-first-N (N transient failures, then ok) | sleep
    var action: String
    var sleepMilliseconds: Int?
}

/// Records what handlers did, per message id.
final class Recorder: Sendable {
    private let state = Mutex<(handled: [String: Int], attempts: [String: [Int]], succeeded: [String])>(([:], [:], []))

    func handled(_ id: String, attempt: Int) -> Int {
        self.state.withLock { s in
            s.handled[id, default: 0] += 1
            s.attempts[id, default: []].append(attempt)
            return s.handled[id]!
        }
    }

    func succeeded(_ id: String) { self.state.withLock { $0.succeeded.append(id) } }

    var succeededIDs: [String] { self.state.withLock { $0.succeeded } }
    func count(_ id: String) -> Int { self.state.withLock { $0.handled[id] ?? 0 } }
    func attempts(_ id: String) -> [Int] { self.state.withLock { $0.attempts[id] ?? [] } }
}

struct TestJobHandler: MessageHandler {
    let recorder: Recorder

    func handle(_ job: TestJob, context: MessageContext) async throws {
        let n = self.recorder.handled(job.id, attempt: context.attempts)
        switch job.action {
        case "ok":
            break
        case "transient":
            throw TransientError(code: "test_transient", "downstream unavailable (test)")
        case "permanent":
            throw PermanentError(code: "test_invalid", "job is invalid (test)")
        case "sleep":
            try? await Task.sleep(for: .milliseconds(job.sleepMilliseconds ?? 1000))
        case let a where a.hasPrefix("fail-first-"):
            if n <= Int(a.dropFirst("fail-first-".count))! {
                throw TransientError(code: "test_transient", "failing attempt \(n) on purpose")
            }
        default:
            throw PermanentError(code: "unknown_action", "unknown action \(job.action)")
        }
        self.recorder.succeeded(job.id)
    }
}

/// A service running in the background of a test, stopped with a graceful shutdown.
final class RunningServices: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ services: [any Service], logger: Logger = TestServers.logger) {
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        self.group = group
        self.task = Task { try await group.run() }
    }

    func stop() async {
        await self.group.triggerGracefulShutdown()
        _ = try? await self.task.value
    }
}

/// A broker connection, a publisher and a helper channel for one test, torn down with its queues.
struct MessagingHarness {
    let connection: AMQPConnection
    let publisher: MessagePublisher
    let admin: AMQPChannel

    static func make(_ name: String = "aira-test") async throws -> MessagingHarness {
        let connection = try await TestServers.connect(name: name)
        let publisher = try await MessagePublisher.open(on: connection)
        let admin = try await connection.openChannel()
        return MessagingHarness(connection: connection, publisher: publisher, admin: admin)
    }

    func consumer(_ spec: QueueSpec, recorder: Recorder, options: ConsumerOptions = ConsumerOptions(concurrency: 8, prefetch: 16, shutdownTimeout: .seconds(5))) -> QueueConsumer<TestJobHandler> {
        QueueConsumer(spec: spec, handler: TestJobHandler(recorder: recorder), connection: self.connection,
                      publisher: self.publisher, options: options, logger: TestServers.logger)
    }

    /// Waits until each queue has `count` consumers.
    func waitForConsumers(_ queues: String..., count: UInt32 = 1, timeout: Duration = .seconds(10)) async throws -> Bool {
        try await eventually(timeout: timeout) {
            for q in queues {
                guard let status = try? await self.admin.inspectQueue(q), status.consumerCount == count else { return false }
            }
            return true
        }
    }

    func depth(_ queue: String) async throws -> UInt32 {
        try await self.admin.inspectQueue(queue).messageCount
    }

    /// A copy of every message published to the Aira exchange with `routingKey`, through a queue
    /// of the test's own (deleted once its consumer's channel closes: close `channel` when done).
    func tap(_ routingKey: String, name: String) async throws -> AMQPConsumer {
        let queue = uniqueName(name)
        try await self.admin.declareQueue(queue, options: .init(durable: false, autoDelete: true))
        try await self.admin.bindQueue(queue, exchange: AiraExchange.name, routingKey: routingKey)
        return try await self.connection.openChannel().consume(queue: queue, noAck: true)
    }

    /// Takes one message off `queue` (for inspecting DLQs).
    func take(_ queue: String, timeout: Duration = .seconds(10)) async throws -> AMQPDelivery? {
        let channel = try await self.connection.openChannel()
        let consumer = try await channel.consume(queue: queue)
        let delivery = await next(consumer.deliveries, timeout: timeout)
        if let delivery { channel.ack(delivery) }
        await channel.close()
        return delivery
    }

    func tearDown(_ specs: QueueSpec...) async {
        for spec in specs {
            for q in spec.allQueues { _ = try? await self.admin.deleteQueue(q) }
        }
        await self.connection.close()
    }
}
