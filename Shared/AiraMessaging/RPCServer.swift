import AiraAMQP
import AiraCore
import Foundation
import Logging
import ServiceLifecycle

/// Serves RPC requests from `spec`'s queue: a `Service` that runs the route for each request's
/// type and replies to its `reply_to` with the correlation id.
///
/// Requests whose caller has given up are dropped unanswered. Undecodable requests and poison
/// requests (delivery limit) go to the DLQ with reasons and get a typed error reply.
public final class RPCServer: EngineConsumer {
    let parts: ConsumerParts
    let routes: RPCRoutes
    /// Backoff between in-process retries of transient failures.
    let retryBackoff = Backoff(initial: .milliseconds(50), maximum: .seconds(1))
    public var spec: QueueSpec { self.parts.spec }

    public init(spec: QueueSpec, routes: RPCRoutes, connection: AMQPConnection, publisher: MessagePublisher,
                options: ConsumerOptions = ConsumerOptions(), logger: Logger) {
        precondition(spec.kind == .rpc, "RPCServer needs a QueueSpec of kind .rpc")
        precondition(!routes.messageTypes.isEmpty, "RPCServer needs at least one route")
        self.parts = ConsumerParts(spec: spec, connection: connection, publisher: publisher, options: options, logger: logger)
        self.routes = routes
    }

    /// A queue serving one request type.
    public convenience init<Handler: RPCHandler>(spec: QueueSpec, handler: Handler, connection: AMQPConnection,
                                                 publisher: MessagePublisher, options: ConsumerOptions = ConsumerOptions(),
                                                 logger: Logger) {
        self.init(spec: spec, routes: RPCRoutes(handler), connection: connection, publisher: publisher,
                  options: options, logger: logger)
    }

    func handle(_ message: InboundMessage, delivery: AMQPDelivery, channel: AMQPChannel) async {
        let (spec, metrics) = (self.parts.spec, self.parts.metrics)

        if let deadline = message.deadline, deadline < Date() {
            metrics.expired.increment()
            self.parts.logger.with(message, queue: spec.name).debug("dropping request: caller's deadline passed")
            channel.ack(delivery)
            return
        }

        let expected = self.routes.messageTypes.map { "'\($0)'" }.joined(separator: ", ")
        switch Admission<RPCRoutes.Call>.check(message, spec: spec, expected: expected, decoder: { self.routes.decoders[$0] }) {
        case .reject(let code, let reason, let disposition):
            let logger = self.parts.logger.with(message, queue: spec.name)
            let plan = FailurePlan.deadLetter(queue: spec.deadLetterQueue, attempts: message.attempts + 1, disposition: disposition)
            guard await self.parts.router.move(delivery, message: message, channel: channel, plan: plan,
                                               error: reason, code: code, logger: logger) else { return }
            metrics.deadLettered[disposition]?.increment()
            logger.error("request dead-lettered", metadata: [LogKey.error: "\(reason)", LogKey.errorType: "\(code)"])
            let replyCode = disposition == .permanent ? RPCErrorReply.badRequestCode : RPCErrorReply.internalCode
            self.parts.publisher.reply(to: message, .failure(RPCErrorReply(code: replyCode, message: reason)))

        case .accept(let call):
            let context = MessageContext(message: message, queue: spec.name, logger: self.parts.logger, publisher: self.parts.publisher)
            switch await self.run(call, context: context, deadline: message.deadline) {
            case .success(.response(let body)):
                metrics.succeeded.increment()
                self.parts.publisher.reply(to: message, .success(body))
            case .success(.sentInParts):
                metrics.succeeded.increment()
            case .failure(let error):
                self.parts.publisher.reply(to: message, .failure(error))
            }
            await context.followUps.run()
            channel.ack(delivery)
        }
    }

    /// Runs the handler, retrying transient errors while the deadline allows; what is left of a
    /// failure is answered through the one mapping, ``RPCErrorReply/answering(_:)``.
    private func run(_ call: RPCRoutes.Call, context: MessageContext, deadline: Date?) async -> Result<RPCRoutes.Reply, RPCErrorReply> {
        var attempt = 0
        while true {
            context.followUps.reset()
            do {
                return .success(try await call(context))
            } catch {
                guard !(error is RPCErrorReply), ErrorClassification.isTransient(error) else {
                    return .failure(RPCErrorReply.answering(error))
                }
                attempt += 1
                let delay = self.retryBackoff.delay(attempt: attempt - 1)
                let fits = deadline.map { Date().addingTimeInterval(delay.seconds) < $0 } ?? false
                guard attempt < self.parts.spec.retry.maxAttempts, fits, !Task.isCancelled else {
                    context.logger.warning("request failed", metadata: [LogKey.error: "\(ErrorClassification.message(error))",
                                                                       LogKey.attempts: "\(attempt)"])
                    return .failure(RPCErrorReply.answering(error))
                }
                self.parts.metrics.retried.increment()
                try? await Task.sleep(for: delay)
            }
        }
    }
}
