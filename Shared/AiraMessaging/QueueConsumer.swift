import AiraAMQP
import AiraCore
import Foundation
import Logging
import ServiceLifecycle

/// A work-queue consumer: a `Service` that consumes `spec`'s queue and runs `handler` for each
/// message, with retries through the delay tiers and dead letters with reasons.
///
/// Per message: poison check (delivery limit) → type check → decode → handler. Success acks.
/// Failure republishes a copy (confirmed) to the next retry tier or to the DLQ, then acks.
public final class QueueConsumer<Handler: MessageHandler>: Service, Sendable {
    public let spec: QueueSpec
    let handler: Handler
    let publisher: MessagePublisher
    let engine: ConsumerEngine
    let router: FailureRouter
    let metrics: QueueMetrics
    let logger: Logger

    public init(spec: QueueSpec, handler: Handler, connection: AMQPConnection, publisher: MessagePublisher,
                options: ConsumerOptions = ConsumerOptions(), logger: Logger) {
        self.spec = spec
        self.handler = handler
        self.publisher = publisher
        self.logger = logger
        self.engine = ConsumerEngine(spec: spec, connection: connection, options: options, logger: logger)
        self.router = FailureRouter(spec: spec, publisher: publisher)
        self.metrics = QueueMetrics(queue: spec.name)
    }

    public func run() async throws {
        await self.engine.run { delivery, channel in
            await self.process(delivery, channel: channel)
        }
    }

    func process(_ delivery: AMQPDelivery, channel: AMQPChannel) async {
        let message = InboundMessage(delivery)
        self.metrics.received.increment()
        let started = ContinuousClock.now
        defer { self.metrics.duration.recordNanoseconds((ContinuousClock.now - started).nanoseconds) }

        switch Admission<Handler.Message>.check(message, spec: self.spec) {
        case .reject(let code, let reason, let disposition):
            let plan = FailurePlan.deadLetter(queue: self.spec.deadLetterQueue, attempts: message.attempts + (disposition == .permanent ? 1 : 0),
                                              disposition: disposition)
            await self.fail(delivery, message: message, channel: channel, plan: plan, error: reason, code: code)
        case .accept(let payload):
            let context = MessageContext(message: message, queue: self.spec.name, logger: self.logger, publisher: self.publisher)
            do {
                try await self.handler.handle(payload, context: context)
                channel.ack(delivery)
                self.metrics.succeeded.increment()
            } catch {
                let transient = ErrorClassification.isTransient(error)
                let plan = FailurePlan.plan(spec: self.spec, previousAttempts: message.attempts, transient: transient)
                await self.fail(delivery, message: message, channel: channel, plan: plan,
                                error: ErrorClassification.message(error), code: ErrorClassification.code(error))
            }
        }
    }

    private func fail(_ delivery: AMQPDelivery, message: InboundMessage, channel: AMQPChannel, plan: FailurePlan,
                      error: String, code: String) async {
        let logger = self.logger.with(message, queue: self.spec.name)
        do {
            try await self.router.execute(plan, message: message, error: error, errorType: code)
            channel.ack(delivery)
        } catch let publishError {
            // Not acked: the broker keeps the message. Hand it back after a pause so it is tried again.
            logger.error("could not move failed message; returning it to the queue",
                         metadata: [LogKey.error: "\(publishError)", "handler_error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            channel.nack(delivery, requeue: true)
            return
        }
        switch plan {
        case .retry(let queue, let attempts):
            self.metrics.retried.increment()
            logger.warning("handler failed, will retry",
                           metadata: [LogKey.error: "\(error)", LogKey.errorType: "\(code)",
                                      LogKey.attempts: "\(attempts)", "retry_queue": "\(queue)"])
        case .deadLetter(let queue, let attempts, let disposition):
            self.metrics.deadLettered[disposition]?.increment()
            logger.error("message dead-lettered",
                         metadata: [LogKey.error: "\(error)", LogKey.errorType: "\(code)", LogKey.attempts: "\(attempts)",
                                    "dlq": "\(queue)", "disposition": "\(disposition.rawValue)"])
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = self.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
