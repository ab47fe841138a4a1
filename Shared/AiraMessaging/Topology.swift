import AiraAMQP
import AiraCore
import Foundation

/// The one topic exchange every Aira message is published to.
public enum AiraExchange {
    public static let name = "aira"
}

/// Retry behaviour of one consumer queue.
public struct RetryPolicy: Sendable, Hashable {
    /// Delay tiers, in order; attempt n waits `tiers[min(n, last)]`. Each tier is a queue
    /// `Q.retry.<tier>` whose expired messages return to `Q` only.
    public var tiers: [Duration]
    /// Total handling attempts (the first included) before a transient failure dead-letters.
    public var maxAttempts: Int

    public init(tiers: [Duration] = [.seconds(1), .seconds(10), .seconds(60), .seconds(600)], maxAttempts: Int = 5) {
        precondition(!tiers.isEmpty && maxAttempts >= 1)
        self.tiers = tiers
        self.maxAttempts = maxAttempts
    }

    /// The tier for a message that has failed `failures` times (1-based).
    public func tier(afterFailures failures: Int) -> Duration {
        self.tiers[min(max(failures - 1, 0), self.tiers.count - 1)]
    }
}

/// A consumer queue and everything around it: its bindings on the `aira` exchange, retry
/// tiers, dead-letter queue and limits. Declaring it twice is harmless.
public struct QueueSpec: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// Durable quorum queue with retry tiers and a DLQ; messages persistent.
        case work
        /// RPC requests: a quorum queue too, so that a request survives the loss of the node it
        /// was published to (a classic queue lives on one node and dies with it), with a length
        /// limit (publishes beyond it are refused) and each request's deadline as its TTL: the
        /// broker drops a request whose caller gave up, never dead-letters it. No retry tiers; a
        /// request that crashes its consumers reaches ``deliveryLimit`` and is dead-lettered.
        /// What it costs: docs/benchmarks.md, "Quorum RPC queues".
        case rpc
    }

    public var name: String
    public var bindings: [String]
    public var kind: Kind
    public var retry: RetryPolicy
    /// Deliveries without an ack (consumer crashed or disconnected) before the runtime
    /// dead-letters the message as poison. The broker's own `x-delivery-limit`
    /// (``brokerDeliveryLimit``) stays above it as a backstop.
    public var deliveryLimit: Int
    /// Queue length cap; publishes beyond it are refused (`reject-publish`, the publisher sees a nack).
    public var maxLength: Int?

    /// The broker-side backstop: fixed, so that changing ``deliveryLimit`` never changes the
    /// queue's arguments (which RabbitMQ would refuse with 406 PRECONDITION_FAILED).
    public static let brokerDeliveryLimit: Int64 = 100

    public init(name: String, bindings: [String], kind: Kind = .work, retry: RetryPolicy = RetryPolicy(),
                deliveryLimit: Int = 10, maxLength: Int? = nil) {
        self.name = name
        self.bindings = bindings
        self.kind = kind
        self.retry = retry
        self.deliveryLimit = deliveryLimit
        self.maxLength = maxLength
    }

    public var deadLetterQueue: String { "\(self.name).dlq" }

    public func retryQueue(_ tier: Duration) -> String { "\(self.name).retry.\(formatDuration(tier))" }

    public var retryQueues: [String] {
        self.kind == .work ? self.retry.tiers.map(self.retryQueue) : []
    }

    /// Every queue this spec declares.
    public var allQueues: [String] { [self.name] + self.retryQueues + [self.deadLetterQueue] }

    /// Declares the exchange, the DLQ, the retry tiers, the queue and its bindings.
    public func declare(on channel: AMQPChannel) async throws {
        try await channel.declareExchange(AiraExchange.name, type: "topic", durable: true)
        try await channel.declareQueue(self.deadLetterQueue, options: .init(durable: true, arguments: Self.quorum))

        var main = Self.quorum
        main["x-delivery-limit"] = .int(Self.brokerDeliveryLimit)
        if self.kind == .rpc, try Self.rpcQueueType() == "classic" { main = ["x-queue-type": .string("classic")] }
        if let maxLength {
            main["x-max-length"] = .int(Int64(maxLength))
        }
        switch self.kind {
        case .work:
            main.merge(Self.deadLetterTo(self.deadLetterQueue)) { $1 }
            for tier in self.retry.tiers {
                var args = Self.quorum
                args["x-message-ttl"] = .int(tier.milliseconds)
                args.merge(Self.deadLetterTo(self.name)) { $1 }
                try await channel.declareQueue(self.retryQueue(tier), options: .init(durable: true, arguments: args))
            }
        case .rpc:
            main["x-overflow"] = .string("reject-publish")
        }
        try await channel.declareQueue(self.name, options: .init(durable: true, arguments: main))
        for key in self.bindings {
            try await channel.bindQueue(self.name, exchange: AiraExchange.name, routingKey: key)
        }
    }

    static let quorum: AMQPTable = ["x-queue-type": .string("quorum")]

    /// `AIRA_RPC_QUEUE_TYPE`: `quorum` (the default: RPC requests survive a node's loss) or
    /// `classic` (one node; cheaper where a single broker runs and replication buys nothing).
    /// Every process of a deployment must use the same (the broker refuses a queue declared
    /// with another type); docs/messaging.md says how to switch.
    static func rpcQueueType(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let value = environment["AIRA_RPC_QUEUE_TYPE"].flatMap { $0.isEmpty ? nil : $0 } ?? "quorum"
        guard value == "quorum" || value == "classic" else {
            throw ConfigurationError(key: "AIRA_RPC_QUEUE_TYPE", value: value, expected: "quorum or classic")
        }
        return value
    }

    /// Dead-letter through the default exchange straight to one queue, at least once.
    static func deadLetterTo(_ queue: String) -> AMQPTable {
        ["x-dead-letter-exchange": .string(""),
         "x-dead-letter-routing-key": .string(queue),
         "x-dead-letter-strategy": .string("at-least-once"),
         "x-overflow": .string("reject-publish")]
    }
}
