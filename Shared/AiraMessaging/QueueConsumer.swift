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
public final class QueueConsumer<Handler: MessageHandler>: EngineConsumer {
    let parts: ConsumerParts
    let handler: Handler
    public var spec: QueueSpec { self.parts.spec }

    public init(spec: QueueSpec, handler: Handler, connection: AMQPConnection, publisher: MessagePublisher,
                options: ConsumerOptions = ConsumerOptions(), logger: Logger) {
        self.parts = ConsumerParts(spec: spec, connection: connection, publisher: publisher, options: options, logger: logger)
        self.handler = handler
    }

    func handle(_ message: InboundMessage, delivery: AMQPDelivery, channel: AMQPChannel) async {
        let (spec, metrics) = (self.parts.spec, self.parts.metrics)

        switch Admission<Handler.Message>.check(message, spec: spec) {
        case .reject(let code, let reason, let disposition):
            let plan = FailurePlan.deadLetter(queue: spec.deadLetterQueue, attempts: message.attempts + (disposition == .permanent ? 1 : 0),
                                              disposition: disposition)
            await self.fail(delivery, message: message, channel: channel, plan: plan, error: reason, code: code)
        case .accept(let payload):
            let context = MessageContext(message: message, queue: spec.name, logger: self.parts.logger, publisher: self.parts.publisher)
            do {
                try await self.handler.handle(payload, context: context)
                await context.followUps.run()
                channel.ack(delivery)
                metrics.succeeded.increment()
            } catch {
                let transient = ErrorClassification.isTransient(error)
                let plan = FailurePlan.plan(spec: spec, previousAttempts: message.attempts, transient: transient)
                await self.fail(delivery, message: message, channel: channel, plan: plan,
                                error: ErrorClassification.message(error), code: ErrorClassification.code(error))
            }
        }
    }

    private func fail(_ delivery: AMQPDelivery, message: InboundMessage, channel: AMQPChannel, plan: FailurePlan,
                      error: String, code: String) async {
        let logger = self.parts.logger.with(message, queue: self.parts.spec.name)
        guard await self.parts.router.move(delivery, message: message, channel: channel, plan: plan,
                                           error: error, code: code, logger: logger) else { return }
        switch plan {
        case .retry(let queue, let attempts):
            self.parts.metrics.retried.increment()
            logger.warning("handler failed, will retry",
                           metadata: [LogKey.error: "\(error)", LogKey.errorType: "\(code)",
                                      LogKey.attempts: "\(attempts)", "retry_queue": "\(queue)"])
        case .deadLetter(let queue, let attempts, let disposition):
            self.parts.metrics.deadLettered[disposition]?.increment()
            logger.error("message dead-lettered",
                         metadata: [LogKey.error: "\(error)", LogKey.errorType: "\(code)", LogKey.attempts: "\(attempts)",
                                    "dlq": "\(queue)", "disposition": "\(disposition.rawValue)"])
        }
    }
}
