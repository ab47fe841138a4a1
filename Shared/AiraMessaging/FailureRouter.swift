import AiraAMQP
import AiraCore
import Foundation
import Logging

/// What to do with a message whose handling failed: the decision alone, without I/O, so the
/// retry protocol is unit-tested on its own.
public enum FailurePlan: Sendable, Equatable {
    /// Republish to this retry tier queue with `attempts` failures recorded.
    case retry(queue: String, attempts: Int)
    /// Move to the DLQ with this disposition.
    case deadLetter(queue: String, attempts: Int, disposition: Disposition)

    public enum Disposition: String, Sendable {
        /// Retrying cannot help (undecodable, unknown type, validation, handler said so).
        case permanent
        /// Transient failures used every attempt.
        case retriesExhausted = "retries_exhausted"
        /// Consumers died or disconnected while holding it too often (poison message).
        case deliveryLimit = "delivery_limit"
    }

    /// The plan for a message that failed once more. `previousAttempts` is its `x-aira-attempts`.
    public static func plan(spec: QueueSpec, previousAttempts: Int, transient: Bool) -> FailurePlan {
        let failures = previousAttempts + 1
        guard transient else {
            return .deadLetter(queue: spec.deadLetterQueue, attempts: failures, disposition: .permanent)
        }
        guard spec.kind == .work, failures < spec.retry.maxAttempts else {
            return .deadLetter(queue: spec.deadLetterQueue, attempts: failures, disposition: .retriesExhausted)
        }
        return .retry(queue: spec.retryQueue(spec.retry.tier(afterFailures: failures)), attempts: failures)
    }
}

/// Carries out a ``FailurePlan``: republishes a copy with the reason headers (confirmed) and
/// only then acknowledges the original. If the republish fails the original is not acked, so
/// the broker keeps it: nothing is lost, at worst it is handled again.
struct FailureRouter: Sendable {
    let spec: QueueSpec
    let publisher: MessagePublisher

    /// The copy's headers: the original's, less the broker's dead-letter bookkeeping, plus ours.
    static func headers(for message: InboundMessage, queue: String, attempts: Int, error: String, errorType: String,
                        disposition: FailurePlan.Disposition?, now: Date = Date()) -> AMQPTable {
        var h = message.headers.filter { !AiraHeader.brokerDeathHeaders.contains($0.key) }
        let stamp = AMQPFieldValue.string(iso8601(now))
        h[AiraHeader.attempts] = .int(Int64(attempts))
        h[AiraHeader.error] = .string(error)
        h[AiraHeader.errorType] = .string(errorType)
        h[AiraHeader.firstFailedAt] = message.headers[AiraHeader.firstFailedAt] ?? stamp
        h[AiraHeader.lastFailedAt] = stamp
        h[AiraHeader.originalRoutingKey] = .string(message.originalRoutingKey)
        h[AiraHeader.queue] = .string(queue)
        if let disposition { h[AiraHeader.disposition] = .string(disposition.rawValue) } else { h[AiraHeader.disposition] = nil }
        return h
    }

    /// Republishes per `plan`. Throws if the copy was not confirmed (then do not ack).
    func execute(_ plan: FailurePlan, message: InboundMessage, error: String, errorType: String) async throws {
        let (target, attempts, disposition): (String, Int, FailurePlan.Disposition?) = switch plan {
        case .retry(let q, let a): (q, a, nil)
        case .deadLetter(let q, let a, let d): (q, a, d)
        }
        var properties = message.properties
        properties.headers = Self.headers(for: message, queue: self.spec.name, attempts: attempts, error: error,
                                          errorType: errorType, disposition: disposition)
        properties.deliveryMode = AMQPProperties.persistent
        properties.expiration = nil
        if properties.messageID == nil { properties.messageID = MessageID.random() }
        try await self.publisher.publishRaw(exchange: "", routingKey: target, body: message.body, properties: properties)
    }
}

extension FailureRouter {
    /// Moves a failed delivery: republishes the copy (confirmed), then acks the original.
    /// If the copy could not be published, the original is handed back to the queue after a
    /// pause instead (never acked without its copy). Returns whether it was moved.
    func move(_ delivery: AMQPDelivery, message: InboundMessage, channel: AMQPChannel, plan: FailurePlan,
              error: String, code: String, logger: Logger) async -> Bool {
        do {
            try await self.execute(plan, message: message, error: error, errorType: code)
            channel.ack(delivery)
            return true
        } catch let publishError {
            logger.error("could not move failed message; returning it to the queue",
                         metadata: [LogKey.error: "\(publishError)", "handler_error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            channel.nack(delivery, requeue: true)
            return false
        }
    }
}
