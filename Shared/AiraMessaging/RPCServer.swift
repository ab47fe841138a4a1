import AiraAMQP
import AiraCore
import Foundation
import Logging
import ServiceLifecycle

/// Serves RPC requests from `spec`'s queue: a `Service` that runs `handler` for each request
/// and replies to its `reply_to` with the correlation id.
///
/// Requests whose caller has given up are dropped unanswered. Undecodable requests and poison
/// requests (delivery limit) go to the DLQ with reasons and get a typed error reply.
public final class RPCServer<Handler: RPCHandler>: Service, Sendable {
    public let spec: QueueSpec
    let handler: Handler
    let publisher: MessagePublisher
    let engine: ConsumerEngine
    let router: FailureRouter
    let metrics: QueueMetrics
    let logger: Logger
    /// Backoff between in-process retries of transient failures.
    let retryBackoff = Backoff(initial: .milliseconds(50), maximum: .seconds(1))

    public init(spec: QueueSpec, handler: Handler, connection: AMQPConnection, publisher: MessagePublisher,
                options: ConsumerOptions = ConsumerOptions(), logger: Logger) {
        precondition(spec.kind == .rpc, "RPCServer needs a QueueSpec of kind .rpc")
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

        if let deadline = message.deadline, deadline < Date() {
            self.metrics.expired.increment()
            self.logger.with(message, queue: self.spec.name).debug("dropping request: caller's deadline passed")
            channel.ack(delivery)
            return
        }

        switch Admission<Handler.Request>.check(message, spec: self.spec) {
        case .reject(let code, let reason, let disposition):
            let logger = self.logger.with(message, queue: self.spec.name)
            let plan = FailurePlan.deadLetter(queue: self.spec.deadLetterQueue, attempts: message.attempts + 1, disposition: disposition)
            do {
                try await self.router.execute(plan, message: message, error: reason, errorType: code)
            } catch {
                logger.error("could not dead-letter request; returning it", metadata: [LogKey.error: "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                channel.nack(delivery, requeue: true)
                return
            }
            self.metrics.deadLettered[disposition]?.increment()
            logger.error("request dead-lettered", metadata: [LogKey.error: "\(reason)", LogKey.errorType: "\(code)"])
            let replyCode = disposition == .permanent ? RPCErrorReply.badRequestCode : RPCErrorReply.internalCode
            self.reply(to: message, .failure(RPCErrorReply(code: replyCode, message: reason)))
            channel.ack(delivery)

        case .accept(let request):
            let context = MessageContext(message: message, queue: self.spec.name, logger: self.logger, publisher: self.publisher)
            let result = await self.handle(request, context: context, deadline: message.deadline)
            switch result {
            case .success: self.metrics.succeeded.increment()
            case .failure: break
            }
            self.reply(to: message, result)
            channel.ack(delivery)
        }
    }

    /// Runs the handler, retrying transient errors while the deadline allows.
    private func handle(_ request: Handler.Request, context: MessageContext,
                        deadline: Date?) async -> Result<Handler.Response, RPCErrorReply> {
        var attempt = 0
        while true {
            do {
                return .success(try await self.handler.handle(request, context: context))
            } catch let reply as RPCErrorReply {
                return .failure(reply)
            } catch {
                let transient = ErrorClassification.isTransient(error)
                let text = ErrorClassification.message(error)
                guard transient else {
                    return .failure(RPCErrorReply(code: ErrorClassification.code(error), message: text))
                }
                attempt += 1
                let delay = self.retryBackoff.delay(attempt: attempt - 1)
                let fits = deadline.map { Date().addingTimeInterval(delay.seconds) < $0 } ?? false
                guard attempt < self.spec.retry.maxAttempts, fits, !Task.isCancelled else {
                    context.logger.warning("request failed", metadata: [LogKey.error: "\(text)", LogKey.attempts: "\(attempt)"])
                    return .failure(RPCErrorReply(code: RPCErrorReply.unavailableCode, message: "temporarily unavailable, try again"))
                }
                self.metrics.retried.increment()
                try? await Task.sleep(for: delay)
            }
        }
    }

    private func reply(to message: InboundMessage, _ result: Result<Handler.Response, RPCErrorReply>) {
        guard let replyTo = message.properties.replyTo else { return }
        let body: [UInt8]
        let status: String
        do {
            switch result {
            case .success(let response): body = try MessageCoding.encode(response); status = "ok"
            case .failure(let error): body = try MessageCoding.encode(error); status = "error"
            }
        } catch {
            body = (try? MessageCoding.encode(RPCErrorReply(code: RPCErrorReply.internalCode, message: "response not encodable"))) ?? []
            status = "error"
        }
        let properties = AMQPProperties(contentType: "application/json",
                                        headers: [AiraHeader.rpcStatus: .string(status)],
                                        deliveryMode: AMQPProperties.transient,
                                        correlationID: message.correlationID)
        // Not awaited: the caller's reply consumer is the confirmation that matters.
        self.publisher.channel.publish(exchange: "", routingKey: replyTo, body: body, properties: properties,
                                       mandatory: false) { _ in }
    }
}
