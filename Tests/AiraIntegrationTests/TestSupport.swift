import AiraAMQP
import AiraMessaging
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Testing

/// The servers scripts/test starts; integration tests are skipped without them.
enum TestServers {
    static let environment = ProcessInfo.processInfo.environment
    static var amqpURL: String? { environment["AIRA_AMQP_URL"] }
    static var redisURL: String? { environment["AIRA_REDIS_URL"] }
    static var databaseURL: String? { environment["AIRA_DATABASE_URL"] }
    static var available: Bool { amqpURL != nil && redisURL != nil && databaseURL != nil }

    static var logger: Logger {
        var l = Logger(label: "aira.test")
        l.logLevel = environment["AIRA_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return l
    }

    static func amqpConfiguration(name: String = "aira-test") throws -> AMQPConfiguration {
        var c = try AMQPConfiguration(url: amqpURL ?? "amqp://guest:guest@127.0.0.1:5672/", connectionName: name)
        c.reconnectBackoff = .milliseconds(100)
        c.reconnectBackoffMax = .seconds(1)
        return c
    }

    static func connect(name: String = "aira-test") async throws -> AMQPConnection {
        try await AMQPConnection.connect(configuration: amqpConfiguration(name: name), logger: logger)
    }
}

/// A name no other test uses.
func uniqueName(_ prefix: String) -> String {
    "test.\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20),
                _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Reads the next element of an async iterator with a time limit.
func next<T: Sendable>(_ stream: AsyncStream<T>, timeout: Duration = .seconds(10)) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask {
            var it = stream.makeAsyncIterator()
            return await it.next()
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}


/// Waits for a dead letter in `queue` that `match` picks, removes it from the queue (dead-letter
/// queues of the shared work queues outlive tests) and returns it; nil if none came in time.
func takeDeadLetter(from queue: String, timeout: Duration = .seconds(20),
                    where match: @escaping @Sendable (DeadLetter) -> Bool) async throws -> DeadLetter? {
    let connection = try await TestServers.connect(name: "aira-test-dlq")
    defer { Task { await connection.close() } }
    let dlq = DeadLetterQueues(connection: connection, logger: TestServers.logger)
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let letter = try? await dlq.peek(queue: queue).first(where: match) {
            _ = try await dlq.purge(queue, ids: [letter.messageID])
            return letter
        }
        try await Task.sleep(for: .milliseconds(200))
    }
    return nil
}

extension DeadLetter {
    /// The message body as text (to find a job by the id it carries).
    var bodyText: String { String(decoding: self.delivery.body, as: UTF8.self) }
}

/// One request to RabbitMQ's management API (`AIRA_RABBITMQ_MANAGEMENT_URL`, else the local one).
func brokerManagement(_ method: String, _ path: String) async throws -> Data {
    let url = URLComponents(string: TestServers.environment["AIRA_RABBITMQ_MANAGEMENT_URL"] ?? "http://guest:guest@127.0.0.1:15672")!
    var r = URLRequest(url: URL(string: "http://\(url.host ?? "127.0.0.1"):\(url.port ?? 15672)" + path)!)
    r.httpMethod = method
    r.setValue("Basic " + Data("\(url.user ?? "guest"):\(url.password ?? "guest")".utf8).base64EncodedString(),
               forHTTPHeaderField: "Authorization")
    return try await URLSession.shared.data(for: r).0
}
